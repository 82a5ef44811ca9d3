"""The built-in reranker ``bm25``: a lexical BM25 score fused with the vector score. No model,
no network; microseconds per candidate.

It helps where embeddings are weak: names, dates, numbers and rare terms -- which is much of
what conversational memory is asked about. The score of a candidate is
``weight * lexical + (1 - weight) * vector``, where ``lexical`` is its BM25 score and
``vector`` its vector-stage similarity, each scaled to [0, 1] within the pool (min-max).
Scores lie in [0, 1] and rank the pool; they are relative to it, not absolute relevance.

**Term statistics.** With ``statistics: "collection"`` (the default) and a store that has a
keyword index, the BM25 scores are the store's (the store's analyzer; term statistics from
the whole scoped collection -- for the ``faiss`` store, every memory of the scope the filter
pins, not only the pool; the search pipeline hands them over as
:attr:`~memsift.records.Candidate.keyword_score`), and the hybrid first stage's ``"auto"``
default adds the keyword index's own candidates to the pool. Otherwise (``"pool"``, a store
without a keyword index, or a direct ``rerank(query, documents)`` call) BM25 is computed over
the pool itself, its texts analysed by this reranker's own :class:`~memsift.lexical.Analyzer`
(``language``, ``stemming``, ``stopwords``; ``k1`` and ``b`` apply to this pool BM25).

The defaults (weight 0.3, a pool of 50, collection statistics) were chosen on the REALTALK
conversations among the settings that keep two BEIR passage sets within 0.01 nDCG@10 of the
vector order (README, "Retrieval quality").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from memsift.hookspecs import hookimpl
from memsift.interfaces import Candidate, Reranker, RerankerConfig, check_rerank_input
from memsift.lexical import Analyzer, bm25_scores, check_language

if TYPE_CHECKING:
    from memsift.registrar import ProviderRegistrar


class BM25Config(RerankerConfig):
    """Config of the ``bm25`` reranker."""

    top_k: int | None = Field(
        default=50, ge=1, le=1000, description="candidate pool size (default 50)"
    )
    weight: float = Field(
        default=0.3, ge=0.0, le=1.0, description="share of BM25 in the fused score"
    )
    k1: float = Field(
        default=1.2, ge=0.0, le=10.0, description="BM25 term-frequency saturation (pool BM25)"
    )
    b: float = Field(
        default=0.75, ge=0.0, le=1.0, description="BM25 length normalisation (pool BM25)"
    )
    statistics: Literal["collection", "pool"] = Field(
        default="collection",
        description="term statistics: the store's keyword index (collection) or the pool",
    )
    language: str = Field(default="english", description="stemmer and stop words (pool BM25)")
    stemming: bool = Field(default=True, description="stem terms (pool BM25)")
    stopwords: bool | list[str] = Field(
        default=True, description="drop stop words (pool BM25): true, false, or a list"
    )

    @field_validator("language")
    @classmethod
    def _check_language(cls, value: str) -> str:
        return check_language(value)


def tokenize(text: str) -> list[str]:
    """The terms of ``text`` by the default analyzer (English, stemmed, stop words dropped)."""
    return _default_analyzer().terms(text)


class BM25Reranker(Reranker):
    """BM25 (the store's, or over the pool) fused with the vector score."""

    config: BM25Config

    @property
    def model_name(self) -> str:
        return "bm25"

    @property
    def uses_keyword_scores(self) -> bool:
        return self.config.statistics == "collection"

    @cached_property
    def analyzer(self) -> Analyzer:
        cfg = self.config
        stops = cfg.stopwords
        return Analyzer(
            language=cfg.language,
            stemming=cfg.stemming,
            stopwords=tuple(stops) if isinstance(stops, list) else stops,
        )

    def bm25(self, query: str, documents: Sequence[str]) -> list[float]:
        """Raw BM25 scores of ``documents`` for ``query``, statistics from ``documents``."""
        docs = check_rerank_input(query, documents)
        analyzer = self.analyzer
        return bm25_scores(
            analyzer.query_terms(query),
            (analyzer.terms(d) for d in docs),
            k1=self.config.k1,
            b=self.config.b,
        )

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
        given = [c.keyword_score for c in candidates]
        if self.uses_keyword_scores and candidates and all(s is not None for s in given):
            check_rerank_input(query, [])
            raw = [float(s or 0.0) for s in given]
        else:
            raw = self.bm25(query, [c.text for c in candidates])
        return self._fuse(raw, [c.vector_score for c in candidates])

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.rerank(query, documents)  # pure CPU and fast: no thread hop

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        return self.score_candidates(query, candidates)


@functools.cache
def _default_analyzer() -> Analyzer:
    return Analyzer()


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
        description="BM25 (the store's keyword index, or the pool) fused with the vector score",
    )
