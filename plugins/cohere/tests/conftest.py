"""Fixtures: a fake Cohere API on 127.0.0.1, and an environment that touches nothing real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI
from pytest_httpserver import HTTPServer

from memsift.testing.fake_rerank_api import threaded_server
from memsift_cohere import CohereConfig, CohereReranker

ENV_VARS = ("CO_API_KEY", "COHERE_API_KEY", "CO_API_URL")


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
def _fake_api(http_server: HTTPServer) -> FakeCohereAPI:
    return FakeCohereAPI(http_server, API_KEY)


@pytest.fixture
def fake_api(_fake_api: FakeCohereAPI) -> Iterator[FakeCohereAPI]:
    """The fake API, reset; the test fails if the plugin sent a request it should not."""
    _fake_api.reset()
    yield _fake_api
    _fake_api.verify()


@pytest.fixture
def make_reranker(fake_api: FakeCohereAPI) -> Iterator[Callable[..., CohereReranker]]:
    """Build rerankers against the fake API; closes them after the test."""
    built: list[CohereReranker] = []

    def make(**options: object) -> CohereReranker:
        cfg = {"api_key": API_KEY, "base_url": fake_api.base_url, **options}
        reranker = CohereReranker(CohereConfig(**cfg))
        built.append(reranker)
        return reranker

    yield make
    for reranker in built:
        reranker.close()
