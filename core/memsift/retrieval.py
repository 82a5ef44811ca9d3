"""The first stage of a search (DESIGN 3.2): planning it, the vector and keyword lists, their
fusion into one candidate list, and the keyword scores a lexical reranker reads.

**The plan.** A search asks the store for ``fetch = max(top_k, P)`` vector candidates (``P``
the reranker's pool when reranking applies). With the hybrid stage on, it also asks the
store's keyword index (BM25 over the same filtered set, term statistics from the whole
scoped collection) for ``keyword_top_k`` candidates (default 10; ``None``: ``fetch``), and fuses the
two lists:

- ``"rrf"`` (the default): reciprocal-rank fusion, ``score = sum over the lists of
  1 / (rrf_k + rank)`` (ranks from 1; ties keep the vector order);
- ``"interleave"``: the union of the two lists, alternating from the vector list (v1, k1,
  v2, k2, ...; a memory already taken is skipped), so the first ``P`` candidates a reranker
  scores hold the best ``P/2`` of each -- "the union, then rerank".

Every candidate keeps its true vector similarity (``vector_score``; the store computes it for
the keyword-only ones) and says which lists found it (``found_by``). Whether the hybrid stage
runs: a per-call ``hybrid=True/False``, else the config's ``search.hybrid``, whose ``"auto"``
runs it for a search that reranks with a reranker that reads keyword scores
(:attr:`~memsift.interfaces.Reranker.uses_keyword_scores`, e.g. ``bm25``) -- the setting the
measurements on conversational memory favour (README, "Retrieval quality").

**Keyword scores for the reranker.** When the reranker reads keyword scores and the store has
a keyword index, every pool candidate gets its BM25 score (the keyword list's where it found
it, one :meth:`~memsift.interfaces.VectorStore.keyword_scores` call for the rest; 0 for a
candidate that matches no query term).

**Fallback.** A store without a keyword index runs the vector stage alone; so does a search
whose keyword stage fails (logged as a warning). The response's ``first_stage`` block says
what ran and, when the hybrid stage was asked for and could not run, why (``fallback``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memsift.config import SearchConfig
from memsift.errors import InvalidInputError, StoreError
from memsift.filters import Filter
from memsift.interfaces import Reranker, VectorStore
from memsift.records import FloatArray, KeywordHit, VectorHit

log = logging.getLogger("memsift.search")


@dataclass(frozen=True)
class SearchPlan:
    """A checked search: its arguments and what each stage will do."""

    query: str
    filters: Filter
    top_k: int
    threshold: float | None
    rerank: bool  # whether the rerank stage runs
    pool: int  # how many candidates the reranker scores (0 when it does not run)
    fetch: int  # vector candidates
    keyword: int  # keyword candidates (0: no keyword list)
    fusion: str | None  # None: the vector list alone
    rrf_k: int
    keyword_scores: bool  # fill Candidate.keyword_score for the pool
    fallback: str | None  # why the hybrid stage was asked for and does not run


@dataclass
class FirstStage:
    """What the first stage did: its candidates and the response's ``first_stage`` block."""

    hits: list[VectorHit]
    vector_candidates: int = 0
    keyword_candidates: int = 0
    hybrid: bool = False
    fusion: str | None = None
    fallback: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def block(self) -> dict[str, Any]:
        return {
            "hybrid": self.hybrid,
            "fusion": self.fusion,
            "vector_candidates": self.vector_candidates,
            "keyword_candidates": self.keyword_candidates,
            "fallback": self.fallback,
        }


def check_hybrid(hybrid: Any) -> bool | None:
    if hybrid is None or isinstance(hybrid, bool):
        return hybrid
    raise InvalidInputError(f"hybrid must be True, False or None, got {hybrid!r}")


def plan_stages(
    *,
    query: str,
    filters: Filter,
    top_k: int,
    threshold: float | None,
    rerank: bool,
    pool: int,
    hybrid: bool | None,
    options: SearchConfig,
    store: VectorStore,
    reranker: Reranker | None,
) -> SearchPlan:
    """Decide the stages of a search (arguments already checked)."""
    fetch = max(top_k, pool) if rerank else top_k
    lexical = rerank and reranker is not None and reranker.uses_keyword_scores
    mode = options.hybrid if hybrid is None else hybrid
    wanted = mode is True or (mode == "auto" and lexical)
    supported = store.supports_keyword_search
    fallback = None
    if wanted and not supported:
        fallback = f"the vector store ({type(store).__name__}) has no keyword index"
    run = wanted and supported
    return SearchPlan(
        query=query,
        filters=filters,
        top_k=top_k,
        threshold=threshold,
        rerank=rerank,
        pool=pool if rerank else 0,
        fetch=fetch,
        keyword=(options.keyword_top_k or fetch) if run else 0,
        fusion=options.fusion if run else None,
        rrf_k=options.rrf_k,
        keyword_scores=lexical and supported,
        fallback=fallback,
    )


# --------------------------------------------------------------------------- fusion


