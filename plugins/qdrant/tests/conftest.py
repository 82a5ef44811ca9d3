"""Fixtures: an environment that touches nothing real, and the qdrant stores under test.

The stores run on qdrant-client's local mode (in this process: in memory, or in a folder
under ``tmp_path``). Set ``MEMSIFT_QDRANT_URL`` (and ``MEMSIFT_QDRANT_API_KEY`` when the
server needs one) to run the server tests of ``test_qdrant_server.py`` against a real server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV_VARS = ("QDRANT_API_KEY",)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No test reads a real key, and nothing is written to ~/.memsift."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "memsift-home"
    monkeypatch.setenv("MEMSIFT_HOME", str(home))
    yield home


@pytest.fixture
def local_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder for the local mode's data: in RAM (``/dev/shm``) where there is one.

    The local mode commits every point in a SQLite transaction of its own, each one synced
    to the disk; on a RAM-backed folder the same files are written without waiting for a
    disk, which keeps the suite fast. It is the same code path as any other folder.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="memsift-qdrant-", dir=shm))
        try:
            yield folder / "qdrant"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path / "qdrant"
