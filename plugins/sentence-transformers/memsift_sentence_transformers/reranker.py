"""The ``sentence_transformer`` reranker: a local ``sentence_transformers.CrossEncoder``.

Each (query, document) pair goes through the model jointly; the model's single logit per
pair is the relevance, and with ``normalize`` (the default) its sigmoid is the score, in
[0, 1]. A pool is scored in one ``predict`` call (one forward pass per ``batch_size``
pairs) under ``torch.inference_mode()``. Pairs longer than ``max_length`` tokens are
truncated (longest side first), never rejected.

The model is loaded when the reranker is built, once per process per (model, device,
max_length, revision, trust_remote_code, cache_folder), and shared by every instance; a
lock serialises the forward passes on one model, so instances may be used from many threads.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memsift import ConfigError, ModelNotFoundError, Reranker, RerankError
from memsift.interfaces import Candidate, check_rerank_input
from memsift.models import logits_to_scores
from memsift_sentence_transformers.config import SentenceTransformerRerankerConfig
from memsift_sentence_transformers.runtime import (
    INSTALL_HINT,
    MODEL_CACHE,
    import_torch,
    position_limit,
    resolve_device,
)

PROVIDER = "sentence_transformer"


@dataclass
class LoadedCrossEncoder:
    """A loaded CrossEncoder with the lock that serialises its use."""

    model: Any  # sentence_transformers.CrossEncoder
    device: str
    activation_arg: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    def logits(
        self, pairs: list[tuple[str, str]], *, batch_size: int, show_progress_bar: bool
    ) -> Any:
        """The model's raw logits for ``pairs``, as a 1-d tensor, in input order."""
        torch = import_torch()
        kwargs = {self.activation_arg: torch.nn.Identity()}
        with self.lock, torch.inference_mode():
            out = self.model.predict(
                pairs,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
                convert_to_tensor=True,
                **kwargs,
            )
        return out.reshape(len(pairs), -1)[:, 0]


def load_cross_encoder(config: SentenceTransformerRerankerConfig) -> LoadedCrossEncoder:
    """The shared CrossEncoder for ``config`` (loaded on first use, then cached)."""
    device = resolve_device(config.device)
    key = (
        "cross-encoder",
        config.model,
        device,
        config.max_length,
        config.revision,
        config.trust_remote_code,
        config.cache_folder,
    )
    return MODEL_CACHE.get(key, lambda: _build(config, device))


def _build(config: SentenceTransformerRerankerConfig, device: str) -> LoadedCrossEncoder:
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise ConfigError(f"the sentence_transformer reranker needs {INSTALL_HINT}") from exc
    token = config.token.get_secret_value() if config.token is not None else None
    try:
        model = CrossEncoder(
            config.model,
            device=device,
            max_length=config.max_length,
            cache_folder=config.cache_folder,
            trust_remote_code=config.trust_remote_code,
            revision=config.revision,
            local_files_only=config.local_files_only,
            token=token,
        )
    except Exception as exc:
        raise ModelNotFoundError(_load_failure(config, exc)) from exc
    num_labels = int(getattr(model, "num_labels", 1))
    if num_labels != 1:
        raise ConfigError(
            f"model {config.model!r} has {num_labels} output labels; the sentence_transformer "
            "reranker needs a cross-encoder with one relevance logit (num_labels=1)"
        )
    limit = position_limit(model)
    if limit is not None and config.max_length > limit:
        raise ConfigError(
            f"max_length={config.max_length} exceeds the {limit} positions of model "
            f"{config.model!r}: set max_length to at most {limit}"
        )
    model.eval()
    params = inspect.signature(model.predict).parameters
    # sentence-transformers 4+ calls it activation_fn; 3.x called it activation_fct.
    activation_arg = "activation_fn" if "activation_fn" in params else "activation_fct"
    return LoadedCrossEncoder(model=model, device=device, activation_arg=activation_arg)


def _load_failure(config: Any, exc: Exception) -> str:
    where = "local files only" if config.local_files_only else "local folder, hub cache or hub"
    return (
        f"cannot load model {config.model!r} ({where}): {type(exc).__name__}: {exc}. "
        "Give a folder holding the model, or a hub id that is in the cache "
        "(download it once with network access, or set cache_folder to where it is); "
        "with HF_HUB_OFFLINE=1 or local_files_only=True nothing is downloaded."
    )


class SentenceTransformerReranker(Reranker):
    """Scores documents with a local cross-encoder: sigmoid of its logit, in [0, 1].

    Building it loads the model (or takes it from the process-wide cache). ``rerank``
    returns one score per document in input order; with ``normalize=False`` it returns
    the raw logits instead, which only direct callers can use: the search pipeline then
    refuses with a clear error (and falls back to vector order).
    """

    config: SentenceTransformerRerankerConfig

    def __init__(self, config: SentenceTransformerRerankerConfig | None = None) -> None:
        super().__init__(config if config is not None else SentenceTransformerRerankerConfig())
        self._loaded = load_cross_encoder(self.config)

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def device(self) -> str:
        """The device the model runs on (``auto`` resolved)."""
        return self._loaded.device

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        try:
            logits = self._loaded.logits(
                [(query, doc) for doc in docs],
                batch_size=self.config.batch_size,
                show_progress_bar=self.config.show_progress_bar,
            )
        except Exception as exc:
            raise RerankError(PROVIDER, f"{type(exc).__name__}: {exc}") from exc
        return logits_to_scores(logits, normalize=self.config.normalize)

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        self._require_normalized()
        return self.rerank(query, [c.text for c in candidates])

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        self._require_normalized()
        return await self.arerank(query, [c.text for c in candidates])

    def _require_normalized(self) -> None:
        if not self.config.normalize:
            raise RerankError(
                PROVIDER,
                "normalize=False returns raw logits, which the search pipeline cannot use "
                "(it needs scores in [0, 1]); set normalize=True, the default",
            )


__all__ = ["LoadedCrossEncoder", "SentenceTransformerReranker", "load_cross_encoder"]
