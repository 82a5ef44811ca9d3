"""Fixtures: no hub access, a private MEMSIFT_HOME, tiny models, and a plain fake TEI server."""

from __future__ import annotations

from memsift.testing.fixtures import keep_hub_offline

keep_hub_offline()  # before anything imports huggingface_hub or transformers

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from pytest_httpserver import HTTPServer  # noqa: E402

from memsift.testing.fake_rerank_api import threaded_server  # noqa: E402
from memsift.testing.fixtures import cross_encoder_dir, memsift_home, two_label_dir  # noqa: E402, F401


@pytest.fixture(scope="session")
def isolated_env() -> tuple[str, ...]:
    return ("HF_TOKEN",)


@pytest.fixture(scope="session")
def tei_server() -> Iterator[HTTPServer]:
    """A threaded HTTP server on 127.0.0.1 (requests may overlap: async batches, timeouts)."""
    with threaded_server() as server:
        yield server


@pytest.fixture
def tei(tei_server: HTTPServer) -> Iterator[HTTPServer]:
    tei_server.clear()
    yield tei_server
    tei_server.clear()
