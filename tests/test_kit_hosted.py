"""memsift.kit.hosted: the base of hosted rerankers, and the helpers hosted providers share."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import Field, SecretStr

from memsift import RerankerConfig, RerankError, env_secret
from memsift.kit.hosted import (
    MAX_MESSAGE,
    Deadline,
    Failure,
    HostedReranker,
    HostedRerankerConfig,
    Retrier,
    batches,
    close_on_loop,
    env_default,
    error_message,
    gather_all,
    rank_scores,
    retry_after,
    scrub,
)

# ---------------------------------------------------------------------- rank_scores


def _items(*pairs: tuple[Any, Any]) -> list[SimpleNamespace]:
    return [SimpleNamespace(index=i, relevance_score=s) for i, s in pairs]


def test_rank_scores_come_back_in_input_order() -> None:
    results = _items((2, 0.9), (0, 0.5), (1, 0.1))
    assert rank_scores("p", results, 3) == [0.5, 0.1, 0.9]


def test_rank_scores_read_mappings_by_key() -> None:
    data = [{"index": 1, "score": 4.5}, {"index": 0, "score": -2}]
    assert rank_scores("p", data, 2, score="score", unit=False) == [-2.0, 4.5]


def test_slack_admits_rounding_and_clamps() -> None:
    data = [{"index": 0, "score": 1 + 1e-7}, {"index": 1, "score": -1e-7}]
    assert rank_scores("p", data, 2, score="score", slack=1e-6) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("results", "needle"),
    [
        (None, "no list of results"),
        (_items(("0", 0.5), (1, 0.5)), "no integer index"),
        (_items((True, 0.5), (1, 0.5)), "no integer index"),
        (_items((0, 0.5), (2, 0.5)), "index 2 is out of range for 2 documents"),
        (_items((0, 0.5), (-1, 0.5)), "out of range"),
        (_items((0, 0.5), (0, 0.5)), "document 0 is scored twice"),
        (_items((0, 0.5), (1, "high")), "document 1 has no score"),
        (_items((0, 0.5), (1, None)), "document 1 has no score"),
        (_items((0, 0.5), (1, False)), "document 1 has no score"),
        (_items((0, 0.5), (1, 1.5)), "not in [0, 1]"),
        (_items((0, 0.5), (1, math.nan)), "not in [0, 1]"),
        (_items((0, 0.5)), "1 of 2 documents were not scored"),
    ],
)
def test_malformed_answers_raise(results: Any, needle: str) -> None:
    with pytest.raises(RerankError, match="malformed response") as info:
        rank_scores("acme", results, 2)
    assert info.value.provider == "acme"
    assert needle in info.value.message


def test_without_unit_only_finite_scores_pass() -> None:
    assert rank_scores("p", _items((0, 7.0)), 1, unit=False) == [7.0]
    with pytest.raises(RerankError, match="not finite"):
        rank_scores("p", _items((0, math.inf)), 1, unit=False)


def test_no_documents_no_results() -> None:
    assert rank_scores("p", [], 0) == []


# ---------------------------------------------------------------------- batches


def test_batches_by_count() -> None:
    assert batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert batches([], 2) == []
    assert batches("abc", 0) == [["a"], ["b"], ["c"]]  # a limit below 1 means one per batch


def test_batches_by_cost() -> None:
    words = ["aaaa", "bb", "cc", "dddddddd", "e"]
    assert batches(words, 6, cost=len) == [["aaaa", "bb"], ["cc"], ["dddddddd"], ["e"]]
    assert batches([], 6, cost=len) == []


# ---------------------------------------------------------------------- gather_all


async def test_gather_all_keeps_order() -> None:
    async def after(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    assert await gather_all([after(0.02, 1), after(0.0, 2), after(0.01, 3)]) == [1, 2, 3]
    assert await gather_all([]) == []


async def test_gather_all_cancels_the_rest_on_failure() -> None:
    cancelled = asyncio.Event()

    async def slow() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def fail() -> int:
        await asyncio.sleep(0)
        raise RerankError("p", "boom")

    with pytest.raises(RerankError, match="boom"):
        await gather_all([slow(), fail()])
    assert cancelled.is_set()  # cancelled and awaited before the error came out


# ---------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "bad key", "detail": "other"}, "bad key"),
        ({"detail": "Invalid API Key"}, "Invalid API Key"),
        ({"error": "overloaded"}, "overloaded"),
        ({"detail": {"message": "query too long"}}, "query too long"),
        ({"detail": [{"loc": ["query"]}]}, "[{'loc': ['query']}]"),
        ({"message": ""}, "{'message': ''}"),
        ("plain text", "plain text"),
        (None, ""),
    ],
)
def test_error_message(body: Any, expected: str) -> None:
    assert error_message(body) == expected


def test_error_message_keys_set_the_preference() -> None:
    body = {"message": "second", "detail": "first"}
    assert error_message(body, ("detail", "message")) == "first"


def test_scrub_hides_the_secret_and_cuts() -> None:
    assert scrub("key sk-123 rejected", "sk-123") == "key *** rejected"
    assert scrub("key sk-123 rejected", SecretStr("sk-123")) == "key *** rejected"
    assert scrub("nothing to hide", None) == "nothing to hide"
    assert scrub("nothing to hide", "") == "nothing to hide"
    long = "x" * (MAX_MESSAGE + 10)
    assert scrub(long, None) == "x" * MAX_MESSAGE + "..."
    assert scrub("abcdef", None, limit=3) == "abc..."


# ---------------------------------------------------------------------- close_on_loop


class _Closable:
    def __init__(self) -> None:
        self.closed = threading.Event()

    async def aclose(self) -> None:
        self.closed.set()


async def test_close_on_the_running_loop_is_scheduled() -> None:
    client = _Closable()
    close_on_loop(asyncio.get_running_loop(), client.aclose)
    for _ in range(100):
        if client.closed.is_set():
            break
        await asyncio.sleep(0.01)
    assert client.closed.is_set()


async def test_close_from_another_thread_runs_on_the_loop() -> None:
    client = _Closable()
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(close_on_loop, loop, client.aclose, wait=5.0)
    assert client.closed.is_set()


def test_close_on_an_idle_loop_runs_it() -> None:
    client = _Closable()
    loop = asyncio.new_event_loop()
    try:
        close_on_loop(loop, client.aclose)
    finally:
        loop.close()
    assert client.closed.is_set()


def test_a_closed_loop_needs_no_close() -> None:
    calls: list[str] = []

    async def aclose() -> None:
        calls.append("closed")

    loop = asyncio.new_event_loop()
    loop.close()
    close_on_loop(loop, aclose)
    assert calls == []


# ---------------------------------------------------------------------- the Retrier


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


# ---------------------------------------------------------------------- HostedReranker

KEY = "sk-base-test-0a1b2c3d"


class _Client:
    """A stand-in for an SDK client: records what it was sent, answers rank-style."""

    def __init__(self, log: list[tuple[str, list[str], float]]) -> None:
        self.log = log
        self.closed = False
        self.fail: list[Exception] = []

    def answer(self, query: str, documents: list[str], timeout: float) -> dict[str, Any]:
        self.log.append((query, documents, timeout))
        if self.fail:
            raise self.fail.pop(0)
        ranked = [
            {"index": i, "relevance_score": 1 / (2 + len(d))} for i, d in enumerate(documents)
        ]
        return {"results": ranked[::-1]}

    def close(self) -> None:
        self.closed = True


class _AsyncClient(_Client):
    def __init__(self, log: list[tuple[str, list[str], float]]) -> None:
        super().__init__(log)
        self.loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        assert asyncio.get_running_loop() is self.loop, "closed on another loop"
        self.closed = True


class _Refused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Config(RerankerConfig):
    max_retries: int = 1


class Acme(HostedReranker[_Client, _AsyncClient]):
    """The smallest hosted reranker: the five methods the base asks for."""

    provider = "acme"
    key_env = "ACME_API_KEY"

    def __init__(self, config: _Config, *, key: str | None = KEY, per_request: int = 3) -> None:
        super().__init__(
            config, max_retries=config.max_retries, request_timeout=7.0, secret=key, backoff=0
        )
        self.per_request = per_request
        self.log: list[tuple[str, list[str], float]] = []
        self.built: list[_Client] = []

    def _max_documents(self) -> int:
        return self.per_request

    def _build_client(self) -> _Client:
        self._api_key()
        client = _Client(self.log)
        self.built.append(client)
        return client

    def _build_async_client(self) -> _AsyncClient:
        client = _AsyncClient(self.log)
        self.built.append(client)
        return client

    def _send(self, client: _Client, query: str, documents: list[str], timeout: float) -> Any:
        return client.answer(query, documents, timeout)

    async def _asend(
        self, client: _AsyncClient, query: str, documents: list[str], timeout: float
    ) -> Any:
        await asyncio.sleep(0.05)
        return client.answer(query, documents, timeout)

    def _failure(self, exc: Exception) -> Failure:
        assert isinstance(exc, _Refused)
        error = RerankError(self.provider, exc.body, status=exc.status)
        return Failure(error, retry=exc.status >= 500)


DOCS = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
EXPECTED = [1 / (2 + len(d)) for d in DOCS]


def test_the_base_batches_and_keeps_the_input_order() -> None:
    acme = Acme(_Config())
    assert acme.rerank("q", DOCS) == pytest.approx(EXPECTED)
    assert [docs for _, docs, _ in acme.log] == [DOCS[0:3], DOCS[3:6], DOCS[6:]]
    assert all(timeout == 7.0 for *_, timeout in acme.log)  # the request timeout
    assert acme.rerank("q", []) == []
    assert len(acme.built) == 1  # one sync client for every call


def test_the_sync_client_is_built_once_across_threads() -> None:
    acme = Acme(_Config())
    barrier = threading.Barrier(8)
    seen: list[_Client] = []

    def grab() -> None:
        barrier.wait()
        seen.append(acme._sync_client())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1 and len(acme.built) == 1


def test_async_batches_go_out_together() -> None:
    acme = Acme(_Config())
    start = time.monotonic()
    assert asyncio.run(acme.arerank("q", DOCS)) == pytest.approx(EXPECTED)
    assert time.monotonic() - start < 0.14  # three 0.05 s requests at once, not in a row
    assert acme._sync is None  # the sync client was never needed


def test_each_event_loop_gets_its_client_and_the_old_one_closes_on_its_loop() -> None:
    acme = Acme(_Config())
    first_loop = asyncio.new_event_loop()
    try:
        first_loop.run_until_complete(acme.arerank("q", DOCS[:2]))
        first = acme._async
        assert first is not None
        first_loop.run_until_complete(acme.arerank("q", DOCS[:2]))
        assert acme._async is first  # the same loop: the same client
        acme.close()  # from no loop: the client closes on its own (idle) loop
        assert first.client.closed and acme._async is None
        first_loop.run_until_complete(acme.arerank("q", DOCS[:2]))
        second = acme._async
        asyncio.run(acme.arerank("q", DOCS[:2]))  # another loop: a new client
        assert acme._async is not second
    finally:
        first_loop.close()


def test_close_closes_both_clients_and_the_next_call_opens_new_ones() -> None:
    acme = Acme(_Config())
    acme.rerank("q", DOCS[:2])

    async def use_then_aclose() -> _Client:
        await acme.arerank("q", DOCS[:2])
        handle = acme._async
        assert handle is not None
        await acme.aclose()
        return handle.client

    aclient = asyncio.run(use_then_aclose())
    assert aclient.closed and acme.built[0].closed
    assert acme._sync is None and acme._async is None
    acme.close()  # twice is fine
    assert acme.rerank("q", DOCS[:2]) == pytest.approx(EXPECTED[:2])
    assert len(acme.built) == 3


def test_errors_are_translated_scrubbed_and_hinted() -> None:
    acme = Acme(_Config(max_retries=0))
    client = acme._sync_client()
    client.fail.append(_Refused(401, f"bad key {KEY}"))
    with pytest.raises(RerankError) as info:
        acme.rerank("q", DOCS[:2])
    error = info.value
    assert error.provider == "acme" and error.status == 401
    assert KEY not in str(error) and "bad key ***" in error.message
    assert "check the API key: the config's api_key or $ACME_API_KEY" in error.message
    assert error.__cause__ is None and error.__context__ is None


def test_retryable_errors_are_retried_within_the_budget() -> None:
    acme = Acme(_Config(max_retries=1))
    client = acme._sync_client()
    client.fail.extend([_Refused(503, "busy"), _Refused(503, "busy"), _Refused(503, "busy")])
    with pytest.raises(RerankError, match=r"busy \(after 1 retry\)") as info:
        acme.rerank("q", DOCS[:2])
    assert info.value.status == 503 and len(acme.log) == 2
    client.fail.clear()
    client.fail.append(_Refused(503, "busy"))
    assert acme.rerank("q", DOCS[:2]) == pytest.approx(EXPECTED[:2])  # one retry, then fine


def test_a_missing_key_names_where_to_set_it() -> None:
    acme = Acme(_Config(), key=None)
    with pytest.raises(RerankError, match="no API key: set api_key or ACME_API_KEY"):
        acme.rerank("q", DOCS[:2])


# ---------------------------------------------------------------------- HostedRerankerConfig


class _KeyedConfig(HostedRerankerConfig):
    api_key_env = ("ACME_API_KEY",)
    api_key: SecretStr | None = Field(default_factory=env_secret("ACME_API_KEY"))
    base_url: str | None = Field(default_factory=env_default("ACME_BASE_URL"))


def test_the_hosted_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_BASE_URL", raising=False)
    cfg = _KeyedConfig(api_key=KEY)
    assert (cfg.top_k, cfg.timeout, cfg.on_error) == (None, None, "fallback")
    assert (cfg.cache_size, cfg.max_retries, cfg.base_url) == (1024, 2, None)
    monkeypatch.setenv("ACME_BASE_URL", "https://proxy.example/v1/")
    assert _KeyedConfig(api_key=KEY).base_url == "https://proxy.example/v1"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({}, "missing secret 'api_key'"),
        ({"api_key": "*******"}, "masked placeholder"),
        ({"api_key": KEY, "base_url": "ftp://x"}, "http:// or https://"),
        ({"api_key": KEY, "max_retries": 11}, "max_retries"),
    ],
)
def test_the_hosted_config_refuses(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], needle: str
) -> None:
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    with pytest.raises(ValueError, match=needle):
        _KeyedConfig(**options)
