"""Fixtures: a fake Messages API on 127.0.0.1, and an environment that touches nothing real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_anthropic_api import API_KEY, FakeAnthropicAPI
from pytest_httpserver import HTTPServer

from memsift.testing.fake_rerank_api import threaded_server
from memsift_anthropic import AnthropicConfig, AnthropicLLM

#: Variables the plugin or the SDK read: none may come from the machine running the tests.
ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_WEBHOOK_SIGNING_KEY",
)

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Where do I live?"},
]


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test reads a real key or URL, and nothing is written to ~/.memsift."""
    home = tmp_path_factory.mktemp("memsift-home")
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        mp.setenv("MEMSIFT_HOME", str(home))
        mp.setenv("ANTHROPIC_CONFIG_DIR", str(home / "anthropic-config"))
        yield home


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMSIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    with threaded_server() as server:
        yield server


@pytest.fixture(scope="session")
def _fake_api(http_server: HTTPServer) -> FakeAnthropicAPI:
    return FakeAnthropicAPI(http_server, API_KEY)


@pytest.fixture
def fake_api(_fake_api: FakeAnthropicAPI) -> Iterator[FakeAnthropicAPI]:
    """The fake API, reset; the test fails if the plugin sent an invalid request."""
    _fake_api.reset()
    yield _fake_api
    _fake_api.verify()


@pytest.fixture
def make_llm(fake_api: FakeAnthropicAPI) -> Iterator[Callable[..., AnthropicLLM]]:
    """Build providers against the fake API (quick retries); closes them after the test."""
    built: list[AnthropicLLM] = []

    def make(**options: object) -> AnthropicLLM:
        cfg: dict[str, object] = {
            "api_key": API_KEY,
            "base_url": fake_api.base_url,
            "timeout": 10.0,
            **options,
        }
        llm = AnthropicLLM(AnthropicConfig(**cfg))  # type: ignore[arg-type]
        built.append(llm)
        return llm

    yield make
    for llm in built:
        llm.close()
