"""The ``huggingface`` reranker: a local transformers cross-encoder, or a remote TEI server.

Scores are in [0, 1] with ``normalize`` (the default): the sigmoid of the model's logit,
computed here in the local mode and by the server (``raw_scores=false``) in the remote
mode. With ``normalize=False`` ``rerank`` returns the raw logits, which only direct callers
can use: the search pipeline needs [0, 1], so it is refused there with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsift import Reranker
from memsift.interfaces import Candidate
from memsift_huggingface.config import HuggingFaceRerankerConfig
from memsift_huggingface.local import LocalHuggingFaceReranker, LocalModel
from memsift_huggingface.remote import TEIReranker


class HuggingFaceReranker(Reranker):
    """Scores documents with a Hugging Face cross-encoder, local or behind a TEI server.

    The config's mode picks the implementation, and every call goes to it. Local mode
    (:class:`~memsift_huggingface.local.LocalHuggingFaceReranker`): building it loads the
    model (or takes it from the process-wide cache); ``arerank`` runs the forward pass in
    a worker thread. Remote mode (:class:`~memsift_huggingface.remote.TEIReranker`): one
    sync and one async httpx client per instance, ``arerank`` is natively async.
    """

    config: HuggingFaceRerankerConfig

    def __init__(self, config: HuggingFaceRerankerConfig | None = None) -> None:
        super().__init__(config if config is not None else HuggingFaceRerankerConfig())
        self._impl: LocalHuggingFaceReranker | TEIReranker
        if self.config.mode == "remote":
            self._impl = TEIReranker(self.config)
        else:
            self._impl = LocalHuggingFaceReranker(self.config)

    @property
    def mode(self) -> str:
        """``local`` or ``remote``."""
        return self.config.mode

    @property
    def model_name(self) -> str:
        return self._impl.model_name

    @property
    def device(self) -> str | None:
        """The device of the local model (``auto`` resolved); None in the remote mode."""
        return self._impl.device if isinstance(self._impl, LocalHuggingFaceReranker) else None

    @property
    def _local(self) -> LocalModel | None:
        """The loaded local model; None in the remote mode."""
        impl = self._impl
        return impl._loaded if isinstance(impl, LocalHuggingFaceReranker) else None

    @property
    def _remote(self) -> TEIReranker | None:
        """The TEI client; None in the local mode."""
        return self._impl if isinstance(self._impl, TEIReranker) else None

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return self._impl.rerank(query, documents)

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return await self._impl.arerank(query, documents)

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        return self._impl.score_candidates(query, candidates)

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        return await self._impl.ascore_candidates(query, candidates)

    def close(self) -> None:
        """Close the HTTP clients (remote mode); a shared local model stays cached."""
        self._impl.close()

    async def aclose(self) -> None:
        await self._impl.aclose()


__all__ = ["HuggingFaceReranker"]
