"""The ``zero_entropy`` reranker against the fake API, through the real zeroentropy SDK."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from fake_zeroentropy_api import API_KEY, PATH, FakeZeroEntropyAPI, Fault, relevance, request_bytes

import memsift_zeroentropy.reranker as reranker_module
from memsift import RerankError
from memsift.testing import RerankerConformance
from memsift_zeroentropy import ZeroEntropyReranker

Make = Callable[..., ZeroEntropyReranker]

QUERY = "Where does Alice live?"
DOCS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
    "Lisbon is the capital of Portugal.",
    "Alice said she lives near the river.",
    "Our team meeting moved to Tuesday at 10am.",
    "Does anyone know where the stapler is?",
    "Carol lives in Porto with her two cats.",
]


class TestZeroEntropyConformance(RerankerConformance):
    """The core's reranker contract, against the fake API."""

    @pytest.fixture
    def reranker(self, make_reranker: Make) -> ZeroEntropyReranker:
        return make_reranker()


# ---------------------------------------------------------------------- the request


def test_request_is_what_the_api_expects(make_reranker: Make, fake_api: FakeZeroEntropyAPI) -> None:
    scores = make_reranker().rerank(QUERY, DOCS[:3])
    assert len(fake_api.requests) == 1
    seen = fake_api.requests[0]
    assert seen.method == "POST"
    assert seen.path == PATH
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Content-Type"].startswith("application/json")
    assert seen.headers.get("X-Client-Name") == "memsift"
    assert seen.body == {"model": "zerank-2", "query": QUERY, "documents": DOCS[:3], "top_n": 3}
    assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS[:3]])


def test_model_and_latency_are_sent(make_reranker: Make, fake_api: FakeZeroEntropyAPI) -> None:
    make_reranker(model="zerank-1-small", latency="slow").rerank(QUERY, DOCS[:2])
    body = fake_api.requests[0].body
    assert body["model"] == "zerank-1-small"
    assert body["latency"] == "slow"


def test_latency_is_not_sent_when_unset(make_reranker: Make, fake_api: FakeZeroEntropyAPI) -> None:
    make_reranker(model="zerank-1").rerank(QUERY, DOCS[:2])
    assert "latency" not in fake_api.requests[0].body
    assert fake_api.requests[0].body["model"] == "zerank-1"


def test_results_are_mapped_back_by_index(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI
) -> None:
    # the API answers best first; the reranker must return input order
    fake_api.scores = {d: round(0.1 + 0.1 * i, 3) for i, d in enumerate(DOCS)}
    scores = make_reranker().rerank(QUERY, DOCS)
    assert scores == pytest.approx([0.1 + 0.1 * i for i in range(len(DOCS))])
    assert all(isinstance(s, float) for s in scores)


def test_no_documents_no_request(make_reranker: Make, fake_api: FakeZeroEntropyAPI) -> None:
    reranker = make_reranker()
    assert reranker.rerank(QUERY, []) == []
    assert asyncio.run(reranker.arerank(QUERY, [])) == []
    assert fake_api.requests == []


def test_async_uses_the_async_client(make_reranker: Make, fake_api: FakeZeroEntropyAPI) -> None:
    reranker = make_reranker()
    scores = asyncio.run(reranker.arerank(QUERY, DOCS))
    assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS])
    assert len(fake_api.requests) == 1
    assert reranker._sync is None  # the sync client was never needed


# ---------------------------------------------------------------------- splitting


BUDGET = 700  # bytes: about three of these documents per request


def test_a_pool_over_the_byte_limit_is_split_and_merged(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reranker_module, "MAX_REQUEST_BYTES", BUDGET)
    fake_api.max_bytes = BUDGET
    scores = make_reranker().rerank(QUERY, DOCS)
    sent = fake_api.documents_sent()
    assert len(sent) >= 3
    assert all(request_bytes(QUERY, batch) <= BUDGET for batch in sent)
    assert [d for batch in sent for d in batch] == DOCS
    assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS])


