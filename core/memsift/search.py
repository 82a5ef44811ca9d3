"""The search pipeline: rerank stage, result assembly, with timings (the first stage --
vector and keyword lists, their fusion -- is :mod:`memsift.retrieval`).

The pipeline owns everything around a reranker call -- the candidate pool, the score
cache, the timeout, validation of the scores, the fallback to vector order, ordering and
timings -- so providers only map ``(query, documents)`` to scores. ``Memory`` and
``AsyncMemory`` drive the same steps; only the awaiting differs. The checks of a search's
arguments (query, ``top_k``, threshold, scope) are in :mod:`memsift.inputs`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memsift.errors import RerankError, RerankTimeoutError
from memsift.inputs import (
    MAX_ID_CHARS,
    MAX_QUERY_CHARS,
    MAX_TOP_K,
    SCOPE_STAR_PROBLEM,
    check_id_text,
    check_query,
    check_scope_id,
    check_scope_pins,
    check_threshold,
    check_top_k,
    scoped_filter,
)
from memsift.interfaces import Reranker, RerankerConfig
from memsift.records import Candidate, VectorHit

log = logging.getLogger("memsift.search")


def default_pool(top_k: int) -> int:
    """The default candidate pool for a search returning ``top_k`` hits."""
    return min(max(3 * top_k, 20), 100)


# --------------------------------------------------------------------------- cache


class ScoreCache:
    """LRU cache of rerank scores keyed by (provider, model, query, memory hash)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str]) -> float | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, str, str], value: float) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


# --------------------------------------------------------------------------- the stage


class RerankScores(list[float]):
    """Scores a reranker returns from ``score_candidates`` / ``ascore_candidates`` with what
    it reports about the call: ``details``, JSON-able entries (token usage, the scoring
    method) that the stage adds to the ``rerank`` block beside its own keys (which win).
    A plain list reports nothing."""

    def __init__(self, scores: Iterable[float] = (), details: Mapping[str, Any] | None = None):
        super().__init__(scores)
        self.details: dict[str, Any] = dict(details or {})


@dataclass
class RerankOutcome:
    """What the rerank stage did; becomes the response's ``rerank`` block."""

    provider: str | None
    model: str | None
    applied: bool = False
    candidates: int = 0
    duration_ms: float = 0.0
    provider_ms: float = 0.0
    cache_hits: int = 0
    error: str | None = None
    scores: list[float] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def block(self) -> dict[str, Any]:
        block = {
            "provider": self.provider,
            "model": self.model,
            "applied": self.applied,
            "candidates": self.candidates,
            "duration_ms": round(self.duration_ms, 3),
            "cache_hits": self.cache_hits,
            "error": self.error,
        }
        block.update((k, v) for k, v in self.details.items() if k not in block)
        return block


@dataclass
class _Attempt:
    """One rerank call in progress: its outcome, clock, and which candidates need scoring."""

    outcome: RerankOutcome
    start: float
    cached: list[float | None]
    missing: list[int]
    docs: list[Candidate]


@dataclass
class RerankStage:
    """A configured reranker with its pipeline options and score cache."""

    name: str
    reranker: Reranker
    cache: ScoreCache
    _pool: concurrent.futures.ThreadPoolExecutor | None = field(default=None, repr=False)

    @classmethod
    def build(cls, name: str, reranker: Reranker) -> RerankStage:
        cfg = reranker.config
        size = cfg.cache_size if isinstance(cfg, RerankerConfig) else 0
        return cls(name=name, reranker=reranker, cache=ScoreCache(size))

    @property
    def options(self) -> RerankerConfig:
        cfg = self.reranker.config
        return cfg if isinstance(cfg, RerankerConfig) else RerankerConfig()

    def pool_size(self, top_k: int) -> int:
        return self.options.top_k or default_pool(top_k)

    def _lookup(
        self, query: str, hits: Sequence[VectorHit]
    ) -> tuple[list[float | None], list[int]]:
        if self.cache.size <= 0:  # no cache: nothing to look up
            return [None] * len(hits), list(range(len(hits)))
        model = self.reranker.model_name
        cached: list[float | None] = []
        missing: list[int] = []
        for i, hit in enumerate(hits):
            value = self.cache.get((self.name, model, query, hit.record.hash))
            cached.append(value)
            if value is None:
                missing.append(i)
        return cached, missing

    def _merge(
        self,
        query: str,
        hits: Sequence[VectorHit],
        cached: list[float | None],
        missing: list[int],
        fresh: Sequence[float],
    ) -> list[float]:
        scores = validate_scores(fresh, len(missing), self.name)
        model = self.reranker.model_name
        for i, score in zip(missing, scores):
            cached[i] = score
            self.cache.put((self.name, model, query, hits[i].record.hash), score)
        return [float(s) for s in cached]  # type: ignore[arg-type]

    def _outcome(self) -> RerankOutcome:
        return RerankOutcome(provider=self.name, model=self.reranker.model_name or None)

    def _fail(self, outcome: RerankOutcome, exc: BaseException) -> None:
        reason = describe_error(exc)
        outcome.error = reason
        outcome.applied = False
        outcome.scores = None
        if self.options.on_error == "raise":
            if isinstance(exc, RerankError):
                raise exc
            raise RerankError(self.name, reason) from exc
        log.warning("reranker %r failed; returning vector order: %s", self.name, reason)

    def _open(self, query: str, hits: Sequence[VectorHit]) -> _Attempt:
        outcome = self._outcome()
        outcome.candidates = len(hits)
        start = time.perf_counter()
        cached, missing = self._lookup(query, hits)
        outcome.cache_hits = len(hits) - len(missing)
        docs = [Candidate.from_hit(hits[i]) for i in missing]
        return _Attempt(outcome, start, cached, missing, docs)

    def _close(
        self,
        attempt: _Attempt,
        query: str,
        hits: Sequence[VectorHit],
        fresh: Sequence[float],
        error: Exception | None,
    ) -> RerankOutcome:
        outcome = attempt.outcome
        try:
            if error is not None:
                raise error
            if isinstance(fresh, RerankScores):
                outcome.details.update(fresh.details)
            outcome.scores = self._merge(query, hits, attempt.cached, attempt.missing, fresh)
            outcome.applied = True
        except Exception as exc:
            self._fail(outcome, exc)
        outcome.duration_ms = (time.perf_counter() - attempt.start) * 1000
        return outcome

    def run(self, query: str, hits: Sequence[VectorHit]) -> RerankOutcome:
        """Score ``hits`` (already cut to the pool) synchronously, honouring the timeout."""
        attempt = self._open(query, hits)
        fresh: Sequence[float] = []
        error: Exception | None = None
        if attempt.docs:
            t0 = time.perf_counter()
            try:
                fresh = self._call(query, attempt.docs)
            except Exception as exc:
                error = exc
            attempt.outcome.provider_ms = (time.perf_counter() - t0) * 1000
        return self._close(attempt, query, hits, fresh, error)

    def _call(self, query: str, docs: list[Candidate]) -> Sequence[float]:
        timeout = self.options.timeout
        if timeout is None:
            return self.reranker.score_candidates(query, docs)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix=f"memsift-rerank-{self.name}"
            )
        future = self._pool.submit(self.reranker.score_candidates, query, docs)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise self._timeout_error(timeout) from None

    def _timeout_error(self, timeout: float) -> RerankTimeoutError:
        return RerankTimeoutError(self.name, f"no answer within the timeout of {timeout:g} s")

    async def arun(self, query: str, hits: Sequence[VectorHit]) -> RerankOutcome:
        """The async twin of :meth:`run`; never blocks the event loop."""
        attempt = self._open(query, hits)
        fresh: Sequence[float] = []
        error: Exception | None = None
        if attempt.docs:
            t0 = time.perf_counter()
            timeout = self.options.timeout
            try:
                call = self.reranker.ascore_candidates(query, attempt.docs)
                fresh = await asyncio.wait_for(call, timeout)
            except asyncio.TimeoutError:
                error = self._timeout_error(timeout or 0.0)
            except Exception as exc:
                error = exc
            attempt.outcome.provider_ms = (time.perf_counter() - t0) * 1000
        return self._close(attempt, query, hits, fresh, error)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.reranker.close()


