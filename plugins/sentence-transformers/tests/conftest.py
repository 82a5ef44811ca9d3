"""Fixtures: no network, a private MEMSIFT_HOME, and tiny models built once per session."""

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

from memsift.testing.tiny_models import build_cross_encoder, build_sentence_transformer


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
    """A tiny classifier with two labels: not a reranker."""
    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-two-labels", num_labels=2)


@pytest.fixture(scope="session")
def embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random sentence-transformers model (BERT + mean pooling, 32-d)."""
    return build_sentence_transformer(tmp_path_factory.mktemp("models") / "tiny-embedder")