def test_a_document_over_the_limit_goes_alone(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reranker_module, "MAX_REQUEST_BYTES", BUDGET)
    big = "Alice " * 200
    make_reranker().rerank(QUERY, [DOCS[0], big, DOCS[1]])
    assert fake_api.documents_sent() == [[DOCS[0]], [big], [DOCS[1]]]


def test_async_split_requests_run_concurrently(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reranker_module, "MAX_REQUEST_BYTES", BUDGET)
    fake_api.max_bytes = BUDGET
    fake_api.delay = 0.3
    scores = asyncio.run(make_reranker().arerank(QUERY, DOCS))
    assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS])
    assert len(fake_api.requests) >= 3
    assert fake_api.max_in_flight >= 2


def test_a_failing_batch_fails_the_whole_call(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reranker_module, "MAX_REQUEST_BYTES", BUDGET)
    fake_api.fail(Fault(status=200), Fault(status=400, body={"detail": "bad batch"}))
    reranker = make_reranker(max_retries=0)
    with pytest.raises(RerankError, match="bad batch") as info:
        reranker.rerank(QUERY, DOCS)
    assert info.value.status == 400
    fake_api.fail(Fault(status=400, body={"detail": "bad batch"}))
    with pytest.raises(RerankError, match="bad batch"):
        asyncio.run(reranker.arerank(QUERY, DOCS))


# ---------------------------------------------------------------------- faults


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_429_with_retry_after_is_retried(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, mode: str
) -> None:
    fake_api.fail(Fault(429, {"detail": "too many requests"}, {"Retry-After": "1"}))
    reranker = make_reranker(max_retries=2)
    start = time.monotonic()
    scores = _call(reranker, mode, QUERY, DOCS[:3])
    assert time.monotonic() - start >= 0.9  # waited as the server asked
    assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS[:3]])
    assert len(fake_api.requests) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_persistent_503_raises_after_the_retries(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, mode: str
) -> None:
    fake_api.fail(always=Fault(503, {"detail": "service unavailable"}, {"Retry-After-Ms": "20"}))
    with pytest.raises(RerankError) as info:
        _call(make_reranker(max_retries=2), mode, QUERY, DOCS[:3])
    assert info.value.status == 503
    assert info.value.provider == "zero_entropy"
    assert "service unavailable" in str(info.value)
    assert len(fake_api.requests) == 3  # one call and two retries, by the SDK


def test_max_retries_zero_sends_one_request(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI
) -> None:
    fake_api.fail(always=Fault(500, {"detail": "internal error"}))
    with pytest.raises(RerankError) as info:
        make_reranker(max_retries=0).rerank(QUERY, DOCS[:2])
    assert info.value.status == 500
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wrong_key_is_a_clear_401_without_the_key(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, mode: str
) -> None:
    wrong = "ze-wrong-key-0123456789abcdef"
    with pytest.raises(RerankError) as info:
        _call(make_reranker(api_key=wrong), mode, QUERY, DOCS[:2])
    error = info.value
    assert error.status == 401
    assert "Invalid API Key" in str(error)
    assert "api_key" in str(error) and "ZEROENTROPY_API_KEY" in str(error)
    for text in (str(error), repr(error), repr(error.args), error.message):
        assert wrong not in text
    assert error.__cause__ is None
    assert len(fake_api.requests) == 1  # 401 is not retried


def test_a_key_echoed_by_the_server_is_scrubbed(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI
) -> None:
    fake_api.fail(Fault(403, {"detail": f"token {API_KEY} is not allowed to rerank"}))
    with pytest.raises(RerankError) as info:
        make_reranker(max_retries=0).rerank(QUERY, DOCS[:2])
    assert API_KEY not in str(info.value)
    assert "***" in str(info.value)
    assert info.value.status == 403


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_slow_answer_times_out(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, mode: str
) -> None:
    fake_api.delay = 3.0
    start = time.monotonic()
    with pytest.raises(RerankError, match=r"timeout of 0\.3 s"):
        _call(make_reranker(timeout=0.3, max_retries=0), mode, QUERY, DOCS[:2])
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("kind", "message"),
    [("malformed_json", "malformed response"), ("bad_index", "out of range")],
)
def test_a_malformed_answer_is_an_error(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, mode: str, kind: str, message: str
) -> None:
    fake_api.fail(Fault(kind=kind))
    with pytest.raises(RerankError, match=message):
        _call(make_reranker(max_retries=0), mode, QUERY, DOCS[:3])


