"""The plain data types: a stored memory, a vector hit, a reranker's candidate, an embedder's
identity, and the float arrays vectors travel in.

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
    """What a reranker sees of one candidate: its text, its vector score and its record."""

    text: str
    vector_score: float
    record: MemoryRecord

    @classmethod
    def from_hit(cls, hit: VectorHit) -> Candidate:
        """The candidate of a vector-stage hit (what the rerank stage hands a reranker)."""
        return cls(text=hit.record.memory, vector_score=hit.score, record=hit.record)


@dataclass(frozen=True)
class VectorHit:
    """A vector-stage candidate: the record and its similarity (higher is better)."""

    record: MemoryRecord
    score: float


__all__ = ["Candidate", "EmbedderIdentity", "FloatArray", "MemoryRecord", "VectorHit"]
