"""Benchmark: the pointwise ``llm_reranker`` in the rerank stage against the core's fake
OpenAI server, which answers every request after a fixed delay.

The figure is the wall time of the stage (``RerankOutcome.duration_ms``, median of a few
runs, score cache off) over one request's delay: a pool of ``n`` candidates sent within
``max_concurrency`` ``c`` takes about ``ceil(n / c)`` delays plus memsift's own time. The
targets: a 20-candidate pool in at most 2 delays with ``max_concurrency`` 20, and in at
most ``ceil(20 / 8) + 1 = 4`` with the default of 8 (``ceil(n / c) + 1`` for the others).
It needs ``memsift[testing]`` (the fake server) and ``memsift-openai`` (the llm provider
it goes through); without them it reports why instead of a figure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
from typing import Any

from memsift.figures import Figure
from memsift.records import MemoryRecord, VectorHit

QUERY = "where did alice move to"
KEY = "sk-bench-0123456789abcdef"
DEFAULT_CONCURRENCY = 8


def _hits(count: int) -> list[VectorHit]:
    return [
        VectorHit(
            record=MemoryRecord(
                id=f"m{i}", memory=f"Memory {i}: Alice went to place {i}.", hash=f"bench-llm-{i}"
            ),
            score=0.9 - i * 0.001,
        )
        for i in range(count)
    ]


def _stage(base_url: str, concurrency: int | None) -> Any:
    from memsift.config import resolve_section
    from memsift.registry import get_reranker
    from memsift.search import RerankStage

    options: dict[str, Any] = {
        "provider": "openai",
        "model": "bench-model",
        "api_key": KEY,
        "cache_size": 0,
        "llm": {"provider": "openai", "config": {"base_url": base_url, "max_retries": 0}},
    }
    if concurrency is not None:
        options["max_concurrency"] = concurrency
    section = resolve_section("reranker", {"provider": "llm_reranker", "config": options})
    return RerankStage.build("llm_reranker", get_reranker("llm_reranker").build(section.config))


def _ratio(stage: Any, count: int, delay: float, repeats: int, is_async: bool) -> float:
    hits = _hits(count)
    loop = asyncio.new_event_loop()  # one loop for every async run, as AsyncMemory has

    def once() -> float:
        if is_async:
            outcome = loop.run_until_complete(stage.arun(QUERY, hits))
        else:
            outcome = stage.run(QUERY, hits)
        if not outcome.applied:
            raise RuntimeError(f"the rerank stage failed: {outcome.error}")
        return float(outcome.duration_ms) / 1000.0

    try:
        once()  # warm-up: clients, connections, threads
        return statistics.median(once() for _ in range(repeats)) / delay
    finally:
        loop.run_until_complete(stage.reranker.aclose())
        loop.close()


def run(quick: bool = False) -> list[Figure]:
    """The figures of ``memsift bench``: for pools of 20 and 50 candidates, with
    ``max_concurrency`` 20 and the default 8, the stage's time in request delays."""
    try:
        import memsift_openai  # noqa: F401  (the llm provider the stage goes through)
        from memsift.testing.fake_openai_api import FakeOpenAI, Reply, threaded_server
    except ImportError as exc:
        note = f"needs memsift[testing] and memsift-openai ({exc.name} is missing)"
        return [
            Figure("llm_reranker: pointwise pool / one request", math.nan, "delays", "", None, note)
        ]
    # long enough that a loaded machine's per-request overhead stays small beside it
    delay = 0.25 if quick else 0.5
    repeats = 3 if quick else 5
    cases = [
        (20, 20, False),
        (20, 20, True),
        (20, None, False),
        (20, None, True),
        (50, 20, False),
        (50, None, False),
    ]
    figures: list[Figure] = []
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    with threaded_server() as server:
        api = FakeOpenAI(server, KEY)
        api.delay = delay
        api.responder = lambda body: Reply(tokens=[{"yes": math.log(0.7), "no": math.log(0.3)}])
        for count, concurrency, is_async in cases:
            stage = _stage(api.base_url, concurrency)
            try:
                ratio = _ratio(stage, count, delay, repeats, is_async)
            finally:
                stage.close()
            limit = concurrency or DEFAULT_CONCURRENCY
            target = 2 if (count, limit) == (20, 20) else math.ceil(count / limit) + 1
            shown = f"{limit}" if concurrency else f"{limit}, the default"
            figures.append(
                Figure(
                    f"llm_reranker: {count}-candidate pool / one request "
                    f"(max_concurrency {shown}, {'async' if is_async else 'sync'})",
                    round(ratio, 3),
                    "delays",
                    f"<= {target}",
                    ratio <= target,
                    note=f"delay {delay:g} s, median of {repeats}, most in flight "
                    f"{api.max_in_flight}",
                )
            )
            api.max_in_flight = 0
    return figures


__all__ = ["run"]
