"""The concurrency drills of ``memsift.drills`` on the ``qdrant`` store (local mode in a
folder): 8 threads on one ``Memory`` and 50 tasks on one ``AsyncMemory`` raise nothing
undocumented and end in the state their acknowledged calls imply, with the store's count and
each memory's top-1 search agreeing with what ``get_all`` lists. And several processes on one
local-mode folder: the local mode is single-process, so a second one gets a ``StoreError``
naming the folder, before anything there is read or written.

``MEMSIFT_DRILL_OPS`` and ``MEMSIFT_DRILL_SEED`` size and replay them, as in the core's
reliability suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from memsift import Memory, StoreError
from memsift.drills.concurrency import tasks_drill, threads_drill
from memsift.drills.writer import drill_embedder
from memsift.filters import MatchAll
from memsift.testing.vector_store import IDENTITY
from memsift_qdrant import QdrantStore, QdrantStoreConfig
from memsift_qdrant.folder_lock import LOCK_NAME

OPS = int(os.environ.get("MEMSIFT_DRILL_OPS", "200"))
SEED = int(os.environ.get("MEMSIFT_DRILL_SEED", "0"))
CALLS = {"add", "update", "delete", "search", "get_all"}
#: the folders the drills ran in (so a test can tell that its drill used this config)
USED: list[Path] = []


def qdrant_config(tmp: str) -> dict[str, Any]:
    """The drill's config on the qdrant store: its data and the history in ``tmp``."""
    USED.append(Path(tmp))
    config: dict[str, Any] = {
        "vector_store": {"provider": "qdrant", "config": {"path": str(Path(tmp) / "qdrant")}},
        "history_db_path": str(Path(tmp) / "history.db"),
    }
    embedder = drill_embedder()
    if embedder is not None:
        config["embedder"] = embedder
    return config


def test_eight_threads_on_one_memory_on_qdrant() -> None:
    USED.clear()
    report = threads_drill(OPS, threads=8, seed=SEED, config=qdrant_config)
    assert len(USED) == 1
    assert report.attempts == OPS // 8 * 8
    assert report.ok, report.problems
    assert set(report.notes) >= CALLS


def test_fifty_tasks_on_one_async_memory_on_qdrant() -> None:
    USED.clear()
    report = tasks_drill(OPS, tasks=50, seed=SEED, config=qdrant_config)
    assert len(USED) == 1
    assert report.attempts >= OPS
    assert report.ok, report.problems
    assert set(report.notes) >= CALLS


def test_the_drills_catch_a_store_whose_count_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    count = QdrantStore.count
    monkeypatch.setattr(QdrantStore, "count", lambda self, **kw: count(self, **kw) + 1)
    report = threads_drill(40, threads=4, seed=SEED, config=qdrant_config)
    assert report.kinds == {"count": 1}, report.problems


# --------------------------------------------------------------------------- two processes

#: A process that holds a local-mode folder (one memory in it) until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys, uuid
    import numpy as np
    from memsift.interfaces import MemoryRecord
    from memsift.testing.vector_store import DIMS, IDENTITY
    from memsift_qdrant import QdrantStore, QdrantStoreConfig

    store = QdrantStore(QdrantStoreConfig(path=sys.argv[1]))
    store.open(IDENTITY)
    stamp = "2026-01-01T00:00:00.000000+00:00"
    record = MemoryRecord(id=str(uuid.uuid4()), memory="held", hash="h", metadata={},
                          user_id="u", created_at=stamp, updated_at=stamp)
    vector = np.ones((1, DIMS), dtype=np.float32) / np.sqrt(DIMS)
    store.insert([record], vector)
    print(record.id, flush=True)
    sys.stdin.read()
    store.close()
    """
)


class Holder:
    """A child process holding a local-mode folder."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.memory_id = self.proc.stdout.readline().strip()
        assert self.memory_id, "the holder process did not start"

    def close(self) -> None:
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` but the SQLite ones, with its content."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "sqlite" not in p.name
    }


def _ids(folder: Path) -> set[str]:
    store = QdrantStore(QdrantStoreConfig(path=str(folder)))
    try:
        store.open(IDENTITY)
        return {r.id for r in store.list_records(filters=MatchAll(), limit=100)}
    finally:
        store.close()


def test_a_second_process_on_a_local_folder_is_a_store_error_naming_it(
    local_folder: Path,
) -> None:
    holder = Holder(local_folder)
    try:
        before = _snapshot(local_folder)
        with pytest.raises(StoreError, match=re.escape(str(local_folder))) as info:
            QdrantStore(QdrantStoreConfig(path=str(local_folder)))
        assert "another process" in str(info.value)
        assert "one client per folder" in str(info.value)
        assert info.value.__cause__ is None
        config = {"vector_store": {"provider": "qdrant", "config": {"path": str(local_folder)}}}
        with pytest.raises(StoreError, match=re.escape(str(local_folder))):
            Memory.from_config({**config, "embedder": {"provider": "minilm"}})
        assert _snapshot(local_folder) == before  # nothing was touched
    finally:
        holder.close()
    assert _ids(local_folder) == {holder.memory_id}  # free again once the holder closed


def test_a_killed_holder_leaves_the_folder_free(local_folder: Path) -> None:
    holder = Holder(local_folder)
    holder.kill()
    assert _ids(local_folder) == {holder.memory_id}


def test_qdrant_client_is_not_started_on_a_folder_in_use(
    local_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qdrant_client

    first = QdrantStore(QdrantStoreConfig(path=str(local_folder)))
    started: list[Any] = []
    monkeypatch.setattr(qdrant_client, "QdrantClient", lambda **kw: started.append(kw))
    try:
        with pytest.raises(StoreError, match="one client per folder"):
            QdrantStore(QdrantStoreConfig(path=str(local_folder)))
        assert started == []  # refused before qdrant-client read or wrote the folder
    finally:
        first.close()
    monkeypatch.undo()
    second = QdrantStore(QdrantStoreConfig(path=str(local_folder)))  # the lock was released
    second.close()
    assert (local_folder / LOCK_NAME).exists()