def fuse(
    vector: Sequence[VectorHit],
    keyword: Sequence[KeywordHit],
    *,
    fusion: str,
    rrf_k: int = 60,
) -> list[VectorHit]:
    """One candidate list from the vector and the keyword lists (see the module docstring)."""
    hits: dict[str, VectorHit] = {}
    for h in vector:
        hits.setdefault(h.record.id, h)
    for k in keyword:
        found = hits.get(k.record.id)
        if found is not None:
            hits[k.record.id] = VectorHit(found.record, found.score, k.score, ("vector", "keyword"))
            continue
        if k.vector_score is None:
            raise StoreError("keyword_search returned a hit without its vector_score")
        hits[k.record.id] = VectorHit(
            record=k.record, score=k.vector_score, keyword_score=k.score, found_by=("keyword",)
        )
    v_ids = list(dict.fromkeys(h.record.id for h in vector))
    k_ids = list(dict.fromkeys(k.record.id for k in keyword))
    if fusion == "rrf":
        score = dict.fromkeys(hits, 0.0)
        for ranked in (v_ids, k_ids):
            for rank, i in enumerate(ranked, start=1):
                score[i] += 1.0 / (rrf_k + rank)
        v_rank = {i: n for n, i in enumerate(v_ids)}
        k_rank = {i: n for n, i in enumerate(k_ids)}
        last = len(hits)
        order = sorted(hits, key=lambda i: (-score[i], v_rank.get(i, last), k_rank.get(i, last)))
    elif fusion == "interleave":
        order = _interleave(v_ids, k_ids)
    else:
        raise InvalidInputError(f"unknown fusion {fusion!r}; valid: interleave, rrf")
    return [hits[i] for i in order]


def _interleave(first: list[str], second: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    a = b = 0
    while a < len(first) or b < len(second):
        while a < len(first) and first[a] in seen:
            a += 1
        if a < len(first):
            seen[first[a]] = None
            a += 1
        while b < len(second) and second[b] in seen:
            b += 1
        if b < len(second):
            seen[second[b]] = None
            b += 1
    return list(seen)


def with_keyword_scores(
    hits: list[VectorHit], pool: int, scores: dict[str, float]
) -> list[VectorHit]:
    """``hits`` with the pool's missing keyword scores filled from ``scores`` (0 if absent)."""
    out = list(hits)
    for i, h in enumerate(out[:pool]):
        if h.keyword_score is None:  # a plain constructor: dataclasses.replace is slow
            out[i] = VectorHit(h.record, h.score, scores.get(h.record.id, 0.0), h.found_by)
    return out


def _missing_scores(hits: Sequence[VectorHit], pool: int) -> list[str]:
    return [h.record.id for h in hits[:pool] if h.keyword_score is None]


def _keyword_failed(stage: FirstStage, exc: Exception) -> None:
    log.warning("the keyword stage failed; using the vector stage alone: %s", exc)
    stage.fallback = f"the keyword stage failed: {exc}"
    stage.hybrid, stage.fusion, stage.keyword_candidates = False, None, 0


# --------------------------------------------------------------------------- the drivers


def run_first_stage(store: VectorStore, plan: SearchPlan, vector: FloatArray) -> FirstStage:
    """The first stage, synchronously: vector list, keyword list, fusion, keyword scores."""
    t0 = time.perf_counter()
    hits = store.search(vector, filters=plan.filters, limit=plan.fetch)
    t1 = time.perf_counter()
    stage = FirstStage(hits=hits, vector_candidates=len(hits), fallback=plan.fallback)
    stage.timings["vector_ms"] = (t1 - t0) * 1000
    if plan.keyword or plan.keyword_scores:
        try:
            if plan.keyword:
                found = store.keyword_search(
                    plan.query, filters=plan.filters, limit=plan.keyword, vector=vector
                )
                _fused(stage, plan, found)
            missing = _missing_scores(stage.hits, plan.pool) if plan.keyword_scores else []
            if missing:
                scores = store.keyword_scores(plan.query, missing, filters=plan.filters)
                stage.hits = with_keyword_scores(stage.hits, plan.pool, scores)
        except StoreError as exc:
            _keyword_failed(stage, exc)
            stage.hits = hits
        stage.timings["keyword_ms"] = (time.perf_counter() - t1) * 1000
    return stage


async def arun_first_stage(store: VectorStore, plan: SearchPlan, vector: FloatArray) -> FirstStage:
    """The async twin of :func:`run_first_stage` (the store's async methods)."""
    t0 = time.perf_counter()
    hits = await store.asearch(vector, filters=plan.filters, limit=plan.fetch)
    t1 = time.perf_counter()
    stage = FirstStage(hits=hits, vector_candidates=len(hits), fallback=plan.fallback)
    stage.timings["vector_ms"] = (t1 - t0) * 1000
    if plan.keyword or plan.keyword_scores:
        try:
            if plan.keyword:
                found = await store.akeyword_search(
                    plan.query, filters=plan.filters, limit=plan.keyword, vector=vector
                )
                _fused(stage, plan, found)
            missing = _missing_scores(stage.hits, plan.pool) if plan.keyword_scores else []
            if missing:
                scores = await store.akeyword_scores(plan.query, missing, filters=plan.filters)
                stage.hits = with_keyword_scores(stage.hits, plan.pool, scores)
        except StoreError as exc:
            _keyword_failed(stage, exc)
            stage.hits = hits
        stage.timings["keyword_ms"] = (time.perf_counter() - t1) * 1000
    return stage


def _fused(stage: FirstStage, plan: SearchPlan, found: Sequence[KeywordHit]) -> None:
    assert plan.fusion is not None
    stage.hits = fuse(stage.hits, found, fusion=plan.fusion, rrf_k=plan.rrf_k)
    stage.hybrid, stage.fusion, stage.keyword_candidates = True, plan.fusion, len(found)


__all__ = [
    "FirstStage",
    "SearchPlan",
    "arun_first_stage",
    "check_hybrid",
    "fuse",
    "plan_stages",
    "run_first_stage",
    "with_keyword_scores",
]
