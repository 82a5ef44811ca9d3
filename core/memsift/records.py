"""The plain data types: a stored memory, a vector hit, a keyword hit, a reranker's candidate,
an embedder's identity, and the float arrays vectors travel in.

They import nothing of memsift, so every layer (the filter evaluator, the stores, the search
pipeline, the providers) can use them. Plugins import them from :mod:`memsift.interfaces` or
from ``memsift`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EmbedderIdentity:
    """Which embedder filled a store: vectors from another must never be mixed in."""

    provider: str
    model: str
    dims: int


@dataclass
class MemoryRecord:
    """One stored memory, as a vector store holds it."""

    id: str
    memory: str
    hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    created_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "memory": self.memory,
            "hash": self.hash,
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        for key in ("user_id", "agent_id", "run_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Candidate:
    """What a reranker sees of one candidate: its text, its vector score and its record.

    ``keyword_score`` is the store's BM25 score of the candidate for the query (term
    statistics of the scope searched; 0.0 when it matches no query term), given to a
    reranker that declares :attr:`~memsift.interfaces.Reranker.uses_keyword_scores` when the
    store has a keyword index; None otherwise.
    """

    text: str
    vector_score: float
    record: MemoryRecord
    keyword_score: float | None = None

    @classmethod
    def from_hit(cls, hit: VectorHit) -> Candidate:
        """The candidate of a first-stage hit (what the rerank stage hands a reranker)."""
        return cls(
            text=hit.record.memory,
            vector_score=hit.score,
            record=hit.record,
            keyword_score=hit.keyword_score,
        )


@dataclass(frozen=True)
class VectorHit:
    """A first-stage candidate: the record and its vector similarity (higher is better).

    A store's vector search returns these with the defaults. The search pipeline adds what
    the hybrid first stage knows: ``keyword_score`` (the store's BM25 score, when the keyword
    index was asked) and ``found_by``, the first-stage lists that found it (``"vector"``,
    ``"keyword"``). A hit found only by keywords still has its true vector similarity.
    """

    record: MemoryRecord
    score: float
    keyword_score: float | None = None
    found_by: tuple[str, ...] = ("vector",)


@dataclass(frozen=True)
class KeywordHit:
    """A keyword-stage candidate: the record, its BM25 score (higher is better, term
    statistics of the scope searched) and its vector similarity to the query (None when
    no query vector was given)."""

    record: MemoryRecord
    score: float
    vector_score: float | None = None


__all__ = [
    "Candidate",
    "EmbedderIdentity",
    "FloatArray",
    "KeywordHit",
    "MemoryRecord",
    "VectorHit",
]
