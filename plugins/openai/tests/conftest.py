"""Fixtures: a fake OpenAI API on 127.0.0.1, and an environment that touches nothing real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_fakes import API_KEY
from pytest_httpserver import HTTPServer

from memsift.testing.fake_openai_api import FakeOpenAI, threaded_server
from memsift_openai import OpenAIEmbedder, OpenAIEmbedderConfig, OpenAILLM, OpenAILLMConfig

ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_ADMIN_KEY",
    "OPENAI_CUSTOM_HEADERS",
)


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test reads a real key or URL, and nothing is written to ~/.memsift."""
    home = tmp_path_factory.mktemp("memsift-home")
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        mp.setenv("MEMSIFT_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMSIFT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    with threaded_server() as server:
        yield server


@pytest.fixture(scope="session")
def _fake_api(http_server: HTTPServer) -> FakeOpenAI:
    return FakeOpenAI(http_server, API_KEY)


@pytest.fixture
def fake_api(_fake_api: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake API, reset; the test fails if the plugin sent a request it should not."""
    _fake_api.reset()
    yield _fake_api
    _fake_api.verify()


@pytest.fixture
def make_llm(fake_api: FakeOpenAI) -> Iterator[Callable[..., OpenAILLM]]:
    """Build LLMs against the fake API (no retries unless asked); closes them after."""
    built: list[OpenAILLM] = []

    def make(**options: Any) -> OpenAILLM:
        cfg: dict[str, Any] = {
            "api_key": API_KEY,
            "base_url": fake_api.base_url,
            "max_retries": 0,
            **options,
        }
        llm = OpenAILLM(OpenAILLMConfig(**cfg))
        built.append(llm)
        return llm

    yield make
    for llm in built:
        llm.close()


@pytest.fixture
def make_embedder(fake_api: FakeOpenAI) -> Iterator[Callable[..., OpenAIEmbedder]]:
    """Build embedders against the fake API; closes them after."""
    built: list[OpenAIEmbedder] = []

    def make(**options: Any) -> OpenAIEmbedder:
        cfg: dict[str, Any] = {
            "api_key": API_KEY,
            "base_url": fake_api.base_url,
            "max_retries": 0,
            **options,
        }
        embedder = OpenAIEmbedder(OpenAIEmbedderConfig(**cfg))
        built.append(embedder)
        return embedder

    yield make
    for embedder in built:
        embedder.close()
