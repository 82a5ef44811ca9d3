"""The built-in `faiss` store: the index file must be verifiably derived from SQLite, and
SQLite's errors (a damaged file, a full disk) surface as StoreError and change nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsift import Memory
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.errors import StoreError
from memsift.filters import parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord

LOGGER = "memsift.builtin.faiss"
IDENT = EmbedderIdentity("test", "unit", 16)
STAMP = "2026-01-01T00:00:00.000000+00:00"


def config(path: Path, **store: Any) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing", "config": {"dims": 1024}},
        "vector_store": {"provider": "faiss", "config": {"path": str(path), **store}},
    }


def texts(n: int, tag: str) -> list[str]:
    """Distinct texts: each carries words no other text has."""
    return [
        f"{tag} note n{i}{tag} about k{zlib.crc32(f'{tag}{i}'.encode())} "
        f"z{zlib.adler32(f'{i}{tag}'.encode())}"
        for i in range(n)
    ]


def add_texts(m: Memory, items: list[str], user: str = "u") -> dict[str, str]:
    """Add in batches of 10; return id -> text."""
    out: dict[str, str] = {}
    for start in range(0, len(items), 10):
        for r in m.add(items[start : start + 10], user_id=user)["results"]:
            out[r["id"]] = r["memory"]
    return out


def assert_found_by_own_text(m: Memory, memories: dict[str, str], user: str = "u") -> None:
    missed = [
        mid
        for mid, text in memories.items()
        if [h["id"] for h in m.search(text, user_id=user, top_k=1)["results"]] != [mid]
    ]
    assert not missed, f"{len(missed)} of {len(memories)} not found top-1 by their own text"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def unit(n: int, seed: int = 0) -> Any:
    v = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(n: int, start: int = 0, user: str = "u1") -> list[MemoryRecord]:
    return [
        MemoryRecord(
            id=f"id{start + i}",
            memory=f"text {start + i}",
            hash=f"h{start + i}",
            metadata={},
            user_id=user,
            created_at=STAMP,
            updated_at=STAMP,
        )
        for i in range(n)
    ]


def open_store(path: Path) -> FaissStore:
    store = FaissStore(FaissStoreConfig(path=str(path)))
    store.open(IDENT)
    return store


# ---------------------------------------------------------------------- the index file


def test_garbage_index_file_of_the_right_size_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store"
    with Memory.from_config(config(path)) as m:
        memories = add_texts(m, texts(94, "alpha"))
    index_file = path / "memsift.faiss"
    size = index_file.stat().st_size
    index_file.write_bytes(np.random.default_rng(0).bytes(size))
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Memory.from_config(config(path)) as m:
        assert any("checksum" in w for w in warnings_of(caplog))
        assert_found_by_own_text(m, memories)


@pytest.mark.parametrize("with_sidecar", [False, True], ids=["file", "file-and-sidecar"])
def test_another_stores_index_file_of_the_same_size_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, with_sidecar: bool
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    with Memory.from_config(config(mine)) as m:
        memories = add_texts(m, texts(94, "alpha"))
    with Memory.from_config(config(theirs)) as m:
        add_texts(m, texts(94, "beta"))
    assert (mine / "memsift.faiss").stat().st_size == (theirs / "memsift.faiss").stat().st_size
    shutil.copyfile(theirs / "memsift.faiss", mine / "memsift.faiss")
    if with_sidecar:  # a consistent pair: only SQLite's own record can tell it is foreign
        shutil.copyfile(theirs / "memsift.faiss.json", mine / "memsift.faiss.json")
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Memory.from_config(config(mine)) as m:
        assert warnings_of(caplog), "a foreign index file was loaded without a warning"
        assert_found_by_own_text(m, memories)
    caplog.clear()
    with Memory.from_config(config(mine)) as m:  # the rebuilt index was saved and is trusted
        assert not warnings_of(caplog)
        assert_found_by_own_text(m, memories)


@pytest.mark.parametrize("damage", ["missing", "garbage", "empty", "other-values"])
def test_a_bad_sidecar_rebuilds_and_never_crashes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = tmp_path / "store"
    with Memory.from_config(config(path)) as m:
        memories = add_texts(m, texts(30, "alpha"))
    sidecar = path / "memsift.faiss.json"
    if damage == "missing":
        sidecar.unlink()
    elif damage == "garbage":
        sidecar.write_bytes(b"\xff\xfe not json at all")
    elif damage == "empty":
        sidecar.write_text("")
    else:
        stamp = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**stamp, "ntotal": 3, "sha256": "0" * 64}))
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Memory.from_config(config(path)) as m:
        assert any("sidecar" in w for w in warnings_of(caplog))
        assert_found_by_own_text(m, memories)


def test_a_verified_file_is_used_and_only_newer_rows_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vectors = unit(60)
    store = open_store(tmp_path)
    store.insert(records(40), vectors[:40])
    store.close()
    other = open_store(tmp_path)  # moves SQLite on and exits without saving a new file
    other.insert(records(20, start=40), vectors[40:])
    other.delete(["id3"])
    other._saved_generation = other._generation
    other.close()
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr(FaissStore, "_rebuild_index", lambda *a: pytest.fail("rebuilt"))
    again = open_store(tmp_path)
    assert not warnings_of(caplog)
    assert again._index.ntotal == 60 and again.stats()["live"] == 59
    scope = parse_filter({"user_id": "u1"})
    for i in (0, 39, 40, 59):
        assert again.search(vectors[i], filters=scope, limit=1)[0].record.id == f"id{i}"
    assert "id3" not in {h.record.id for h in again.search(vectors[3], filters=scope, limit=60)}
    again.close()


def test_the_stamp_in_sqlite_records_checksum_state_and_count(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.insert(records(7), unit(7))
    store.delete(["id0"])
    store.close()
    conn = sqlite3.connect(store.db_path)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    stamp = json.loads(meta["index_stamp"])
    data = store.index_path.read_bytes()
    assert stamp["sha256"] == hashlib.sha256(data).hexdigest() and stamp["bytes"] == len(data)
    assert stamp["epoch"] == meta["epoch"] and stamp["generation"] == int(meta["generation"])
    assert stamp["ntotal"] == 7 and stamp["live"] == 6
    assert json.loads(store.stamp_path.read_text()) == stamp


def test_a_stale_process_never_overwrites_a_newer_index_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = unit(50)
    stale = open_store(tmp_path)  # opened first, then never called again
    fresh = open_store(tmp_path)
    fresh.insert(records(50), vectors)
    fresh.close()
    saved = fresh.index_path.read_bytes()
    stale.close()  # its index holds 0 vectors: it must not replace the file of 50
    assert fresh.index_path.read_bytes() == saved
    monkeypatch.setattr(FaissStore, "_rebuild_index", lambda *a: pytest.fail("rebuilt"))
    again = open_store(tmp_path)
    assert again._index.ntotal == 50
    again.close()


def test_a_process_behind_a_compaction_does_not_save_its_old_numbering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vectors = unit(40)
    behind = open_store(tmp_path)
    behind.insert(records(40), vectors)  # dirty: it will want to save on close
    other = open_store(tmp_path)
    other.delete([f"id{i}" for i in range(0, 40, 2)])
    other.compact()  # renumbers the slots: a new epoch
    other.close()
    behind.close()
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr(FaissStore, "_rebuild_index", lambda *a: pytest.fail("rebuilt"))
    again = open_store(tmp_path)  # loads the compacting process's file
    assert not warnings_of(caplog)
    scope = parse_filter({"user_id": "u1"})
    for i in (1, 21, 39):
        assert again.search(vectors[i], filters=scope, limit=1)[0].record.id == f"id{i}"
    assert again.count() == 20 and again._index.ntotal == 20
    again.close()


def test_reset_forgets_the_index_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(tmp_path)
    store.insert(records(10), unit(10))
    store.save()
    store.reset()
    store.insert(records(3, start=100), unit(3, seed=1))
    store.close()
    caplog.set_level(logging.INFO, logger=LOGGER)
    again = open_store(tmp_path)
    assert not warnings_of(caplog)
    assert again.count() == 3 and again._index.ntotal == 3
    again.close()


# ---------------------------------------------------------------------- SQLite errors


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed-pages"])
def test_a_malformed_database_is_a_store_error_that_changes_nothing(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "store"
    with Memory.from_config(config(path)) as m:
        add_texts(m, texts(300, "alpha"))
    db = path / "memsift.sqlite3"
    (path / "memsift.faiss").unlink()  # every vector is read from SQLite at open
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(np.random.default_rng(1).bytes(len(data)))
    elif damage == "truncated":
        db.write_bytes(data[: len(data) // 2])
    else:
        page = 4096
        db.write_bytes(data[: 2 * page] + bytes(len(data) - 2 * page))
    before = _digest(db)
    with pytest.raises(StoreError) as info:
        Memory.from_config(config(path))
    message = str(info.value)
    assert str(db) in message
    assert "malformed" in message or "not a database" in message
    assert "backup" in message and "aside" in message
    assert _digest(db) == before


def test_a_full_disk_is_a_store_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Memory.from_config(config(path)) as m:
        kept = add_texts(m, texts(20, "alpha"))
        store = m.vector_store
        assert isinstance(store, FaissStore)
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        # SQLite's own way to report SQLITE_FULL: the database may not grow past this.
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        generation = store.stats()["generation"]
        with pytest.raises(StoreError) as info:
            m.add(texts(60, "beta"), user_id="u")
        message = str(info.value)
        assert "database or disk is full" in message and str(store.db_path) in message
        assert "rollback" not in message
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        # nothing half-applied: SQLite, the in-memory index and the generation agree
        assert store.count() == 20
        assert store.stats()["live"] == 20 and store._index.ntotal == 20
        assert store.stats()["generation"] == generation
        assert_found_by_own_text(m, kept)
        store._conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        kept.update(add_texts(m, texts(60, "beta")))
        assert_found_by_own_text(m, kept)
    with Memory.from_config(config(path)) as m:
        assert m.vector_store.count() == 80
        assert_found_by_own_text(m, kept)


class _FullAtCommit:
    """A connection whose write transactions fail at COMMIT with SQLITE_FULL, as a full disk
    does in WAL mode (the WAL cannot grow).

    ``rolled_back``: SQLite already rolled the transaction back itself (as it may on
    SQLITE_FULL), so a ROLLBACK after it would fail with "no transaction is active".
    """

    def __init__(self, conn: sqlite3.Connection, *, rolled_back: bool) -> None:
        self._conn, self._rolled_back = conn, rolled_back
        self._writing, self.failures = False, 0

    def execute(self, sql: str, *args: Any) -> Any:
        statement = sql.strip().upper()
        if statement == "BEGIN IMMEDIATE":
            self._writing = True
        elif statement == "COMMIT" and self._writing:
            self._writing = False
            self.failures += 1
            if self._rolled_back:
                self._conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        elif statement == "ROLLBACK":
            self._writing = False
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("rolled_back", [False, True], ids=["open-txn", "sqlite-rolled-back"])
def test_a_full_disk_during_update_delete_and_compaction_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rolled_back: bool
) -> None:
    from memsift.builtin.faiss import index as faiss_index

    monkeypatch.setattr(faiss_index, "COMPACT_MIN", 5)
    vectors = unit(40)
    store = open_store(tmp_path)
    store.insert(records(40), vectors)
    scope = parse_filter({"user_id": "u1"})

    def tops() -> list[list[str]]:
        return [
            [h.record.id for h in store.search(vectors[i], filters=scope, limit=3)]
            for i in range(40)
        ]

    before, generation = tops(), store.stats()["generation"]
    real = store._conn
    full = _FullAtCommit(real, rolled_back=rolled_back)
    store._conn = full  # type: ignore[assignment]
    rec = store.get("id5")
    assert rec is not None
    calls: list[Any] = [
        lambda: store.insert(records(3, start=100), unit(3, seed=8)),
        lambda: store.update(rec, unit(1, seed=9)[0]),
        lambda: store.update(dataclasses.replace(rec, user_id="u2"), None),
        lambda: store.delete([f"id{i}" for i in range(0, 40, 2)]),
        store.compact,
    ]
    for call in calls:
        with pytest.raises(StoreError, match="database or disk is full") as info:
            call()
        assert "no transaction is active" not in str(info.value)
        assert not real.in_transaction
    assert full.failures == len(calls)
    store._conn = real
    assert store.count() == 40 and store.stats()["live"] == 40
    assert store.stats()["generation"] == generation and store._index.ntotal == 40
    assert tops() == before
    store.delete([f"id{i}" for i in range(0, 40, 2)])  # space freed: works, and compacts
    assert store.stats()["tombstones"] == 0 and store.count() == 20
    store.close()
    again = open_store(tmp_path)
    assert again.count() == 20
    assert again.search(vectors[7], filters=scope, limit=1)[0].record.id == "id7"
    again.close()


def _mount_tmpfs(where: Path, size: str) -> bool:
    """Mount a small tmpfs (needs root and a kernel that allows it); False if not possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_a_really_full_disk_on_a_small_tmpfs(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "3m"):
        pytest.skip("cannot mount a tmpfs here (the max_page_count tests cover this)")
    try:
        cfg = {
            "embedder": {"provider": "hashing", "config": {"dims": 1024}},
            "vector_store": {"provider": "faiss", "config": {"path": str(mnt / "store")}},
            "history_db_path": str(tmp_path / "history.db"),
        }
        acknowledged: dict[str, str] = {}
        with Memory.from_config(cfg) as m:
            for i in range(200):
                try:
                    acknowledged.update(add_texts(m, texts(10, f"t{i}")))  # one call
                except StoreError as exc:
                    error = exc
                    break
            else:
                pytest.fail("the tmpfs never filled up")
            assert "database or disk is full" in str(error) and "rollback" not in str(error)
            store = m.vector_store
            assert isinstance(store, FaissStore)
            assert store.count() == len(acknowledged) == store.stats()["live"]
            assert_found_by_own_text(m, dict(list(acknowledged.items())[::20]))
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            acknowledged.update(add_texts(m, texts(20, "after")))  # space freed: it works
        with Memory.from_config(cfg) as m:
            assert m.vector_store.count() == len(acknowledged)
            assert_found_by_own_text(m, acknowledged)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_store_written_before_epochs_is_upgraded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vectors = unit(30)
    store = open_store(tmp_path)
    store.insert(records(30), vectors)
    store.delete(["id29"])  # the last slot is a tombstone: next_slot must not reuse it
    store.close()
    conn = sqlite3.connect(store.db_path, isolation_level=None)
    conn.execute("DROP TABLE slot_log")
    conn.execute("DELETE FROM meta WHERE key IN ('epoch', 'next_slot', 'log_floor', 'index_stamp')")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    store.stamp_path.write_text(json.dumps({"generation": 2, "ntotal": 30}))  # the old sidecar
    caplog.set_level(logging.INFO, logger=LOGGER)
    again = open_store(tmp_path)
    assert not warnings_of(caplog)
    again.insert(records(1, start=30), unit(1, seed=3))
    scope = parse_filter({"user_id": "u1"})
    assert again.search(vectors[4], filters=scope, limit=1)[0].record.id == "id4"
    assert again.search(unit(1, seed=3)[0], filters=scope, limit=1)[0].record.id == "id30"
    assert again.count() == 30
    again.close()
    last = open_store(tmp_path)
    assert last.count() == 30
    last.close()
