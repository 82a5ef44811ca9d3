"""Retry-budget scenarios of
:class:`memsift.testing.hosted_pipeline.HostedRerankerPipelineConformance`.

A hosted reranker's retries must fit inside its ``timeout`` (the search stage's budget): a
``Retry-After`` longer than what is left fails at once, as the server's status, and the
next search reranks as soon as the API is back; a short one is waited out; without a
``timeout`` no single wait is longer than :data:`memsift.kit.retry.MAX_RETRY_WAIT`; the SDK
adds no retries of its own; and closing the reranker, closing the ``Memory`` or the process
exiting never waits for a retry that sleeps. The scenarios are a mixin of the pipeline
suite, which provides their fixtures; they are not meant to be subclassed alone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from memsift.errors import RerankError
from memsift.memory import Memory
from memsift.testing.embedder import child_environment
from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault

QUERY = "Where does Alice live?"
DOCS = ["Alice moved to Lisbon in March.", "The report is due on Friday."]
RATE_LIMITED = "too many requests"
#: The longest a direct call of the reranker may take in these scenarios.
CALL_LIMIT = 15.0

Build = Callable[..., Any]

_EXIT_CHILD = textwrap.dedent(
    """
    import concurrent.futures, json, sys, time
    from memsift.config import resolve_section
    from memsift.registry import get_reranker

    section = resolve_section("reranker", json.loads(sys.argv[1]))
    reranker = get_reranker(section.provider).build(section.config)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(reranker.rerank, "query", ["a document"])
    time.sleep(1.0)
    print("sleeping" if future.running() else "done", flush=True)
    """
)


def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``limit`` seconds."""
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def call(reranker: Any, mode: str = "sync", *, limit: float = CALL_LIMIT) -> list[float]:
    """``rerank`` (mode ``sync``) or ``arerank`` run to completion (``async``) on
    :data:`QUERY` and :data:`DOCS`, in a worker thread: a call still running after
    ``limit`` seconds fails the test (the reranker is closed, to wake it)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            if mode == "sync":
                outcome.append(reranker.rerank(QUERY, DOCS))
            else:
                outcome.append(asyncio.run(reranker.arerank(QUERY, DOCS)))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        reranker.close()
        worker.join(5.0)
        pytest.fail(f"the {mode} call was still waiting after {limit:g} s", pytrace=False)
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    scores: list[float] = result
    return scores


class RetryBudgetScenarios:
    """Retries within the stage's budget, and closing that never waits for a retry.

    Class attributes: ``budget`` (2.0), the reranker ``timeout`` of the scenarios through
    search; ``budget_words``, what the fallback reason of a Retry-After that does not fit
    must say (the words of :class:`memsift.kit.retry.Retrier`; set ``()`` when your
    provider retries otherwise); ``max_retries_option``, the config key of the number of
    retries.
    """

    budget: ClassVar[float] = 2.0
    budget_words: ClassVar[tuple[str, ...]] = (
        "rate limited",
        "Retry-After 120 s exceeds the remaining budget",
    )
    max_retries_option: ClassVar[str] = "max_retries"

    def _retries(self, count: int) -> dict[str, Any]:
        return {self.max_retries_option: count}

    # ------------------------------------------------------------------ through search

    def test_a_long_retry_after_falls_back_at_once_as_a_429_then_recovers(
        self, open_memory: Callable[..., Any], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory(timeout=self.budget, **self._retries(2))
        body = _api.error_body(RATE_LIMITED)
        _api.fail(always=Fault(429, body, {"Retry-After": "120"}))
        start = time.monotonic()
        for _ in range(6):  # more searches than the rerank stage has worker threads
            block = memory.search(top_k=3, rerank=True)["rerank"]
            assert block["applied"] is False
            error = block["error"]
            assert "HTTP 429" in error and RATE_LIMITED in error, error
            for words in self.budget_words:
                assert words in error, error
        assert time.monotonic() - start < 6 * self.budget, (
            "a search waited for its stage timeout instead of failing at once"
        )
        assert len(_api.requests) == 6, "a retry was attempted although its wait did not fit"

        _api.fail(always=None)  # the API recovers
        start = time.monotonic()
        response = memory.search(top_k=3, rerank=True)
        assert response["rerank"]["applied"] is True, response["rerank"]
        assert response["rerank"]["error"] is None
        assert time.monotonic() - start < self.budget
        assert len(_api.requests) == 7

    def test_a_short_retry_after_within_the_budget_is_honoured(
        self, open_memory: Callable[..., Any], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory(timeout=self.budget, **self._retries(2))
        # not an integer: an SDK's own parser may ignore it and back off longer
        _api.fail(Fault(429, _api.error_body(RATE_LIMITED), {"Retry-After": "0.2"}))
        start = time.monotonic()
        response = memory.search(top_k=3, rerank=True)
        assert time.monotonic() - start >= 0.2
        assert response["rerank"]["applied"] is True, response["rerank"]
        assert len(_api.requests) == 2

    def test_memory_close_ends_a_search_waiting_for_a_retry(
        self, pipeline_config: Callable[[dict[str, Any]], dict[str, Any]], _api: FakeRerankAPI
    ) -> None:
        config = pipeline_config({"cache_size": 0, "timeout": 60, **self._retries(2)})
        memory = Memory.from_config(config)
        try:
            memory.add(DOCS, user_id="alice", infer=False)
        except BaseException:
            memory.close()
            raise
        _api.reset()
        _api.fail(always=Fault(429, _api.error_body(RATE_LIMITED), {"Retry-After": "20"}))
        responses: list[dict[str, Any]] = []
        thread = threading.Thread(
            target=lambda: responses.append(memory.search(QUERY, user_id="alice", rerank=True))
        )
        thread.start()
        wait_until(lambda: len(_api.requests) == 1)
        time.sleep(0.1)  # now in its 20 s wait
        start = time.monotonic()
        memory.close()
        thread.join(timeout=10.0)
        assert not thread.is_alive()
        assert time.monotonic() - start < 5.0, "closing the Memory waited for the retry"
        block = responses[0]["rerank"]
        assert block["applied"] is False and "HTTP 429" in block["error"]

    # ------------------------------------------------------------------ the reranker

    def test_a_retry_after_longer_than_the_rest_of_the_budget_is_not_waited_for(
        self, build_reranker: Build, _api: FakeRerankAPI
    ) -> None:
        # the first answer takes 0.5 s of the 1 s budget; a 0.8 s wait no longer fits
        _api.fail(Fault(503, _api.error_body("busy"), {"Retry-After": "0.8"}, delay=0.5))
        reranker = build_reranker(timeout=1.0, **self._retries(2))
        start = time.monotonic()
        with pytest.raises(RerankError) as info:
            call(reranker)
        assert time.monotonic() - start < 1.0
        assert info.value.status == 503
        if self.budget_words:
            assert "not retried: Retry-After 0.8 s exceeds the remaining budget" in str(info.value)
        assert len(_api.requests) == 1

    def test_without_a_timeout_a_retry_after_over_the_longest_wait_fails_at_once(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str
    ) -> None:
        _api.fail(always=Fault(429, _api.error_body(RATE_LIMITED), {"Retry-After": "120"}))
        reranker = build_reranker(**self._retries(2))
        start = time.monotonic()
        with pytest.raises(RerankError) as info:
            call(reranker, mode)
        assert time.monotonic() - start < 5.0
        assert info.value.status == 429
        if self.budget_words:
            assert "exceeds the longest retry wait of 30 s" in str(info.value)
        assert len(_api.requests) == 1

    def test_the_sdk_adds_no_retries_of_its_own(
        self, build_reranker: Build, _api: FakeRerankAPI
    ) -> None:
        _api.fail(always=Fault(503, _api.error_body("down"), {"Retry-After-Ms": "10"}))
        with pytest.raises(RerankError) as info:
            call(build_reranker(**self._retries(1)))
        assert info.value.status == 503
        if self.budget_words:
            assert "after 1 retry" in str(info.value)
        assert len(_api.requests) == 2, "one call and one retry: nothing else may retry"

    def test_close_wakes_a_sleeping_retry(self, build_reranker: Build, _api: FakeRerankAPI) -> None:
        _api.fail(always=Fault(429, _api.error_body(RATE_LIMITED), {"Retry-After": "20"}))
        reranker = build_reranker(timeout=60, **self._retries(2))
        errors: list[RerankError] = []

        def rerank() -> None:
            try:
                reranker.rerank(QUERY, DOCS)
            except RerankError as exc:
                errors.append(exc)

        thread = threading.Thread(target=rerank)
        thread.start()
        wait_until(lambda: len(_api.requests) == 1)
        time.sleep(0.1)  # now in its 20 s wait
        start = time.monotonic()
        reranker.close()
        thread.join(timeout=5.0)
        assert not thread.is_alive()
        assert time.monotonic() - start < 2.0, "close() did not wake the sleeping retry"
        (error,) = errors
        assert error.status == 429 and "closed" in str(error)
        assert len(_api.requests) == 1

    @pytest.mark.parametrize("closer", ["aclose", "close-from-a-thread"])
    def test_closing_wakes_a_sleeping_async_retry(
        self, build_reranker: Build, _api: FakeRerankAPI, closer: str
    ) -> None:
        _api.fail(always=Fault(429, _api.error_body(RATE_LIMITED), {"Retry-After": "20"}))
        reranker = build_reranker(timeout=60, **self._retries(2))

        async def main() -> tuple[float, BaseException | None]:
            task = asyncio.create_task(reranker.arerank(QUERY, DOCS))
            while not _api.requests:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            start = time.monotonic()
            if closer == "aclose":
                await reranker.aclose()
            else:  # what AsyncMemory.close() does: the sync close() in a worker thread
                await asyncio.to_thread(reranker.close)
            try:
                await asyncio.wait_for(task, 5.0)
            except RerankError as exc:
                return time.monotonic() - start, exc
            return time.monotonic() - start, None

        elapsed, error = asyncio.run(main())
        assert isinstance(error, RerankError), "the sleeping retry did not fail when closed"
        assert "closed" in str(error) and error.status == 429
        assert elapsed < 2.0

    def test_process_exit_does_not_wait_for_a_sleeping_retry(
        self, reranker_section: Callable[..., dict[str, Any]], _api: FakeRerankAPI
    ) -> None:
        _api.fail(always=Fault(429, _api.error_body(RATE_LIMITED), {"Retry-After": "25"}))
        section = reranker_section(timeout=60, **self._retries(2))
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_CHILD, json.dumps(section)],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_environment(),
            check=False,
        )
        elapsed = time.monotonic() - start
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == "sleeping", "no retry was asleep when the process exited"
        assert elapsed < 15.0, f"exit waited {elapsed:.1f} s for the sleeping retry"
        assert len(_api.requests) == 1


__all__ = ["RetryBudgetScenarios", "call", "wait_until"]