def validate_scores(scores: Any, expected: int, provider: str) -> list[float]:
    """Check a provider's answer: one finite score in [0, 1] per document."""
    try:
        values = [float(s) for s in scores]
    except (TypeError, ValueError) as exc:
        raise RerankError(provider, f"scores are not numbers: {exc}") from None
    if len(values) != expected:
        raise RerankError(provider, f"returned {len(values)} scores for {expected} documents")
    for v in values:
        if not math.isfinite(v):
            raise RerankError(provider, "returned a score that is not finite")
        if not 0.0 <= v <= 1.0:
            raise RerankError(provider, f"returned a score outside [0, 1]: {v!r}")
    return values


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, RerankError) else f"{type(exc).__name__}: {text}"


# --------------------------------------------------------------------------- assembly


def hit_dict(hit: VectorHit, rerank_score: float | None) -> dict[str, Any]:
    out = hit.record.to_dict()
    out["vector_score"] = float(hit.score)
    if hit.keyword_score is not None:
        out["keyword_score"] = float(hit.keyword_score)
    if rerank_score is not None:
        out["rerank_score"] = float(rerank_score)
    out["score"] = float(rerank_score if rerank_score is not None else hit.score)
    out["found_by"] = list(hit.found_by)
    return out


def assemble(
    hits: Sequence[VectorHit],
    outcome: RerankOutcome | None,
    *,
    top_k: int,
    threshold: float | None,
) -> list[dict[str, Any]]:
    """Order the hits as the contract says, then apply ``threshold`` to ``score``."""
    if outcome is None or not outcome.applied or outcome.scores is None:
        results = [hit_dict(h, None) for h in hits[:top_k]]
    else:
        scores = outcome.scores
        pool = len(scores)
        order = sorted(range(pool), key=lambda i: (-scores[i], i))
        results = [hit_dict(hits[i], scores[i]) for i in order[:top_k]]
        if len(results) < top_k:
            results.extend(hit_dict(h, None) for h in hits[pool : pool + top_k - len(results)])
    if threshold is not None:
        results = [r for r in results if r["score"] >= threshold]
    return results


@dataclass(frozen=True)
class SearchEvent:
    """What the ``memsift_search_completed`` hook receives after every search."""

    query: str
    top_k: int
    results: int
    candidates: int
    rerank: Mapping[str, Any]
    timings: Mapping[str, float]
    is_async: bool
    first_stage: Mapping[str, Any] = field(default_factory=dict)


# This module's names, and the checks of a search's arguments, which moved to memsift.inputs
# (still importable from here).
__all__ = [
    "MAX_ID_CHARS",
    "MAX_QUERY_CHARS",
    "MAX_TOP_K",
    "SCOPE_STAR_PROBLEM",
    "RerankOutcome",
    "RerankScores",
    "RerankStage",
    "ScoreCache",
    "SearchEvent",
    "assemble",
    "check_id_text",
    "check_query",
    "check_scope_id",
    "check_scope_pins",
    "check_threshold",
    "check_top_k",
    "default_pool",
    "describe_error",
    "hit_dict",
    "scoped_filter",
    "validate_scores",
]
