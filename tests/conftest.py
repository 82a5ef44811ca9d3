"""Shared fixtures of the core's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Nothing a test does may write to ~/.memsift."""
    home = tmp_path / "memsift-home"
    monkeypatch.setenv("MEMSIFT_HOME", str(home))
    yield home


@pytest.fixture
def store_config(tmp_path: Path) -> dict[str, object]:
    return {"provider": "faiss", "config": {"path": str(tmp_path / "store")}}
