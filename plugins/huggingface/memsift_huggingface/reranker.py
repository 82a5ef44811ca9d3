"""The ``huggingface`` reranker: a local transformers cross-encoder, or a remote TEI server.

Scores are in [0, 1] with ``normalize`` (the default): the sigmoid of the model's logit,
computed here in the local mode and by the server (``raw_scores=false``) in the remote
mode. With ``normalize=False`` ``rerank`` returns the raw logits, which only direct callers
can use: the search pipeline needs [0, 1], so it is refused there with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsift import Reranker, RerankError
from memsift.interfaces import Candidate, check_rerank_input
from memsift.models import logits_to_scores
from memsift_huggingface.config import HuggingFaceRerankerConfig
from memsift_huggingface.local import LocalModel, load_local_model
from memsift_huggingface.remote import PROVIDER, TEIClient


class HuggingFaceReranker(Reranker):
    """Scores documents with a Hugging Face cross-encoder, local or behind a TEI server.

    Local mode: building it loads the model (or takes it from the process-wide cache);
    ``arerank`` runs the forward pass in a worker thread. Remote mode: one sync and one
    async httpx client per instance, ``arerank`` is natively async.
    """

    config: HuggingFaceRerankerConfig

    def __init__(self, config: HuggingFaceRerankerConfig | None = None) -> None:
        super().__init__(config if config is not None else HuggingFaceRerankerConfig())
        self._local: LocalModel | None = None
        self._remote: TEIClient | None = None
        if self.config.mode == "remote":
            self._remote = TEIClient(self.config)
        else:
            self._local = load_local_model(self.config)

    @property
    def mode(self) -> str:
        """``local`` or ``remote``."""
        return self.config.mode

    @property
    def model_name(self) -> str:
        if self._remote is not None:
            return self._remote.display_url
        return self.config.model_id

    @property
    def device(self) -> str | None:
        """The device of the local model (``auto`` resolved); None in the remote mode."""
        return None if self._local is None else self._local.device

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        if self._remote is not None:
            return self._remote.rerank(query, docs)
        assert self._local is not None
        try:
            logits = self._local.logits(
                query, docs, batch_size=self.config.batch_size, max_length=self.config.max_length
            )
        except Exception as exc:
            raise RerankError(PROVIDER, f"{type(exc).__name__}: {exc}") from exc
        return logits_to_scores(logits, normalize=self.config.normalize)

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if self._remote is None:
            return await super().arerank(query, documents)
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        return await self._remote.arerank(query, docs)

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

    def close(self) -> None:
        """Close the HTTP clients (remote mode); a shared local model stays cached."""
        if self._remote is not None:
            self._remote.close()

    async def aclose(self) -> None:
        if self._remote is not None:
            await self._remote.aclose()


__all__ = ["HuggingFaceReranker"]
