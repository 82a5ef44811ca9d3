"""``HostedRerankerPipelineConformance``: a hosted reranker inside the search pipeline.

It drives ``Memory`` and ``AsyncMemory`` end to end against a scripted fake of the
provider's API (:class:`memsift.testing.fake_rerank_api.FakeRerankAPI`, or a subclass that
speaks the provider's wire format) and checks what a user sees: the fake's scores reorder
the results, ``rerank=False`` costs no request, the candidate pool bounds what is sent, a
429 with ``Retry-After`` is waited out and then reranked, and a 5xx, a timeout or a
malformed answer falls back to the vector order with the reason in the ``rerank`` block
(or raises :class:`memsift.RerankError` with ``on_error="raise"``). With it come the
scenarios of the reranker called alone (:mod:`memsift.testing.hosted_calls`: answers,
splitting, faults, and the client lifecycle of a reranker on
:class:`memsift.kit.hosted.HostedReranker`), the retry-budget scenarios
(:mod:`memsift.testing.hosted_retries`: retries fit in the ``timeout``, closing and exiting
never wait for a sleeping retry) and the secret scenarios
(:mod:`memsift.testing.hosted_secrets`: the key is in no error, chain, block, log or
config error), and the README's example (:mod:`memsift.testing.hosted_readme`).

Like :mod:`memsift.testing.fake_rerank_api`, it needs pytest-httpserver and is opt-in::

    from memsift.testing.hosted_pipeline import HostedRerankerPipelineConformance
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memsift.async_memory import AsyncMemory
from memsift.config import resolve_section
from memsift.errors import RerankError
from memsift.interfaces import Reranker
from memsift.memory import Memory
from memsift.registry import get_reranker
from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault, threaded_server
from memsift.testing.hosted_calls import ClientLifecycleScenarios, RerankerCallScenarios
from memsift.testing.hosted_readme import ReadmeScenario
from memsift.testing.hosted_retries import RetryBudgetScenarios
from memsift.testing.hosted_secrets import SecretChainScenarios

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
OTHER_USER = "bob"
OTHER_MEMORY = "Bob lives in Lisbon too, next to the castle."
QUERY = "Where does Alice live?"

MemoryConfigFactory = Callable[[dict[str, Any]], dict[str, Any]]
Search = Callable[..., dict[str, Any]]


class _Driver:
    """One Memory or AsyncMemory, driven synchronously (an async one on its own loop)."""

    def __init__(self, config: Mapping[str, Any], mode: str) -> None:
        self.mode = mode
        self.loop: asyncio.AbstractEventLoop | None = None
        if mode == "sync":
            self.memory: Memory | AsyncMemory = Memory.from_config(config)
        else:
            self.loop = asyncio.new_event_loop()
            self.memory = AsyncMemory.from_config(config)

    def run(self, result: Any) -> Any:
        if self.loop is None:
            return result
        return self.loop.run_until_complete(result)

    def add(self, texts: list[str] | str, user_id: str) -> None:
        self.run(self.memory.add(texts, user_id=user_id, infer=False))

    def search(self, query: str = QUERY, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("user_id", USER)
        out: dict[str, Any] = self.run(self.memory.search(query, **kwargs))
        return out

    def close(self) -> None:
        if self.loop is None:
            assert isinstance(self.memory, Memory)
            self.memory.close()
            return
        assert isinstance(self.memory, AsyncMemory)
        try:
            self.loop.run_until_complete(self.memory.aclose())
        finally:
            self.loop.close()


class HostedRerankerPipelineConformance(
    RerankerCallScenarios,
    ClientLifecycleScenarios,
    RetryBudgetScenarios,
    SecretChainScenarios,
    ReadmeScenario,
):
    """A hosted reranker in ``Memory`` / ``AsyncMemory`` against a scripted fake API.

    Subclass it and set ``fake_api_class`` (your subclass of
    :class:`~memsift.testing.fake_rerank_api.FakeRerankAPI`, for your provider's wire
    format), ``api_key`` (the fake's key) and ``reranker_provider`` (your provider's name),
    with ``base_options`` for config keys of your own; or provide the two fixtures those
    make by default:

    ``fake_api``
        the fake API your reranker will talk to, on a running server (by default one
        ``fake_api_class`` per test class, on a threaded server). The suite resets it at the
        start of each test and calls ``verify()`` at the end (a request the fake refuses
        fails the test); tests of your own get it, reset, as the ``_api`` fixture.
    ``memory_config``
        a callable ``(reranker_options: dict) -> dict`` returning a Memory config dict whose
        ``reranker`` section selects your provider, pointed at ``fake_api.base_url`` with
        the fake's key (by default under ``base_url_field`` and ``api_key_field``), with
        ``reranker_options`` merged into that section's ``config``. The
        suite passes pipeline options of :class:`memsift.RerankerConfig` (``top_k``,
        ``timeout``, ``on_error``, ``cache_size``) and the number of retries (under
        ``max_retries_option``, ``max_retries`` by default). Allow at least one retry by
        default. Without a ``vector_store`` section the suite adds the built-in ``faiss``
        store in a temporary directory; without an ``embedder`` the default embedder (which
        needs ``memsift[offline]`` or a model cache) embeds the memories. The reranker
        section alone must be JSON (a child process builds the reranker from it).

    Class attributes: ``retry_after`` (0.1), the ``Retry-After`` of the 429 answer in
    seconds; ``timeout`` (0.5), the reranker timeout of the slow-answer tests;
    ``slow_answer`` (2.0), how long the fake then takes; ``model_name`` (None), the model
    the ``rerank`` block must name, when set; ``readme`` (None), a README whose first
    Python example with ``Memory.from_config`` must run against the fake and rerank, with
    ``readme_env`` setting environment variables to the fake's ``"api_key"`` or
    ``"base_url"`` (``{"ACME_API_KEY": "api_key"}``); and those of the scenarios' mixins
    (:class:`~memsift.testing.hosted_calls.RerankerCallScenarios`: ``slow_answer_words``,
    ``unreachable_words``, ``malformed_words``, ``base_url_field``, and the
    :meth:`~memsift.testing.hosted_calls.RerankerCallScenarios.limit_requests` hook;
    :class:`~memsift.testing.hosted_retries.RetryBudgetScenarios`: ``budget``,
    ``budget_words``, ``max_retries_option``;
    :class:`~memsift.testing.hosted_secrets.SecretChainScenarios`: ``api_key_field``,
    ``key_env``, the environment variable of the key, named in a 401's hint unless
    ``key_in_401_hint`` is false). ``build_reranker`` builds the reranker alone from its
    config section, for tests of your own.

    What is checked, with ``Memory`` and with ``AsyncMemory``: the fake's scores reorder
    the results (``rerank_score`` and ``score`` are the fake's scores, ``vector_score`` kept,
    one request with the pool in vector order and nothing of another user); ``rerank=None``
    applies the configured reranker and ``rerank=False`` sends nothing; the pool (the
    reranker's ``top_k``) bounds what is sent, and the hits past the pool follow in vector
    order; a 429 with ``Retry-After`` is waited out, then reranked; a persistent 5xx, an
    answer slower than the timeout, and a malformed body each fall back to the vector order
    with ``rerank.applied`` false and the reason in ``rerank.error``; with
    ``on_error="raise"`` the same failures raise :class:`memsift.RerankError`.
    """

    retry_after = 0.1
    timeout = 0.5
    slow_answer = 2.0
    model_name: str | None = None
    fake_api_class: ClassVar[type[FakeRerankAPI] | None] = None
    api_key: ClassVar[str] = "test-key-0123456789abcdef"
    reranker_provider: ClassVar[str] = ""
    base_options: ClassVar[Mapping[str, Any]] = {}

    @pytest.fixture(scope="class")
    @classmethod
    def fake_api(cls) -> Iterator[FakeRerankAPI]:
        if cls.fake_api_class is None:
            raise NotImplementedError("set fake_api_class, or provide a `fake_api` fixture")
        with threaded_server() as server:
            yield cls.fake_api_class(server, cls.api_key)

    @pytest.fixture
    def memory_config(self, fake_api: FakeRerankAPI) -> MemoryConfigFactory:
        if not self.reranker_provider:
            raise NotImplementedError("set reranker_provider, or provide a `memory_config` fixture")
        provider = self.reranker_provider

        def make(options: dict[str, Any]) -> dict[str, Any]:
            config = {
                self.base_url_field: fake_api.base_url,
                self.api_key_field: fake_api.api_key,
                **self.base_options,
                **options,
            }
            return {"reranker": {"provider": provider, "config": config}}

        return make

    @pytest.fixture
    def _api(self, fake_api: FakeRerankAPI) -> Iterator[FakeRerankAPI]:
        fake_api.reset()
        yield fake_api
        fake_api.verify()

    @pytest.fixture(params=["sync", "async"])
    def mode(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def pipeline_config(
        self, memory_config: MemoryConfigFactory, tmp_path: Path
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """``memory_config``, with a store of its own in ``tmp_path`` unless it names one."""
        count = 0

        def make(options: dict[str, Any]) -> dict[str, Any]:
            nonlocal count
            count += 1
            config = dict(memory_config(options))
            config.setdefault(
                "vector_store",
                {"provider": "faiss", "config": {"path": str(tmp_path / f"store{count}")}},
            )
            return config

        return make

    @pytest.fixture
    def reranker_section(self, memory_config: MemoryConfigFactory) -> Callable[..., dict[str, Any]]:
        """The reranker section of ``memory_config(options)``, as a new dict; the keys in
        ``without`` are left out of its config."""

        def make(*, without: tuple[str, ...] = (), **options: Any) -> dict[str, Any]:
            section = dict(memory_config(options)["reranker"])
            config = dict(section.get("config") or {})
            section["config"] = {k: v for k, v in config.items() if k not in without}
            return section

        return make

    @pytest.fixture
    def build_reranker(
        self, reranker_section: Callable[..., dict[str, Any]], _api: FakeRerankAPI
    ) -> Iterator[Callable[..., Reranker]]:
        """Builds the reranker itself from its section (``without`` and options as for
        ``reranker_section``); closes it after the test."""
        built: list[Reranker] = []

        def build(*, without: tuple[str, ...] = (), **options: Any) -> Reranker:
            section = resolve_section("reranker", reranker_section(without=without, **options))
            reranker = get_reranker(section.provider).build(section.config)
            built.append(reranker)
            return reranker

        yield build
        _api.release.set()
        for reranker in built:
            reranker.close()

    @pytest.fixture
    def reranker(self, build_reranker: Callable[..., Reranker]) -> Reranker:
        """The reranker with its default options (what
        :class:`~memsift.testing.RerankerConformance` needs, when mixed in)."""
        return build_reranker()

    @pytest.fixture
    def open_memory(
        self,
        pipeline_config: Callable[[dict[str, Any]], dict[str, Any]],
        mode: str,
        _api: FakeRerankAPI,
    ) -> Iterator[Callable[..., _Driver]]:
        """Builds a filled Memory (or AsyncMemory) with the given reranker options."""
        opened: list[_Driver] = []

        def open_(**options: Any) -> _Driver:
            options = {"cache_size": 0, "timeout": 10.0, **options}
            driver = _Driver(pipeline_config(options), mode)
            opened.append(driver)
            driver.add(MEMORIES, USER)
            driver.add(OTHER_MEMORY, OTHER_USER)
            _api.reset()
            return driver

        yield open_
        _api.release.set()
        for driver in opened:
            driver.close()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _texts(hits: list[dict[str, Any]]) -> list[str]:
        return [h["memory"] for h in hits]

    def _assert_fallback(
        self, response: dict[str, Any], vector: list[dict[str, Any]], top_k: int
    ) -> str:
        hits = response["results"]
        assert len(hits) == top_k, "a failed rerank must still answer the query"
        assert self._texts(hits) == self._texts(vector[:top_k]), (
            "a failed rerank must return the vector order"
        )
        for hit in hits:
            assert "rerank_score" not in hit, "a failed rerank must not report rerank scores"
            assert hit["score"] == hit["vector_score"]
        block = response["rerank"]
        assert block["applied"] is False, "rerank.applied must be false after a failure"
        error = block["error"]
        assert isinstance(error, str) and error.strip(), "rerank.error must give the reason"
        return error

    # ------------------------------------------------------------------ reranking

    def test_reranking_reorders_by_the_api_scores(
        self,
        open_memory: Callable[..., _Driver],
        _api: FakeRerankAPI,
        memory_config: MemoryConfigFactory,
    ) -> None:
        memory = open_memory()
        vector = memory.search(top_k=8, rerank=False)["results"]
        assert len(vector) == len(MEMORIES)
        assert _api.requests == [], "rerank=False must send no request"
        scores = {h["memory"]: round(0.05 + 0.1 * i, 3) for i, h in enumerate(vector)}
        _api.scores = dict(scores)

        response = memory.search(top_k=5, rerank=True)

        hits = response["results"]
        assert self._texts(hits) == self._texts(vector[::-1][:5]), (
            "the results must follow the API's scores"
        )
        vector_scores = {h["memory"]: h["vector_score"] for h in vector}
        for hit in hits:
            assert hit["rerank_score"] == pytest.approx(scores[hit["memory"]], abs=1e-6)
            assert hit["score"] == hit["rerank_score"]
            assert hit["vector_score"] == pytest.approx(vector_scores[hit["memory"]], abs=1e-5)
            assert hit.get("user_id") == USER
        block = response["rerank"]
        assert block["applied"] is True and block["error"] is None
        assert block["candidates"] == len(MEMORIES)
        assert block["provider"] == memory_config({})["reranker"]["provider"]
        if self.model_name is not None:
            assert block["model"] == self.model_name
        sent = _api.documents_sent()
        assert len(sent) == 1, f"expected one request for the pool, got {len(sent)}"
        assert sent[0] == self._texts(vector), "the pool must be sent in vector order"
        assert OTHER_MEMORY not in sent[0], "another user's memory was sent to the API"

    def test_rerank_none_applies_the_configured_reranker(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        response = open_memory().search(top_k=3)
        assert response["rerank"]["applied"] is True
        assert len(_api.requests) == 1

    def test_rerank_false_sends_nothing(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        response = open_memory().search(top_k=5, rerank=False)
        assert _api.requests == []
        assert response["rerank"]["applied"] is False
        assert len(response["results"]) == 5
        for hit in response["results"]:
            assert "rerank_score" not in hit
            assert hit["score"] == hit["vector_score"]

    def test_the_pool_bounds_what_is_sent(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory(top_k=3)
        vector = memory.search(top_k=8, rerank=False)["results"]
        _api.scores = {h["memory"]: round(0.1 * (i + 1), 3) for i, h in enumerate(vector[:3])}

        hits = memory.search(top_k=5, rerank=True)["results"]

        assert _api.documents_sent() == [self._texts(vector[:3])], (
            "only the pool (the reranker's top_k) may be sent, in vector order"
        )
        assert self._texts(hits) == [*self._texts(vector[:3][::-1]), *self._texts(vector[3:5])]
        assert all("rerank_score" in h for h in hits[:3])
        assert all("rerank_score" not in h and h["score"] == h["vector_score"] for h in hits[3:])

    # ------------------------------------------------------------------ faults

    def test_429_with_retry_after_is_waited_out_then_reranked(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory()
        _api.fail(
            Fault(429, {"message": "too many requests"}, {"Retry-After": f"{self.retry_after:g}"})
        )
        start = time.monotonic()
        response = memory.search(top_k=3, rerank=True)
        elapsed = time.monotonic() - start
        assert response["rerank"]["applied"] is True, (
            f"a 429 with Retry-After must be retried: {response['rerank']['error']}"
        )
        assert len(_api.requests) == 2, f"expected one retry, got {len(_api.requests)} requests"
        assert elapsed >= 0.9 * self.retry_after, (
            f"the retry came after {elapsed:.3f} s, before the Retry-After of {self.retry_after} s"
        )

    def test_persistent_5xx_falls_back_to_vector_order(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory()
        vector = memory.search(top_k=5, rerank=False)["results"]
        _api.fail(always=Fault(503, {"message": "service unavailable"}))
        error = self._assert_fallback(memory.search(top_k=5, rerank=True), vector, 5)
        assert "503" in error, f"the reason should name the status: {error!r}"

    @pytest.mark.parametrize("kind", ["malformed_json", "bad_index"])
    def test_a_malformed_answer_falls_back(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI, kind: str
    ) -> None:
        memory = open_memory()
        vector = memory.search(top_k=5, rerank=False)["results"]
        _api.fail(Fault(kind=kind))  # type: ignore[arg-type]
        self._assert_fallback(memory.search(top_k=5, rerank=True), vector, 5)

    @pytest.mark.parametrize("fault", ["503", "malformed_json"])
    def test_on_error_raise_raises(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI, fault: str
    ) -> None:
        memory = open_memory(on_error="raise")
        if fault == "503":
            _api.fail(always=Fault(503, {"message": "service unavailable"}))
        else:
            _api.fail(Fault(kind="malformed_json"))
        with pytest.raises(RerankError):
            memory.search(top_k=5, rerank=True)

    def test_a_slow_answer_falls_back_within_the_timeout(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory(timeout=self.timeout)
        vector = memory.search(top_k=5, rerank=False)["results"]
        _api.delay = self.slow_answer
        start = time.monotonic()
        response = memory.search(top_k=5, rerank=True)
        elapsed = time.monotonic() - start
        self._assert_fallback(response, vector, 5)
        assert elapsed < self.slow_answer, (
            f"the search took {elapsed:.2f} s: it waited for the slow answer instead of giving "
            f"up after the reranker timeout of {self.timeout} s"
        )

    def test_a_slow_answer_with_on_error_raise_raises(
        self, open_memory: Callable[..., _Driver], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory(on_error="raise", timeout=self.timeout)
        _api.delay = self.slow_answer
        with pytest.raises(RerankError):
            memory.search(top_k=5, rerank=True)
