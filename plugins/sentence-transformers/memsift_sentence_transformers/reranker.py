"""The ``sentence_transformer`` reranker: a local ``sentence_transformers.CrossEncoder``.

Each (query, document) pair goes through the model jointly; the model's single logit per
pair is the relevance, and with ``normalize`` (the default) its sigmoid is the score, in
[0, 1]. A pool is scored in one ``predict`` call (one forward pass per ``batch_size``
pairs) under ``torch.inference_mode()``. Pairs longer than ``max_length`` tokens are
truncated (longest side first), never rejected.

The model is loaded when the reranker is built, once per process per (model, device,
max_length, revision, trust_remote_code, cache_folder), and shared by every instance; a
lock serialises the forward passes on one model, so instances may be used from many threads.
Device, cache, lock, the sigmoid and the pipeline's rules come from :mod:`memsift.kit.local`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from memsift import ConfigError
from memsift.kit.local import (
    LoadedModel,
    LocalReranker,
    check_max_length,
    check_one_label,
    load_pretrained,
)
from memsift_sentence_transformers.config import SentenceTransformerRerankerConfig
from memsift_sentence_transformers.runtime import INSTALL_HINT, RUNTIME

PROVIDER = "sentence_transformer"


@dataclass
class LoadedCrossEncoder(LoadedModel):
    """A loaded CrossEncoder, and the name its ``predict`` gives the activation argument."""

    activation_arg: str


class SentenceTransformerReranker(LocalReranker[LoadedCrossEncoder]):
    """Scores documents with a local cross-encoder: sigmoid of its logit, in [0, 1].

    Building it loads the model (or takes it from the process-wide cache). ``rerank``
    returns one score per document in input order; with ``normalize=False`` it returns
    the raw logits instead, which only direct callers can use: the search pipeline then
    refuses with a clear error (and falls back to vector order).
    """

    config: SentenceTransformerRerankerConfig
    provider = PROVIDER

    def __init__(self, config: SentenceTransformerRerankerConfig | None = None) -> None:
        super().__init__(config if config is not None else SentenceTransformerRerankerConfig())

    def _load(self) -> LoadedCrossEncoder:
        cfg = self.config
        key = (
            "cross-encoder",
            cfg.model,
            cfg.max_length,
            cfg.revision,
            cfg.trust_remote_code,
            cfg.cache_folder,
        )
        return RUNTIME.load(cfg.device, key, self._build)

    def _build(self, device: str) -> LoadedCrossEncoder:
        cfg = self.config
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise ConfigError(f"the sentence_transformer reranker needs {INSTALL_HINT}") from exc
        token = cfg.token.get_secret_value() if cfg.token is not None else None
        model = load_pretrained(
            lambda: CrossEncoder(
                cfg.model,
                device=device,
                max_length=cfg.max_length,
                cache_folder=cfg.cache_folder,
                trust_remote_code=cfg.trust_remote_code,
                revision=cfg.revision,
                local_files_only=cfg.local_files_only,
                token=token,
            ),
            model=cfg.model,
            local_files_only=cfg.local_files_only,
            cache_option="cache_folder",
            token=token,
        )
        check_one_label(int(getattr(model, "num_labels", 1)), model=cfg.model, provider=PROVIDER)
        check_max_length(cfg.max_length, model, name=cfg.model)
        model.eval()
        params = inspect.signature(model.predict).parameters
        # sentence-transformers 4+ calls it activation_fn; 3.x called it activation_fct.
        activation_arg = "activation_fn" if "activation_fn" in params else "activation_fct"
        return LoadedCrossEncoder(model=model, device=device, activation_arg=activation_arg)

    def _logits(self, query: str, documents: list[str]) -> Any:
        loaded = self._loaded
        pairs = [(query, doc) for doc in documents]
        with RUNTIME.inference(loaded) as torch:
            out = loaded.model.predict(
                pairs,
                batch_size=self.config.batch_size,
                show_progress_bar=self.config.show_progress_bar,
                convert_to_tensor=True,
                **{loaded.activation_arg: torch.nn.Identity()},
            )
        return out.reshape(len(pairs), -1)[:, 0]


__all__ = ["LoadedCrossEncoder", "SentenceTransformerReranker"]
