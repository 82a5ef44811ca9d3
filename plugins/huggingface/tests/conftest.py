"""Fixtures: no network, a private MEMSIFT_HOME, a tiny model, and a fake TEI server."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or transformers: never reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("HF_TOKEN", None)

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from memsift.testing.tiny_models import build_cross_encoder


@pytest.fixture(autouse=True)
def memsift_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("memsift-home")
    monkeypatch.setenv("MEMSIFT_HOME", str(home))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield home


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cross-encoder (BERT, one logit) saved with save_pretrained."""
    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


@pytest.fixture(scope="session")
def two_label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-two-labels", num_labels=2)


@pytest.fixture(scope="session")
def tei_server() -> Iterator[HTTPServer]:
    """A threaded HTTP server on 127.0.0.1 (requests may overlap: async batches, timeouts)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def tei(tei_server: HTTPServer) -> Iterator[HTTPServer]:
    tei_server.clear()
    yield tei_server
    tei_server.clear()