def test_an_unreachable_server_is_an_error(make_reranker: Make) -> None:
    reranker = make_reranker(base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(RerankError, match="could not reach the API") as info:
        reranker.rerank(QUERY, DOCS[:2])
    assert info.value.status is None


# ---------------------------------------------------------------------- clients


def test_one_sdk_client_serves_every_call(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zeroentropy

    built: list[str] = []
    real_sync, real_async = zeroentropy.ZeroEntropy, zeroentropy.AsyncZeroEntropy

    def sync_client(*args: object, **kwargs: object) -> object:
        built.append("sync")
        return real_sync(*args, **kwargs)

    def async_client(*args: object, **kwargs: object) -> object:
        built.append("async")
        return real_async(*args, **kwargs)

    monkeypatch.setattr(zeroentropy, "ZeroEntropy", sync_client)
    monkeypatch.setattr(zeroentropy, "AsyncZeroEntropy", async_client)
    reranker = make_reranker()
    for i in range(3):
        reranker.rerank(QUERY, DOCS[i : i + 2])

    async def several() -> None:
        await asyncio.gather(*(reranker.arerank(QUERY, DOCS[i : i + 2]) for i in range(3)))
        await reranker.arerank(QUERY, DOCS[:2])

    asyncio.run(several())
    assert built == ["sync", "async"]
    assert len(fake_api.requests) == 7


def test_the_sync_client_is_created_once_across_threads(make_reranker: Make) -> None:
    reranker = make_reranker()
    clients: list[object] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        clients.append(reranker._sync_client())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in clients}) == 1


async def test_the_async_client_is_shared_within_a_loop(
    make_reranker: Make, fake_api: FakeZeroEntropyAPI
) -> None:
    reranker = make_reranker()
    await asyncio.gather(*(reranker.arerank(QUERY, DOCS[i : i + 2]) for i in range(4)))
    first = reranker._async
    await reranker.arerank(QUERY, DOCS[:2])
    assert reranker._async is first
    assert len(fake_api.requests) == 5
    await reranker.aclose()
    assert reranker._async is None


def test_close_then_use_again(make_reranker: Make, fake_api: FakeZeroEntropyAPI) -> None:
    reranker = make_reranker()
    reranker.rerank(QUERY, DOCS[:2])
    asyncio.run(reranker.arerank(QUERY, DOCS[:2]))
    reranker.close()
    assert reranker._sync is None and reranker._async is None
    reranker.close()  # twice is fine
    assert reranker.rerank(QUERY, DOCS[:2]) == pytest.approx(
        [relevance(QUERY, d) for d in DOCS[:2]]
    )
    assert len(fake_api.requests) == 3


def test_repr_and_model_name_hide_the_key(make_reranker: Make) -> None:
    reranker = make_reranker()
    assert API_KEY not in repr(reranker.config)
    assert reranker.model_name == "zerank-2"


def _call(reranker: ZeroEntropyReranker, mode: str, query: str, docs: list[str]) -> list[float]:
    if mode == "sync":
        return reranker.rerank(query, docs)
    return asyncio.run(reranker.arerank(query, docs))


async def test_close_from_a_worker_thread_closes_the_async_client(make_reranker: Make) -> None:
    # AsyncMemory's `async with` closes its providers with the sync close() in a thread
    reranker = make_reranker()
    await reranker.arerank(QUERY, DOCS[:2])
    handle = reranker._async
    assert handle is not None
    await asyncio.to_thread(reranker.close)
    for _ in range(100):
        if handle.client.is_closed():
            break
        await asyncio.sleep(0.01)
    assert handle.client.is_closed()
