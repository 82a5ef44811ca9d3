"""The reranker alone: scenarios of
:class:`memsift.testing.hosted_pipeline.HostedRerankerPipelineConformance` that call it
directly against the fake API.

Scores come back in input order; no documents cost no request; a pool over the API's
per-request limit is split, merged in order, sent concurrently by ``arerank``, and fails
whole when one request fails; a 429 with Retry-After is retried, a persistent 503 raises
after the configured retries, ``max_retries=0`` sends one request; a wrong key is a clear
401 that does not show it, an echoed key is scrubbed; slow, malformed and unreachable
answers are :class:`memsift.RerankError`. And, for a reranker on
:class:`memsift.kit.hosted.HostedReranker`, the client lifecycle: one sync client for
every call, built once across threads; one async client per event loop, shared by
concurrent calls; ``close`` (from any thread) closes both, and the next call opens new
ones. The scenarios are a mixin of the pipeline suite, which provides their fixtures.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from memsift.errors import RerankError
from memsift.kit.hosted import HostedReranker
from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault, relevance
from memsift.testing.hosted_retries import DOCS, call

Build = Callable[..., Any]

QUERY = "Where does Alice live?"
POOL = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
    "Lisbon is the capital of Portugal.",
    "Alice said she lives near the river.",
    "Our team meeting moved to Tuesday at 10am.",
    "Does anyone know where the stapler is?",
    "Carol lives in Porto with her two cats.",
]


def expected(docs: list[str]) -> list[float]:
    return [relevance(QUERY, d) for d in docs]


def run_async(reranker: Any, docs: list[str]) -> list[float]:
    scores: list[float] = asyncio.run(reranker.arerank(QUERY, docs))
    return scores


class RerankerCallScenarios:
    """Direct calls against the fake API.

    Class attributes (the words an error must hold, per provider): ``slow_answer_words``,
    for a request slower than a 0.3 s timeout; ``unreachable_words``, for a refused
    connection; ``malformed_words``, per kind of malformed answer; ``base_url_field``, the
    config key of the API's address; ``client_headers``, headers every request must carry
    (``{"X-Client-Name": "memsift"}``). Override :meth:`limit_requests` to test splitting.
    """

    slow_answer_words: ClassVar[tuple[str, ...]] = ()
    unreachable_words: ClassVar[tuple[str, ...]] = ()
    malformed_words: ClassVar[dict[str, str]] = {
        "malformed_json": "malformed response",
        "bad_index": "out of range",
    }
    max_retries_option: ClassVar[str] = "max_retries"
    key_env: ClassVar[str | None] = None
    key_in_401_hint: ClassVar[bool] = True
    api_key_field: ClassVar[str] = "api_key"
    base_url_field: ClassVar[str] = "base_url"
    client_headers: ClassVar[dict[str, str]] = {}

    def limit_requests(
        self, monkeypatch: pytest.MonkeyPatch, fake_api: FakeRerankAPI
    ) -> dict[str, Any] | None:
        """Make the reranker split :data:`POOL` into requests of about three documents (by
        monkeypatching its limit, or by options) and the fake refuse larger ones; return
        the reranker options it takes. None (the default): no limit to test."""
        return None

    def _split(
        self, build_reranker: Build, monkeypatch: pytest.MonkeyPatch, fake_api: FakeRerankAPI
    ) -> Any:
        options = self.limit_requests(monkeypatch, fake_api)
        if options is None:
            pytest.skip("no request limit to test: override limit_requests()")
        return build_reranker(**options)

    # ------------------------------------------------------------------ answers

    def test_a_request_is_a_json_post_with_the_key(
        self, build_reranker: Build, _api: FakeRerankAPI
    ) -> None:
        build_reranker().rerank(QUERY, POOL[:3])
        (seen,) = _api.requests
        assert seen.method == "POST" and seen.path == _api.path
        assert seen.headers.get(_api.auth_header) == f"{_api.auth_scheme}{_api.api_key}"
        assert seen.headers.get("Content-Type", "").startswith("application/json")
        for name, value in self.client_headers.items():
            assert seen.headers.get(name) == value, f"the request should send {name}: {value}"
        assert _api.documents_sent() == [POOL[:3]]

    def test_scores_come_back_in_input_order(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str
    ) -> None:
        # the fake answers best first; the reranker must return input order
        _api.scores = {d: round(0.1 + 0.1 * i, 3) for i, d in enumerate(POOL)}
        reranker = build_reranker()
        scores = reranker.rerank(QUERY, POOL) if mode == "sync" else run_async(reranker, POOL)
        assert scores == pytest.approx([0.1 + 0.1 * i for i in range(len(POOL))])
        assert all(isinstance(s, float) for s in scores)
        assert len(_api.requests) == 1

    def test_no_documents_no_request(self, build_reranker: Build, _api: FakeRerankAPI) -> None:
        reranker = build_reranker()
        assert reranker.rerank(QUERY, []) == []
        assert run_async(reranker, []) == []
        assert _api.requests == []

    # ------------------------------------------------------------------ splitting

    def test_a_pool_over_the_request_limit_is_split_and_merged(
        self, build_reranker: Build, _api: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        scores = self._split(build_reranker, monkeypatch, _api).rerank(QUERY, POOL)
        sent = _api.documents_sent()
        assert len(sent) >= 3, f"expected the pool in several requests, got {len(sent)}"
        assert [d for batch in sent for d in batch] == POOL, "each document once, in order"
        assert scores == pytest.approx(expected(POOL))

    def test_async_split_requests_run_concurrently(
        self, build_reranker: Build, _api: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reranker = self._split(build_reranker, monkeypatch, _api)
        _api.delay = 0.3
        assert run_async(reranker, POOL) == pytest.approx(expected(POOL))
        assert len(_api.requests) >= 3
        assert _api.max_in_flight >= 2, "the requests of one call should be in flight together"

    def test_a_failing_request_fails_the_whole_call(
        self, build_reranker: Build, _api: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        options = self.limit_requests(monkeypatch, _api)
        if options is None:
            pytest.skip("no request limit to test: override limit_requests()")
        reranker = build_reranker(**{**options, self.max_retries_option: 0})
        bad = Fault(status=400, body=_api.error_body("bad batch"))
        _api.fail(Fault(status=200), bad)
        with pytest.raises(RerankError, match="bad batch") as info:
            reranker.rerank(QUERY, POOL)
        assert info.value.status == 400
        _api.fail(bad)
        with pytest.raises(RerankError, match="bad batch"):
            run_async(reranker, POOL)

    # ------------------------------------------------------------------ faults

    def test_429_with_retry_after_is_retried(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str
    ) -> None:
        _api.fail(Fault(429, _api.error_body("too many requests"), {"Retry-After": "1"}))
        reranker = build_reranker(**{self.max_retries_option: 2})
        start = time.monotonic()
        scores = call(reranker, mode)
        assert time.monotonic() - start >= 0.9, "the retry came before the Retry-After"
        assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS])
        assert len(_api.requests) == 2

    def test_persistent_503_raises_after_the_retries(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str
    ) -> None:
        busy = Fault(503, _api.error_body("service unavailable"), {"Retry-After-Ms": "20"})
        _api.fail(always=busy)
        with pytest.raises(RerankError) as info:
            call(build_reranker(**{self.max_retries_option: 2}), mode)
        assert info.value.status == 503
        assert "service unavailable" in str(info.value)
        assert len(_api.requests) == 3, "one call and two retries"

    def test_max_retries_zero_sends_one_request(
        self, build_reranker: Build, _api: FakeRerankAPI
    ) -> None:
        _api.fail(always=Fault(500, _api.error_body("internal error")))
        with pytest.raises(RerankError) as info:
            call(build_reranker(**{self.max_retries_option: 0}))
        assert info.value.status == 500
        assert len(_api.requests) == 1

    def test_a_wrong_key_is_a_clear_401_without_the_key(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str
    ) -> None:
        wrong = "wrong-key-0123456789abcdef"
        with pytest.raises(RerankError) as info:
            call(build_reranker(**{self.api_key_field: wrong}), mode)
        error = info.value
        assert error.status == 401
        assert _api.auth_error in str(error), "the API's own message should be kept"
        if self.key_env is not None and self.key_in_401_hint:
            assert self.api_key_field in str(error) and self.key_env in str(error), (
                "a 401 should say where the key comes from"
            )
        for text in (str(error), repr(error), repr(error.args), error.message):
            assert wrong not in text
        assert error.__cause__ is None
        assert len(_api.requests) == 1, "a 401 is not retried"

    def test_a_key_echoed_by_the_server_is_scrubbed(
        self, build_reranker: Build, _api: FakeRerankAPI
    ) -> None:
        echo = f"token {_api.api_key} is not allowed to rerank"
        _api.fail(Fault(403, _api.error_body(echo)))
        with pytest.raises(RerankError) as info:
            call(build_reranker(**{self.max_retries_option: 0}))
        assert _api.api_key not in str(info.value)
        assert "***" in str(info.value)
        assert info.value.status == 403

    def test_a_slow_answer_times_out(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str
    ) -> None:
        _api.delay = 3.0
        reranker = build_reranker(timeout=0.3, **{self.max_retries_option: 0})
        start = time.monotonic()
        with pytest.raises(RerankError) as info:
            call(reranker, mode)
        assert time.monotonic() - start < 2.0
        for words in self.slow_answer_words:
            assert words in str(info.value)

    @pytest.mark.parametrize("kind", ["malformed_json", "bad_index"])
    def test_a_malformed_answer_is_an_error(
        self, build_reranker: Build, _api: FakeRerankAPI, mode: str, kind: str
    ) -> None:
        _api.fail(Fault(kind=kind))  # type: ignore[arg-type]
        with pytest.raises(RerankError) as info:
            call(build_reranker(**{self.max_retries_option: 0}), mode)
        assert self.malformed_words.get(kind, "") in str(info.value)

    def test_an_unreachable_server_is_an_error(self, build_reranker: Build) -> None:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        address = {self.base_url_field: f"http://127.0.0.1:{port}"}
        reranker = build_reranker(**address, **{self.max_retries_option: 0})
        with pytest.raises(RerankError) as info:
            call(reranker)
        assert info.value.status is None
        for words in self.unreachable_words:
            assert words in str(info.value)


class ClientLifecycleScenarios:
    """The clients of a reranker on :class:`memsift.kit.hosted.HostedReranker` (skipped
    for one that is not). Override :meth:`client_is_closed` when a client does not say so
    through ``is_closed`` (an attribute or a method), and :meth:`hosted_part` when the
    reranker hands its calls to a HostedReranker it holds."""

    def client_is_closed(self, client: Any) -> bool:
        """Whether an (async) client the reranker built is closed."""
        state = client.is_closed
        return bool(state() if callable(state) else state)

    def hosted_part(self, reranker: Any) -> Any:
        """The :class:`~memsift.kit.hosted.HostedReranker` that does the reranker's work
        (the reranker itself, unless it hands its calls to one)."""
        return reranker

    def _hosted(self, reranker: Any) -> HostedReranker[Any, Any]:
        hosted = self.hosted_part(reranker)
        if not isinstance(hosted, HostedReranker):
            pytest.skip("the reranker is not a memsift.kit.hosted.HostedReranker")
        return hosted

    def test_one_client_serves_every_call(
        self, build_reranker: Build, _api: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reranker = self._hosted(build_reranker())
        built: list[str] = []
        for kind, name in (("sync", "_build_client"), ("async", "_build_async_client")):
            original = getattr(reranker, name)

            def counting(original: Callable[[], Any] = original, kind: str = kind) -> Any:
                built.append(kind)
                return original()

            monkeypatch.setattr(reranker, name, counting)
        for i in range(3):
            reranker.rerank(QUERY, POOL[i : i + 2])

        async def several() -> None:
            await asyncio.gather(*(reranker.arerank(QUERY, POOL[i : i + 2]) for i in range(3)))
            await reranker.arerank(QUERY, POOL[:2])

        asyncio.run(several())
        assert built == ["sync", "async"]
        assert len(_api.requests) == 7

    def test_the_sync_client_is_built_once_across_threads(self, build_reranker: Build) -> None:
        reranker = self._hosted(build_reranker())
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

    def test_async_uses_the_async_client_shared_within_a_loop(
        self, build_reranker: Build, _api: FakeRerankAPI
    ) -> None:
        reranker = self._hosted(build_reranker())

        async def main() -> None:
            await asyncio.gather(*(reranker.arerank(QUERY, POOL[i : i + 2]) for i in range(4)))
            first = reranker._async
            await reranker.arerank(QUERY, POOL[:2])
            assert reranker._async is first
            await reranker.aclose()
            assert reranker._async is None
            assert first is not None and self.client_is_closed(first.client)

        asyncio.run(main())
        assert reranker._sync is None, "the sync client was never needed"
        assert len(_api.requests) == 5

    def test_close_then_use_again(self, build_reranker: Build, _api: FakeRerankAPI) -> None:
        reranker = self._hosted(build_reranker())
        reranker.rerank(QUERY, POOL[:2])
        run_async(reranker, POOL[:2])
        reranker.close()
        assert reranker._sync is None and reranker._async is None
        reranker.close()  # twice is fine
        assert reranker.rerank(QUERY, POOL[:2]) == pytest.approx(expected(POOL[:2]))
        assert len(_api.requests) == 3

    def test_close_from_a_worker_thread_closes_the_async_client(
        self, build_reranker: Build
    ) -> None:
        # AsyncMemory's `async with` closes its providers with the sync close() in a thread
        reranker = self._hosted(build_reranker())

        async def main() -> bool:
            await reranker.arerank(QUERY, POOL[:2])
            handle = reranker._async
            assert handle is not None
            await asyncio.to_thread(reranker.close)
            for _ in range(100):
                if self.client_is_closed(handle.client):
                    break
                await asyncio.sleep(0.01)
            return self.client_is_closed(handle.client)

        assert asyncio.run(main()), "the async client was not closed on its loop"


__all__ = ["POOL", "ClientLifecycleScenarios", "RerankerCallScenarios"]
