"""Retries fit inside the reranker's ``timeout``: a long Retry-After fails at once as a 429,
a short one is honoured, and closing (or exiting) never waits for a sleeping retry.

Timing assertions are lower bounds, or wide upper bounds that show a long wait was cut.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI, Fault, memory_config

from memsift import AsyncMemory, Memory, RerankError
from memsift_cohere import CohereReranker

Make = Callable[..., CohereReranker]
Search = Callable[..., dict[str, Any]]

USER = "alice"
MEMORIES = [
    "Alice moved to Lisbon in March.",
    "Alice prefers green tea over coffee.",
    "Alice adopted a cat called Miso.",
    "Alice is learning to play the cello.",
]
QUERY = "Where does Alice live?"
DOCS = ["Alice moved to Lisbon in March.", "The report is due on Friday."]
# a 2 s stage budget, retries allowed, no cache: every reranked search reaches the fake
OPTIONS: dict[str, Any] = {"cache_size": 0, "timeout": 2.0, "max_retries": 2}
RATE_LIMITED = {"message": "too many requests"}


@pytest.fixture(scope="module")
def memory(_fake_api: FakeCohereAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    m = Memory.from_config(
        memory_config(tmp_path_factory.mktemp("s"), _fake_api.base_url, **OPTIONS)
    )
    m.add(MEMORIES, user_id=USER)
    yield m
    m.close()


@pytest.fixture(scope="module")
def amemory(
    _fake_api: FakeCohereAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsyncMemory]:
    path = tmp_path_factory.mktemp("a")
    am = AsyncMemory.from_config(memory_config(path, _fake_api.base_url, **OPTIONS))
    asyncio.run(am.add(MEMORIES, user_id=USER))
    yield am
    am.close()


@pytest.fixture(params=["sync", "async"])
def search(request: pytest.FixtureRequest, fake_api: FakeCohereAPI) -> Search:
    if request.param == "sync":
        return request.getfixturevalue("memory").search  # type: ignore[no-any-return]
    am: AsyncMemory = request.getfixturevalue("amemory")
    return lambda *a, **k: asyncio.run(am.search(*a, **k))


def _wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


# ---------------------------------------------------------------------- through search


def test_a_long_retry_after_falls_back_at_once_as_a_429_and_recovery_is_immediate(
    search: Search, fake_api: FakeCohereAPI
) -> None:
    fake_api.fail(always=Fault(429, RATE_LIMITED, {"Retry-After": "120"}))
    start = time.monotonic()
    for _ in range(6):  # more searches than the stage has worker threads
        block = search(QUERY, user_id=USER, top_k=3, rerank=True)["rerank"]
        assert block["applied"] is False
        assert "HTTP 429" in block["error"] and "rate limited" in block["error"]
        assert "Retry-After 120 s exceeds the remaining budget" in block["error"]
        assert "too many requests" in block["error"]
    assert time.monotonic() - start < 6 * 2.0  # none of them waited for the stage timeout
    assert len(fake_api.requests) == 6  # no retry was attempted: it could not fit

    fake_api.fail(always=None)  # the API recovers
    start = time.monotonic()
    response = search(QUERY, user_id=USER, top_k=3, rerank=True)
    assert response["rerank"]["applied"] is True, response["rerank"]
    assert response["rerank"]["error"] is None
    assert time.monotonic() - start < 2.0
    assert len(fake_api.requests) == 7


def test_a_short_retry_after_within_the_budget_is_honoured(
    search: Search, fake_api: FakeCohereAPI
) -> None:
    # "0.2" is not an integer: the SDK's own parser would ignore it and back off 1 s
    fake_api.fail(Fault(429, RATE_LIMITED, {"Retry-After": "0.2"}))
    start = time.monotonic()
    response = search(QUERY, user_id=USER, top_k=3, rerank=True)
    assert time.monotonic() - start >= 0.2
    assert response["rerank"]["applied"] is True, response["rerank"]
    assert len(fake_api.requests) == 2


def test_a_retry_after_longer_than_the_rest_of_the_budget_is_not_waited_for(
    make_reranker: Make, fake_api: FakeCohereAPI
) -> None:
    # the first answer takes 0.5 s of the 1 s budget; a 0.8 s wait no longer fits
    fake_api.fail(Fault(503, {"message": "busy"}, {"Retry-After": "0.8"}, delay=0.5))
    start = time.monotonic()
    with pytest.raises(RerankError) as info:
        make_reranker(timeout=1.0, max_retries=2).rerank(QUERY, DOCS)
    assert time.monotonic() - start < 1.0
    assert info.value.status == 503
    assert "not retried: Retry-After 0.8 s exceeds the remaining budget" in str(info.value)
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_without_a_timeout_a_retry_after_over_the_longest_wait_fails_at_once(
    make_reranker: Make, fake_api: FakeCohereAPI, mode: str
) -> None:
    fake_api.fail(always=Fault(429, RATE_LIMITED, {"Retry-After": "120"}))
    reranker = make_reranker(max_retries=2)
    start = time.monotonic()
    with pytest.raises(RerankError) as info:
        if mode == "sync":
            reranker.rerank(QUERY, DOCS)
        else:
            asyncio.run(reranker.arerank(QUERY, DOCS))
    assert time.monotonic() - start < 5.0
    assert info.value.status == 429
    assert "exceeds the longest retry wait of 30 s" in str(info.value)
    assert len(fake_api.requests) == 1


def test_the_sdk_does_not_retry_on_its_own(make_reranker: Make, fake_api: FakeCohereAPI) -> None:
    fake_api.fail(always=Fault(503, {"message": "down"}, {"Retry-After-Ms": "10"}))
    with pytest.raises(RerankError, match="after 1 retry"):
        make_reranker(max_retries=1).rerank(QUERY, DOCS)
    assert len(fake_api.requests) == 2  # one call, one retry: the SDK added none


# ---------------------------------------------------------------------- closing


def test_close_wakes_a_sleeping_retry(make_reranker: Make, fake_api: FakeCohereAPI) -> None:
    fake_api.fail(always=Fault(429, RATE_LIMITED, {"Retry-After": "20"}))
    reranker = make_reranker(timeout=60, max_retries=2)
    errors: list[RerankError] = []

    def call() -> None:
        try:
            reranker.rerank(QUERY, DOCS)
        except RerankError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    _wait_until(lambda: len(fake_api.requests) == 1)
    time.sleep(0.1)  # now in its 20 s wait
    start = time.monotonic()
    reranker.close()
    assert time.monotonic() - start < 2.0
    thread.join(timeout=5.0)
    assert not thread.is_alive()
    assert time.monotonic() - start < 2.0
    (error,) = errors
    assert error.status == 429 and "closed" in str(error)
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize("closer", ["aclose", "close-from-a-thread"])
async def test_closing_wakes_a_sleeping_async_retry(
    make_reranker: Make, fake_api: FakeCohereAPI, closer: str
) -> None:
    fake_api.fail(always=Fault(429, RATE_LIMITED, {"Retry-After": "20"}))
    reranker = make_reranker(timeout=60, max_retries=2)
    task = asyncio.create_task(reranker.arerank(QUERY, DOCS))
    while not fake_api.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    start = time.monotonic()
    if closer == "aclose":
        await reranker.aclose()
    else:  # what AsyncMemory.close() does: the sync close() in a worker thread
        await asyncio.to_thread(reranker.close)
    with pytest.raises(RerankError, match="closed") as info:
        await asyncio.wait_for(task, 5.0)
    assert time.monotonic() - start < 2.0
    assert info.value.status == 429


def test_memory_close_ends_a_search_waiting_for_a_retry(
    fake_api: FakeCohereAPI, tmp_path: Path
) -> None:
    options = {"cache_size": 0, "timeout": 60, "max_retries": 2}
    memory = Memory.from_config(memory_config(tmp_path, fake_api.base_url, **options))
    memory.add(MEMORIES, user_id=USER)
    fake_api.fail(always=Fault(429, RATE_LIMITED, {"Retry-After": "20"}))
    responses: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: responses.append(memory.search(QUERY, user_id=USER, rerank=True))
    )
    thread.start()
    _wait_until(lambda: len(fake_api.requests) == 1)
    time.sleep(0.1)
    start = time.monotonic()
    memory.close()
    thread.join(timeout=10.0)
    assert not thread.is_alive()
    assert time.monotonic() - start < 5.0
    block = responses[0]["rerank"]
    assert block["applied"] is False and "HTTP 429" in block["error"]


def test_process_exit_does_not_wait_for_a_sleeping_retry(fake_api: FakeCohereAPI) -> None:
    fake_api.fail(always=Fault(429, RATE_LIMITED, {"Retry-After": "25"}))
    script = textwrap.dedent(
        f"""
        import concurrent.futures, time
        from memsift_cohere import CohereConfig, CohereReranker

        config = CohereConfig(
            api_key={API_KEY!r}, base_url={fake_api.base_url!r}, timeout=60, max_retries=2
        )
        reranker = CohereReranker(config)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(reranker.rerank, "query", ["a document"])
        time.sleep(1.0)
        print("sleeping" if future.running() else "done", flush=True)
        """
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sleeping"  # a retry was asleep when the process exited
    assert elapsed < 15.0  # and exit did not wait the 25 s out
    assert len(fake_api.requests) == 1
