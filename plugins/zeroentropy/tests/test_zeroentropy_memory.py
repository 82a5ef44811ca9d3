"""End to end: ``Memory`` / ``AsyncMemory`` with the ``zero_entropy`` reranker and the fake API.

The stores are shared per module (loading the embedder costs time); every search uses a
config with the score cache off, so each reranked search reaches the fake.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_zeroentropy_api import API_KEY, FakeZeroEntropyAPI, Fault, memory_config

from memsift import AsyncMemory, Memory, RerankError

USER = "alice"
MEMORIES = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "Alice lives in a flat near the river in Lisbon.",
    "Alice grew up in Porto and visits her parents there.",
    "Alice prefers green tea over coffee in the morning.",
    "Alice's quarterly report is due on Friday.",
    "Alice adopted a cat called Miso last year.",
    "Alice is learning to play the cello.",
    "Alice's team meeting moved to Tuesday at 10am.",
]
BOB = "Bob lives in Lisbon too, next to the castle."
QUERY = "Where does Alice live?"
# the default config of these stores: no cache, a short timeout (longer than the
# Retry-After of 1 s in the 429 test), one retry
OPTIONS: dict[str, Any] = {"cache_size": 0, "timeout": 1.5, "max_retries": 1}
# with on_error="raise"; a pool of 3 candidates (smaller than the searches' top_k of 5)
RAISE_OPTIONS: dict[str, Any] = {"cache_size": 0, "max_retries": 0, "on_error": "raise", "top_k": 3}


def _fill(memory: Memory) -> None:
    memory.add(MEMORIES, user_id=USER)
    memory.add(BOB, user_id="bob")


@pytest.fixture(scope="module")
def memory(
    _fake_api: FakeZeroEntropyAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Memory]:
    path = tmp_path_factory.mktemp("store")
    m = Memory.from_config(memory_config(path, _fake_api.base_url, **OPTIONS))
    _fill(m)
    yield m
    m.close()


@pytest.fixture(scope="module")
def raising_memory(
    _fake_api: FakeZeroEntropyAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Memory]:
    path = tmp_path_factory.mktemp("store-raise")
    m = Memory.from_config(memory_config(path, _fake_api.base_url, **RAISE_OPTIONS))
    _fill(m)
    yield m
    m.close()


def _async_memory(path: Any, base_url: str, options: dict[str, Any]) -> AsyncMemory:
    am = AsyncMemory.from_config(memory_config(path, base_url, **options))

    async def fill() -> None:
        await am.add(MEMORIES, user_id=USER)
        await am.add(BOB, user_id="bob")

    asyncio.run(fill())
    return am


@pytest.fixture(scope="module")
def amemory(
    _fake_api: FakeZeroEntropyAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsyncMemory]:
    am = _async_memory(tmp_path_factory.mktemp("astore"), _fake_api.base_url, OPTIONS)
    yield am
    am.close()


@pytest.fixture(scope="module")
def raising_amemory(
    _fake_api: FakeZeroEntropyAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsyncMemory]:
    am = _async_memory(tmp_path_factory.mktemp("astore-raise"), _fake_api.base_url, RAISE_OPTIONS)
    yield am
    am.close()


Search = Callable[..., dict[str, Any]]


@pytest.fixture(params=["sync", "async"])
def search(request: pytest.FixtureRequest, fake_api: FakeZeroEntropyAPI) -> Search:
    """``search`` of the shared Memory, or of the shared AsyncMemory run to completion."""
    if request.param == "sync":
        return request.getfixturevalue("memory").search  # type: ignore[no-any-return]
    am: AsyncMemory = request.getfixturevalue("amemory")
    return lambda *a, **k: asyncio.run(am.search(*a, **k))


@pytest.fixture(params=["sync", "async"])
def raising_search(request: pytest.FixtureRequest, fake_api: FakeZeroEntropyAPI) -> Search:
    if request.param == "sync":
        return request.getfixturevalue("raising_memory").search  # type: ignore[no-any-return]
    am: AsyncMemory = request.getfixturevalue("raising_amemory")
    return lambda *a, **k: asyncio.run(am.search(*a, **k))


def _vector_order(
    search: Search, fake_api: FakeZeroEntropyAPI, top_k: int = 8
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = search(QUERY, user_id=USER, top_k=top_k, rerank=False)[
        "results"
    ]
    fake_api.requests.clear()
    return results


def _reverse_scores(fake_api: FakeZeroEntropyAPI, vector: list[dict[str, Any]]) -> dict[str, float]:
    """Make the fake rank the vector order upside down: the last becomes the first."""
    scores = {hit["memory"]: round(0.05 + 0.1 * i, 3) for i, hit in enumerate(vector)}
    fake_api.scores = scores
    return scores


# ---------------------------------------------------------------------- reranking


def test_search_is_reordered_by_the_api_scores(
    search: Search, fake_api: FakeZeroEntropyAPI
) -> None:
    vector = _vector_order(search, fake_api)
    assert len(vector) == len(MEMORIES)
    scores = _reverse_scores(fake_api, vector)

    response = search(QUERY, user_id=USER, top_k=5, rerank=True)

    hits = response["results"]
    assert [h["memory"] for h in hits] == [h["memory"] for h in vector[::-1][:5]]
    vector_scores = {h["memory"]: h["vector_score"] for h in vector}
    for hit in hits:
        assert hit["rerank_score"] == pytest.approx(scores[hit["memory"]])
        assert hit["score"] == hit["rerank_score"]
        assert hit["vector_score"] == pytest.approx(vector_scores[hit["memory"]], abs=1e-5)
        assert hit["user_id"] == USER
    block = response["rerank"]
    assert block["applied"] is True
    assert block["provider"] == "zero_entropy"
    assert block["model"] == "zerank-2"
    assert block["candidates"] == len(MEMORIES)
    assert block["error"] is None
    # one request with the whole pool, in vector order, and only this user's memories
    assert len(fake_api.requests) == 1
    body = fake_api.requests[0].body
    assert body["query"] == QUERY
    assert body["documents"] == [h["memory"] for h in vector]
    assert body["top_n"] == len(MEMORIES)
    assert BOB not in body["documents"]


def test_rerank_none_applies_the_configured_reranker(
    search: Search, fake_api: FakeZeroEntropyAPI
) -> None:
    response = search(QUERY, user_id=USER, top_k=3)
    assert response["rerank"]["applied"] is True
    assert len(fake_api.requests) == 1


def test_rerank_false_sends_nothing(search: Search, fake_api: FakeZeroEntropyAPI) -> None:
    response = search(QUERY, user_id=USER, top_k=5, rerank=False)
    assert fake_api.requests == []
    assert response["rerank"]["applied"] is False
    for hit in response["results"]:
        assert "rerank_score" not in hit
        assert hit["score"] == hit["vector_score"]


def test_the_pool_bounds_what_is_sent(raising_search: Search, fake_api: FakeZeroEntropyAPI) -> None:
    # top_k=3 in the reranker config: 3 documents go out; top_k=5 in the search
    vector = _vector_order(raising_search, fake_api)
    fake_api.scores = {h["memory"]: 0.1 * (i + 1) for i, h in enumerate(vector[:3])}

    hits = raising_search(QUERY, user_id=USER, top_k=5, rerank=True)["results"]

    assert fake_api.documents_sent() == [[h["memory"] for h in vector[:3]]]
    assert [h["memory"] for h in hits] == [
        *(h["memory"] for h in vector[:3][::-1]),
        *(h["memory"] for h in vector[3:5]),
    ]
    assert all("rerank_score" in h for h in hits[:3])
    assert all("rerank_score" not in h and h["score"] == h["vector_score"] for h in hits[3:])


async def test_async_searches_share_one_client(
    amemory: AsyncMemory, fake_api: FakeZeroEntropyAPI
) -> None:
    responses = await asyncio.gather(
        *(amemory.search(q, user_id=USER, top_k=3) for q in ("Where?", "Tea?", "Cello?"))
    )
    assert all(r["rerank"]["applied"] for r in responses)
    reranker = amemory.reranker
    assert reranker is not None
    handle = reranker._async  # type: ignore[attr-defined]
    await amemory.search("Cat?", user_id=USER, top_k=3)
    assert reranker._async is handle  # type: ignore[attr-defined]
    assert len(fake_api.requests) == 4


# ---------------------------------------------------------------------- faults


def test_429_with_retry_after_then_success(search: Search, fake_api: FakeZeroEntropyAPI) -> None:
    fake_api.fail(Fault(429, {"detail": "too many requests"}, {"Retry-After": "1"}))
    start = time.monotonic()
    response = search(QUERY, user_id=USER, top_k=3, rerank=True)
    assert time.monotonic() - start >= 0.9
    assert response["rerank"]["applied"] is True
    assert len(fake_api.requests) == 2


def _assert_fallback(response: dict[str, Any], vector: list[dict[str, Any]], *needles: str) -> None:
    hits = response["results"]
    assert [h["memory"] for h in hits] == [h["memory"] for h in vector[: len(hits)]]
    assert len(hits) == 5  # the query is answered, in vector order
    assert all("rerank_score" not in h and h["score"] == h["vector_score"] for h in hits)
    block = response["rerank"]
    assert block["applied"] is False
    assert block["provider"] == "zero_entropy"
    for needle in needles:
        assert needle in block["error"]
    assert API_KEY not in block["error"]


def test_persistent_503_falls_back_to_vector_order(
    search: Search, fake_api: FakeZeroEntropyAPI, caplog: pytest.LogCaptureFixture
) -> None:
    vector = _vector_order(search, fake_api, top_k=5)
    fake_api.fail(always=Fault(503, {"detail": "service unavailable"}, {"Retry-After-Ms": "20"}))
    with caplog.at_level(logging.WARNING, logger="memsift.search"):
        response = search(QUERY, user_id=USER, top_k=5, rerank=True)
    _assert_fallback(response, vector, "HTTP 503", "service unavailable")
    assert len(fake_api.requests) == 2  # max_retries=1: the SDK retried once
    assert any("service unavailable" in r.getMessage() for r in caplog.records)


def test_401_falls_back_with_a_clear_error(search: Search, fake_api: FakeZeroEntropyAPI) -> None:
    vector = _vector_order(search, fake_api, top_k=5)
    fake_api.fail(always=Fault(401, {"detail": "Invalid API Key"}))
    response = search(QUERY, user_id=USER, top_k=5, rerank=True)
    _assert_fallback(response, vector, "HTTP 401", "Invalid API Key", "ZEROENTROPY_API_KEY")
    assert len(fake_api.requests) == 1


def test_401_with_on_error_raise_raises(
    raising_search: Search, fake_api: FakeZeroEntropyAPI
) -> None:
    fake_api.fail(always=Fault(401, {"detail": "Invalid API Key"}))
    with pytest.raises(RerankError) as info:
        raising_search(QUERY, user_id=USER, top_k=5, rerank=True)
    assert info.value.status == 401
    assert info.value.provider == "zero_entropy"
    assert "Invalid API Key" in str(info.value)
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.args)


def test_503_with_on_error_raise_raises(
    raising_search: Search, fake_api: FakeZeroEntropyAPI
) -> None:
    fake_api.fail(always=Fault(503, {"detail": "service unavailable"}))
    with pytest.raises(RerankError) as info:
        raising_search(QUERY, user_id=USER, top_k=5, rerank=True)
    assert info.value.status == 503


def test_a_slow_answer_falls_back(search: Search, fake_api: FakeZeroEntropyAPI) -> None:
    vector = _vector_order(search, fake_api, top_k=5)
    fake_api.delay = 4.0
    start = time.monotonic()
    response = search(QUERY, user_id=USER, top_k=5, rerank=True)
    assert time.monotonic() - start < 3.5
    _assert_fallback(response, vector, "timeout")


@pytest.mark.parametrize(
    ("kind", "needle"), [("malformed_json", "malformed response"), ("bad_index", "out of range")]
)
def test_a_malformed_answer_falls_back_and_is_logged(
    search: Search,
    fake_api: FakeZeroEntropyAPI,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    needle: str,
) -> None:
    vector = _vector_order(search, fake_api, top_k=5)
    fake_api.fail(Fault(kind=kind))
    with caplog.at_level(logging.WARNING, logger="memsift.search"):
        response = search(QUERY, user_id=USER, top_k=5, rerank=True)
    _assert_fallback(response, vector, needle)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(needle in r.getMessage() and "zero_entropy" in r.getMessage() for r in warnings)
