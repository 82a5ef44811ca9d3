"""Fixtures: the core's fake OpenAI server on 127.0.0.1, rerankers pointed at it through the
``openai`` llm provider, and an environment that touches nothing real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llm_fakes import API_KEY, judge, section
from memsift_llm import LLMReranker
from pytest_httpserver import HTTPServer

from memsift.config import resolve_section
from memsift.registry import get_reranker
from memsift.testing.fake_openai_api import FakeOpenAI, threaded_server
from memsift.testing.fixtures import memsift_home  # noqa: F401  (autouse)

ENV_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")


@pytest.fixture(scope="session")
def isolated_env() -> tuple[str, ...]:
    return ENV_VARS


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    with threaded_server() as server:
        yield server


@pytest.fixture(scope="session")
def _fake_api(http_server: HTTPServer) -> FakeOpenAI:
    return FakeOpenAI(http_server, API_KEY)


@pytest.fixture
def fake_api(_fake_api: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake API, reset, answering as :func:`llm_fakes.judge`; the test fails if the
    reranker sent a request the API would refuse."""
    _fake_api.reset()
    _fake_api.responder = judge()
    yield _fake_api
    _fake_api.verify()


@pytest.fixture
def make_reranker(fake_api: FakeOpenAI) -> Iterator[Callable[..., LLMReranker]]:
    """Builds rerankers against the fake through the registry (``llm=`` for the nested
    llm config); closes them after the test."""
    built: list[LLMReranker] = []

    def make(llm: dict[str, Any] | None = None, **options: Any) -> LLMReranker:
        resolved = resolve_section("reranker", section(fake_api, llm, **options))
        reranker = get_reranker(resolved.provider).build(resolved.config)
        assert isinstance(reranker, LLMReranker)
        built.append(reranker)
        return reranker

    yield make
    fake_api.release.set()
    for reranker in built:
        reranker.close()


@pytest.fixture
def fake_llm_provider() -> Iterator[str]:
    """The test-only llm provider ``scripted`` (see scripted_llm.py), registered."""
    import scripted_llm

    from memsift.testing import registered

    scripted_llm.ScriptedLLM.calls = []
    scripted_llm.ScriptedLLM.formats = []
    scripted_llm.ScriptedLLM.cancelled = []
    with registered(scripted_llm, name="memsift-test-scripted-llm"):
        yield scripted_llm.NAME
