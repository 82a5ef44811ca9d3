"""The ``faiss`` store and the history in a hostile environment: a lost SQLite file is
refused, not replaced by an empty store; a compaction that fails (a full disk) never fails
the write that triggered it; SQLite errors say what to do; and a history that cannot be
written (read-only, full) logs no traceback for it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from memsift.builtin.faiss import index as faiss_index
from memsift.builtin.faiss.schema import store_error
from memsift.builtin.faiss.store import FaissStore
from memsift.changes import settle
from memsift.drills.writer import drill_config
from memsift.errors import MemoryNotFoundError, StoreError
from memsift.history import History, HistoryEvent
from memsift.memory import Memory


def _filled(tmp_path: Path) -> list[str]:
    with Memory.from_config(drill_config(tmp_path)) as m:
        out = m.add(["alpha beta", "gamma delta", "epsilon zeta"], user_id="u", infer=False)
        return [r["id"] for r in out["results"]]


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    store = tmp_path / "store"
    return store / "memsift.sqlite3", store / "memsift.faiss", store / "memsift.faiss.json"


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_database_beside_its_index_is_refused(tmp_path: Path, how: str) -> None:
    _filled(tmp_path)
    db, index, sidecar = _files(tmp_path)
    if how == "emptied":
        db.write_bytes(b"")
    else:
        db.unlink()
    kept = index.read_bytes(), sidecar.read_bytes()
    with pytest.raises(StoreError) as caught:
        Memory.from_config(drill_config(tmp_path))
    message = str(caught.value)
    assert str(db) in message and str(index) in message and "backup" in message
    # nothing created over it, nothing removed
    assert (db.read_bytes() == b"") if how == "emptied" else not db.exists()
    assert not Path(f"{db}-wal").exists()
    assert (index.read_bytes(), sidecar.read_bytes()) == kept


def test_a_new_store_still_opens_where_no_index_was(tmp_path: Path) -> None:
    db, _, _ = _files(tmp_path)
    db.parent.mkdir(parents=True)
    db.write_bytes(b"")  # e.g. a first open that died right after creating the file
    with Memory.from_config(drill_config(tmp_path)) as m:
        m.add("alpha beta", user_id="u", infer=False)
        assert m.vector_store.count() == 1


def test_the_lost_database_error_goes_once_the_index_files_go(tmp_path: Path) -> None:
    _filled(tmp_path)
    db, index, sidecar = _files(tmp_path)
    db.write_bytes(b"")
    index.unlink()
    sidecar.unlink()
    with Memory.from_config(drill_config(tmp_path)) as m:  # the documented way to start anew
        assert m.vector_store.count() == 0


@pytest.fixture
def failing_compaction(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Compactions after 4 tombstones, each failing as on a full disk."""
    calls: list[int] = []
    monkeypatch.setattr(faiss_index, "COMPACT_MIN", 4)

    def compact(self: FaissStore, *, force: bool) -> None:
        calls.append(1)
        raise StoreError("cannot compact the index: database or disk is full")

    monkeypatch.setattr(FaissStore, "_compact", compact)
    return calls


