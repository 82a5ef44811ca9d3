"""pytest fixtures a plugin's tests share. Import the ones you use into your conftest.py::

    from memsift.testing.fixtures import memsift_home  # noqa: F401  (autouse)

    @pytest.fixture(scope="session")
    def isolated_env() -> tuple[str, ...]:
        return ("ACME_API_KEY", "ACME_BASE_URL")  # unset in every test

``memsift_home`` (autouse): every test gets its own ``MEMSIFT_HOME``, and the environment
variables ``isolated_env`` names (override that fixture; none by default) are unset, so no
test reads a real key or URL, or writes to ``~/.memsift``. ``cross_encoder_dir``,
``two_label_dir`` and ``embedder_dir`` (session): tiny random models from
:mod:`memsift.testing.tiny_models` (they need torch and transformers; the embedder needs
sentence-transformers). For those, call :func:`keep_hub_offline` at the top of
conftest.py, before anything imports ``huggingface_hub``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "cross_encoder_dir",
    "embedder_dir",
    "isolated_env",
    "keep_hub_offline",
    "memsift_home",
    "two_label_dir",
]


def keep_hub_offline() -> None:
    """Never reach the Hugging Face hub (no downloads, no telemetry), and no ``HF_TOKEN``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.pop("HF_TOKEN", None)


@pytest.fixture(scope="session")
def isolated_env() -> tuple[str, ...]:
    """The environment variables unset in every test (override it)."""
    return ()


@pytest.fixture(autouse=True)
def memsift_home(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: tuple[str, ...],
) -> Iterator[Path]:
    """A private ``MEMSIFT_HOME``; the ``isolated_env`` variables unset."""
    home = tmp_path_factory.mktemp("memsift-home")
    monkeypatch.setenv("MEMSIFT_HOME", str(home))
    for name in isolated_env:
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cross-encoder (BERT, one logit) saved with save_pretrained."""
    from memsift.testing.tiny_models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


@pytest.fixture(scope="session")
def two_label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier with two labels: not a reranker."""
    from memsift.testing.tiny_models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-two-labels", num_labels=2)


@pytest.fixture(scope="session")
def embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random sentence-transformers model (BERT + mean pooling, 32-d)."""
    from memsift.testing.tiny_models import build_sentence_transformer

    return build_sentence_transformer(tmp_path_factory.mktemp("models") / "tiny-embedder")
