"""The built-in reranker ``bm25``: lexical BM25 over the candidate pool, fused with the
vector score. No model, no network; microseconds per candidate.

It helps where embeddings are weak: names, dates, numbers and rare terms. The score of a
candidate is ``weight * lexical + (1 - weight) * vector``, where ``lexical`` is its BM25
score and ``vector`` its vector-stage similarity, each scaled to [0, 1] within the pool
(min-max; term statistics come from the pool too). Scores lie in [0, 1] and rank the pool;
they are relative to it, not absolute relevance. When called through
``rerank(query, documents)`` (no vector scores) it is min-max scaled BM25 alone.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from memsift.hookspecs import hookimpl
from memsift.interfaces import Candidate, Reranker, RerankerConfig, check_rerank_input

if TYPE_CHECKING:
    from memsift.registrar import ProviderRegistrar

_TOKEN = re.compile(r"\w+", re.UNICODE)


class BM25Config(RerankerConfig):
    """Config of the ``bm25`` reranker."""

    weight: float = Field(
        default=0.2, ge=0.0, le=1.0, description="share of BM25 in the fused score"
    )
    k1: float = Field(default=1.2, ge=0.0, le=10.0, description="BM25 term-frequency saturation")
    b: float = Field(default=0.75, ge=0.0, le=1.0, description="BM25 length normalisation")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


class BM25Reranker(Reranker):
    """BM25 over the pool, fused with the vector score."""

    config: BM25Config

    @property
    def model_name(self) -> str:
        return "bm25"

    def bm25(self, query: str, documents: Sequence[str]) -> list[float]:
        """Raw BM25 scores of ``documents`` for ``query``, statistics from ``documents``."""
        docs = [tokenize(d) for d in check_rerank_input(query, documents)]
        n = len(docs)
        if n == 0:
            return []
        terms = set(tokenize(query))
        if not terms:
            return [0.0] * n
        avg_len = sum(len(d) for d in docs) / n or 1.0
        df = Counter(t for d in docs for t in set(d) if t in terms)
        idf = {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
        k1, b = self.config.k1, self.config.b
        scores = []
        for doc in docs:
            tf = Counter(t for t in doc if t in terms)
            norm = k1 * (1.0 - b + b * len(doc) / avg_len)
            scores.append(sum(idf[t] * f * (k1 + 1.0) / (f + norm) for t, f in tf.items()))
        return scores

    def _fuse(self, raw: list[float], vector: Sequence[float] | None) -> list[float]:
        lexical = _min_max(raw)
        if vector is None:
            return lexical
        w = self.config.weight
        return [
            min(1.0, max(0.0, w * lex + (1.0 - w) * vec))
            for lex, vec in zip(lexical, _min_max(list(vector)))
        ]

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return self._fuse(self.bm25(query, documents), None)

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        raw = self.bm25(query, [c.text for c in candidates])
        return self._fuse(raw, [c.vector_score for c in candidates])

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.rerank(query, documents)  # pure CPU and fast: no thread hop

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        return self.score_candidates(query, candidates)


def _min_max(values: list[float]) -> list[float]:
    """Scale to [0, 1] within the pool; equal values all get 1 (0 when they are all 0)."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high - low <= 1e-12:
        return [1.0 if high > 0 else 0.0] * len(values)
    return [(v - low) / (high - low) for v in values]


@hookimpl
def register_rerankers(registry: ProviderRegistrar) -> None:
    registry.register(
        "bm25",
        BM25Reranker,
        BM25Config,
        description="BM25 over the candidate pool fused with the vector score; no model",
    )