def test_a_failed_compaction_does_not_fail_the_delete(
    tmp_path: Path, failing_compaction: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    with Memory.from_config(drill_config(tmp_path)) as m:
        ids = [
            r["id"]
            for r in m.add([f"memo {w}" for w in "abcdefghij"], user_id="u", infer=False)["results"]
        ]
        for memory_id in ids[:6]:
            m.delete(memory_id)  # acknowledged: the memory is gone, its DELETE recorded
            with pytest.raises(MemoryNotFoundError):
                m.get(memory_id)
            assert [e["event"] for e in m.history(memory_id)] == ["ADD", "DELETE"]
        assert failing_compaction  # a compaction was due, and failed
        assert sorted(r["id"] for r in m.get_all(user_id="u")["results"]) == sorted(ids[6:])
        assert "compact" in caplog.text
        hits = m.search("memo h", user_id="u", top_k=1, rerank=False)["results"]
        assert hits[0]["memory"] == "memo h"


def test_a_failed_compaction_does_not_fail_the_update(
    tmp_path: Path, failing_compaction: list[int]
) -> None:
    with Memory.from_config(drill_config(tmp_path)) as m:
        (memory_id,) = [r["id"] for r in m.add("memo a", user_id="u", infer=False)["results"]]
        for n in range(8):
            m.update(memory_id, f"memo changed {n}")
        assert failing_compaction
        assert m.get(memory_id)["memory"] == "memo changed 7"
        assert [e["event"] for e in m.history(memory_id)] == ["ADD"] + ["UPDATE"] * 8
    with Memory.from_config(drill_config(tmp_path)) as m:
        assert m.get(memory_id)["memory"] == "memo changed 7"


# --------------------------------------------------------------------------- clear messages


def test_sqlite_errors_of_a_hostile_environment_say_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    cases = {
        "attempt to write a readonly database": "read-only",
        "unable to open database file": "-wal and -shm",
        "database or disk is full": "free disk space",
        "file is not a database": "restore it from a backup",
    }
    for message, advice in cases.items():
        error = store_error(db, "add memories", sqlite3.OperationalError(message))
        assert str(db) in str(error) and message in str(error) and advice in str(error)


def test_a_full_history_says_so_and_changes_nothing(tmp_path: Path) -> None:
    history = History(tmp_path / "history.db")
    event = HistoryEvent("m1", "ADD", None, "alpha " * 2000, "2024-01-01T00:00:00+00:00")
    pages = history._conn.execute("PRAGMA page_count").fetchone()[0]
    history._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="free disk space and retry") as caught:
        history.record([event] * 50)
    assert str(tmp_path / "history.db") in str(caught.value)
    assert history.memory_ids() == []
    history.close()


def test_pending_events_a_read_only_history_cannot_settle_log_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _filled(tmp_path)
    conn = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    conn.execute("UPDATE history SET pending = 1.0")  # a kill before the settles
    conn.close()

    @contextmanager
    def read_only(self: History, what: str, *, durable: bool = True) -> Iterator[Any]:
        raise StoreError(f"cannot {what} {self.path}: attempt to write a readonly database")
        yield

    monkeypatch.setattr(History, "_write", read_only)
    with Memory.from_config(drill_config(tmp_path)) as m:
        assert sorted(r["id"] for r in m.get_all(user_id="u")["results"]) == sorted(ids)
        assert [e["event"] for e in m.history(ids[0])] == ["ADD"]  # confirmed by the store
        with pytest.raises(StoreError, match="readonly"):
            m.add("eta theta", user_id="u", infer=False)
    logged = [r for r in caplog.records if "pending" in r.getMessage()]
    assert logged and not any(r.exc_info for r in logged)


def test_a_failed_settle_logs_a_traceback_only_for_a_bug(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def settle(self, ids: Any) -> None:
            raise self.exc

    settle(Failing(StoreError("database or disk is full")), [1])  # type: ignore[arg-type]
    settle(Failing(RuntimeError("a bug")), [2])  # type: ignore[arg-type]
    records = [r for r in caplog.records if "could not be settled" in r.getMessage()]
    assert [bool(r.exc_info) for r in records] == [False, True]


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_history_beside_a_filled_store_is_reported(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = drill_config(tmp_path)
    with Memory.from_config(config) as m:
        added = m.add(["alpha note", "beta note"], user_id="u")["results"]
    history_file = Path(config["history_db_path"])
    for extra in ("-wal", "-shm"):
        Path(f"{history_file}{extra}").unlink(missing_ok=True)
    if how == "emptied":
        history_file.write_bytes(b"")
    else:
        history_file.unlink()
    with caplog.at_level("WARNING", logger="memsift"), Memory.from_config(config) as m:
        kept = sorted(r["id"] for r in m.get_all(user_id="u")["results"])
        assert kept == sorted(r["id"] for r in added)
        assert m.history(added[0]["id"]) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(history_file) in w and "holds 2 memories" in w for w in warnings), warnings


def test_a_new_store_and_a_normal_reopen_report_no_lost_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = drill_config(tmp_path)
    with caplog.at_level("WARNING", logger="memsift"):
        with Memory.from_config(config) as m:
            m.add("gamma note", user_id="u")
        with Memory.from_config(config) as m:
            assert len(m.get_all(user_id="u")["results"]) == 1
    assert not [r for r in caplog.records if "history database" in r.getMessage()]
