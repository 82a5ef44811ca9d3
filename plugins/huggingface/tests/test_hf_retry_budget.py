"""The remote mode's retries fit inside ``timeout`` (they go through the core's shared
:class:`memsift.providers.Retrier`, tested here on its own too): a long Retry-After fails at
once as a 429, a short one is honoured, closing never waits for a sleeping retry.

Timing assertions are lower bounds, or wide upper bounds that show a long wait was cut.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_tei import tei_handler
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import memsift
from memsift import RerankError
from memsift.providers import Deadline, Failure, Retrier, retry_after
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

QUERY = "where does alice live"
DOCS = [
    "alice moved to lisbon in march",
    "the quarterly report is due on friday",
    "alice lives in lisbon",
    "bob prefers green tea",
]
OVERLOADED = {"error": "Model is overloaded", "error_type": "Overloaded"}


class Script:
    """A TEI /rerank handler that answers scripted faults first, then ``always``, then
    normally; it counts the requests."""

    def __init__(self) -> None:
        self.faults: deque[tuple[int, dict[str, str]]] = deque()
        self.always: tuple[int, dict[str, str]] | None = None
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.requests += 1
            fault = self.faults.popleft() if self.faults else self.always
        if fault is None:
            return tei_handler(request)
        status, headers = fault
        return Response(
            json.dumps(OVERLOADED), status=status, headers=headers, content_type="application/json"
        )


@pytest.fixture
def script(tei: HTTPServer) -> Script:
    handler = Script()
    tei.expect_request("/rerank", method="POST").respond_with_handler(handler)
    return handler


def make(server: HTTPServer, **options: Any) -> HuggingFaceReranker:
    options.setdefault("backoff", 0.01)
    return HuggingFaceReranker(
        HuggingFaceRerankerConfig(endpoint_url=server.url_for("/"), **options)
    )


def _wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


# --------------------------------------------------------------------------- through search


def _config(path: Path, server: HTTPServer, **options: Any) -> dict[str, Any]:
    reranker = {"endpoint_url": server.url_for("/"), "timeout": 2.0, "max_retries": 2, **options}
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(path)}},
        "reranker": {"provider": "huggingface", "config": reranker},
    }


@pytest.fixture(scope="module")
def memory(
    tei_server: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[memsift.Memory]:
    m = memsift.Memory.from_config(_config(tmp_path_factory.mktemp("s"), tei_server))
    m.add(DOCS, user_id="alice", infer=False)
    yield m
    m.close()


@pytest.fixture(scope="module")
def amemory(
    tei_server: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[memsift.AsyncMemory]:
    am = memsift.AsyncMemory.from_config(_config(tmp_path_factory.mktemp("a"), tei_server))
    asyncio.run(am.add(DOCS, user_id="alice", infer=False))
    yield am
    am.close()


Search = Callable[..., dict[str, Any]]


@pytest.fixture(params=["sync", "async"])
def search(request: pytest.FixtureRequest) -> Search:
    if request.param == "sync":
        return request.getfixturevalue("memory").search  # type: ignore[no-any-return]
    am: memsift.AsyncMemory = request.getfixturevalue("amemory")
    return lambda *a, **k: asyncio.run(am.search(*a, **k))


def test_a_long_retry_after_falls_back_at_once_as_a_429_and_recovery_is_immediate(
    search: Search, script: Script
) -> None:
    script.always = (429, {"Retry-After": "120"})
    start = time.monotonic()
    for _ in range(6):  # more searches than the stage has worker threads
        block = search(QUERY, user_id="alice", top_k=3, rerank=True)["rerank"]
        assert block["applied"] is False
        assert "HTTP 429" in block["error"] and "rate limited" in block["error"]
        assert "Retry-After 120 s exceeds the remaining budget" in block["error"]
    assert time.monotonic() - start < 6 * 2.0
    assert script.requests == 6

    script.always = None
    response = search(QUERY, user_id="alice", top_k=3, rerank=True)
    assert response["rerank"]["applied"] is True, response["rerank"]
    assert script.requests == 7


def test_a_short_retry_after_within_the_budget_is_honoured(search: Search, script: Script) -> None:
    script.faults.append((429, {"Retry-After": "0.2"}))
    start = time.monotonic()
    response = search(QUERY, user_id="alice", top_k=3, rerank=True)
    assert time.monotonic() - start >= 0.2
    assert response["rerank"]["applied"] is True, response["rerank"]
    assert script.requests == 2


# --------------------------------------------------------------------------- closing


def test_close_wakes_a_sleeping_retry(tei: HTTPServer, script: Script) -> None:
    script.always = (503, {"Retry-After": "20"})
    reranker = make(tei, timeout=60)
    errors: list[RerankError] = []

    def call() -> None:
        try:
            reranker.rerank(QUERY, DOCS)
        except RerankError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    _wait_until(lambda: script.requests == 1)
    time.sleep(0.1)
    start = time.monotonic()
    reranker.close()
    thread.join(timeout=5.0)
    assert not thread.is_alive()
    assert time.monotonic() - start < 2.0
    (error,) = errors
    assert error.status == 503 and "closed" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("closer", ["aclose", "close-from-a-thread"])
async def test_closing_wakes_a_sleeping_async_retry(
    tei: HTTPServer, script: Script, closer: str
) -> None:
    script.always = (429, {"Retry-After": "20"})
    reranker = make(tei, timeout=60)
    task = asyncio.create_task(reranker.arerank(QUERY, DOCS))
    while script.requests == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    start = time.monotonic()
    if closer == "aclose":
        await reranker.aclose()
    else:
        await asyncio.to_thread(reranker.close)
    with pytest.raises(RerankError, match="closed") as info:
        await asyncio.wait_for(task, 5.0)
    assert time.monotonic() - start < 2.0
    assert info.value.status == 429


def test_process_exit_does_not_wait_for_a_sleeping_retry(tei: HTTPServer, script: Script) -> None:
    script.always = (503, {"Retry-After": "25"})
    script_text = textwrap.dedent(
        f"""
        import concurrent.futures, time
        from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

        config = HuggingFaceRerankerConfig(endpoint_url={tei.url_for("/")!r}, timeout=60)
        reranker = HuggingFaceReranker(config)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(reranker.rerank, "query", ["a document"])
        time.sleep(1.0)
        print("sleeping" if future.running() else "done", flush=True)
        """
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script_text], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sleeping"
    assert time.monotonic() - start < 15.0
    assert script.requests == 1


# --------------------------------------------------------------------------- the Retrier


def _failing(*failures: Failure) -> tuple[Callable[[float], str], list[float]]:
    """A ``send`` that raises ``failures`` in turn, then answers "ok"; and its timeouts."""
    pending = list(failures)
    timeouts: list[float] = []

    def send(timeout: float) -> str:
        timeouts.append(timeout)
        if pending:
            raise _Scripted(pending.pop(0))
        return "ok"

    return send, timeouts


class _Scripted(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__("scripted")
        self.failure = failure


def _translate(exc: Exception) -> Failure:
    assert isinstance(exc, _Scripted)
    return exc.failure


def _busy(status: int = 503, wait: float | None = None) -> Failure:
    return Failure(RerankError("p", "busy", status=status), retry=True, retry_after=wait)


def test_retrier_backs_off_and_cuts_each_attempt_to_the_budget() -> None:
    retrier = Retrier("p", max_retries=3, timeout=5.0, request_timeout=30.0, backoff=0.05)
    send, timeouts = _failing(_busy(), _busy())
    start = time.monotonic()
    assert retrier.call(send, _translate) == "ok"
    assert time.monotonic() - start >= 0.05 + 0.1  # backoff 0.05 s, then 0.1 s
    assert len(timeouts) == 3
    assert all(t <= 5.0 for t in timeouts)  # the 30 s request timeout, cut to the budget
    assert timeouts == sorted(timeouts, reverse=True)


def test_retrier_gives_up_after_max_retries_and_says_so() -> None:
    retrier = Retrier("p", max_retries=2, timeout=None, request_timeout=1.0, backoff=0.0)
    send, timeouts = _failing(_busy(), _busy(), _busy())
    with pytest.raises(RerankError, match=r"busy \(after 2 retries\)") as info:
        retrier.call(send, _translate)
    assert info.value.status == 503 and len(timeouts) == 3
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_retrier_does_not_retry_what_is_not_retryable() -> None:
    retrier = Retrier("p", max_retries=5, timeout=None, request_timeout=1.0, backoff=0.0)
    final = Failure(RerankError("p", "bad request", status=400))
    send, timeouts = _failing(final)
    with pytest.raises(RerankError, match="bad request"):
        retrier.call(send, _translate)
    assert len(timeouts) == 1


def test_retrier_fails_at_once_when_the_wait_does_not_fit() -> None:
    retrier = Retrier("p", max_retries=5, timeout=1.0, request_timeout=1.0)
    send, timeouts = _failing(_busy(429, wait=120.0))
    start = time.monotonic()
    with pytest.raises(RerankError) as info:
        retrier.call(send, _translate)
    assert time.monotonic() - start < 0.5
    message = str(info.value)
    assert info.value.status == 429 and "HTTP 429" in message
    assert "rate limited (Retry-After 120 s exceeds the remaining budget of " in message
    assert len(timeouts) == 1


def test_a_shared_deadline_spans_several_calls() -> None:
    retrier = Retrier("p", max_retries=5, timeout=10.0, request_timeout=10.0)
    deadline = Deadline(0.3)
    send, _ = _failing()
    assert retrier.call(send, _translate, deadline) == "ok"
    time.sleep(0.35)
    send, _ = _failing(_busy(wait=0.01))
    with pytest.raises(RerankError, match="remaining budget of 0 s"):
        retrier.call(send, _translate, deadline)


async def test_retrier_async_retries_then_answers() -> None:
    retrier = Retrier("p", max_retries=2, timeout=5.0, request_timeout=5.0, backoff=0.0)
    calls: list[float] = []

    async def send(timeout: float) -> str:
        calls.append(timeout)
        if len(calls) < 3:
            raise _Scripted(_busy(wait=0.05))
        return "ok"

    start = time.monotonic()
    assert await retrier.acall(send, _translate) == "ok"
    assert time.monotonic() - start >= 0.1
    assert len(calls) == 3


def test_a_closed_retrier_still_serves_later_calls() -> None:
    retrier = Retrier("p", max_retries=1, timeout=None, request_timeout=1.0, backoff=0.01)
    retrier.close()
    send, timeouts = _failing(_busy())
    assert retrier.call(send, _translate) == "ok"
    assert len(timeouts) == 2


def test_retry_after_reads_milliseconds_seconds_and_dates() -> None:
    assert retry_after({"Retry-After-Ms": "250"}) == 0.25
    assert retry_after({"retry-after": "0.2"}) == 0.2
    assert retry_after({"Retry-After": "120"}) == 120.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({"Retry-After": "nan"}) is None
    assert retry_after({}) is None
    assert retry_after(None) is None
