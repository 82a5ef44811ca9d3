"""memsift.providers: the helpers hosted provider packages share."""

from __future__ import annotations

import asyncio
import math
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from memsift import RerankError
from memsift.providers import (
    MAX_MESSAGE,
    batches,
    close_on_loop,
    error_message,
    gather_all,
    rank_scores,
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
