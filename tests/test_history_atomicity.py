"""Raised means not stored: a change whose history or store write fails leaves both as they were.

The history is its own SQLite file. A full history database is made real with SQLite's
``max_page_count`` (SQLite then answers "database or disk is full" and rolls the transaction
back by itself); a failing store is the store's write method raising StoreError.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memsift import AsyncMemory, Memory
from memsift.errors import StoreError
from memsift.history import History, HistoryEvent

BIG = "a long memory that needs new pages in the history database " * 200  # ~12 KB


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        "history_db_path": str(tmp_path / "elsewhere" / "history.db"),
    }


@pytest.fixture
def m(tmp_path: Path) -> Iterator[Memory]:
    with Memory.from_config(config(tmp_path)) as memory:
        memory.add(["alice likes tea", "alice likes trains"], user_id="alice")
        yield memory


def snapshot(m: Memory) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Alice's memories and the history of every memory id ever seen."""
    records = m.get_all(user_id="alice", top_k=1000)["results"]
    return records, {r["id"]: m.history(r["id"]) for r in records}


def histories(m: Memory, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {i: m.history(i) for i in ids}


class FullDisk:
    """Fills the history database: no new page can be allocated until ``free()``."""

    def __init__(self, history: History) -> None:
        self.conn = history._conn

    def __enter__(self) -> FullDisk:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        self.conn.execute(f"PRAGMA max_page_count = {pages}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("PRAGMA max_page_count = 1073741823")


def assert_full_disk_error(exc: BaseException) -> None:
    message = str(exc)
    assert isinstance(exc, StoreError)
    assert "database or disk is full" in message and "history.db" in message
    assert "no transaction is active" not in message
    assert isinstance(exc.__cause__, sqlite3.Error)


# --------------------------------------------------------------------------- history fails


def test_add_on_a_full_history_disk_stores_nothing(m: Memory) -> None:
    before = snapshot(m)
    with FullDisk(m.history_db), pytest.raises(StoreError) as info:
        m.add(BIG, user_id="alice")
    assert_full_disk_error(info.value)
    assert snapshot(m) == before
    # The retry, once there is room, stores the memory once.
    added = m.add(BIG, user_id="alice")["results"]
    records, _ = snapshot(m)
    assert [r["memory"] for r in records].count(BIG) == 1
    assert [e["event"] for e in m.history(added[0]["id"])] == ["ADD"]


def test_update_delete_delete_all_on_a_full_history_disk_change_nothing(tmp_path: Path) -> None:
    with Memory.from_config(config(tmp_path)) as m:
        # Their UPDATE and DELETE events carry the old text: too big for the free space left.
        m.add([BIG + "one", BIG + "two"], user_id="alice")
        before = snapshot(m)
        target = before[0][0]["id"]
        with FullDisk(m.history_db):
            for call in (
                lambda: m.update(target, "short"),
                lambda: m.delete(target),
                lambda: m.delete_all(user_id="alice"),
            ):
                with pytest.raises(StoreError) as info:
                    call()
                assert_full_disk_error(info.value)
                assert snapshot(m) == before
        assert m.delete_all(user_id="alice")["deleted"] == 2
        assert [e["event"] for e in m.history(target)] == ["ADD", "DELETE"]


def test_a_failing_history_write_through_the_sqlite_layer(
    m: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(m)

    class FailingConnection:
        """The real connection, except that inserting a history row fails like a full disk."""

        def __init__(self, real: sqlite3.Connection) -> None:
            self.real = real

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT INTO history"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.real.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    monkeypatch.setattr(m.history_db, "_conn", FailingConnection(m.history_db._conn))
    target = before[0][0]["id"]
    for call in (
        lambda: m.add("never stored", user_id="alice"),
        lambda: m.update(target, "never written"),
        lambda: m.delete(target),
        lambda: m.delete_all(user_id="alice"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert_full_disk_error(info.value)
        assert snapshot(m) == before
    monkeypatch.undo()
    m.delete(target)
    assert [e["event"] for e in m.history(target)] == ["ADD", "DELETE"]


# --------------------------------------------------------------------------- store fails


def _failing(*args: Any, **kwargs: Any) -> Any:
    raise StoreError("the store is broken")


@pytest.mark.parametrize("method", ["insert", "update", "delete"])
def test_a_failing_store_write_takes_its_history_events_back(
    m: Memory, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    before = snapshot(m)
    target = before[0][0]["id"]
    calls = {
        "insert": [lambda: m.add("never stored", user_id="alice")],
        "update": [lambda: m.update(target, "never written")],
        "delete": [lambda: m.delete(target), lambda: m.delete_all(user_id="alice")],
    }[method]
    monkeypatch.setattr(m.vector_store, method, _failing)
    for call in calls:
        with pytest.raises(StoreError, match="the store is broken"):
            call()
        assert snapshot(m) == before
    monkeypatch.undo()
    # Each retry succeeds once, with exactly one event.
    if method == "insert":
        new = m.add("stored now", user_id="alice")["results"][0]["id"]
        assert [r["memory"] for r in snapshot(m)[0]].count("stored now") == 1
        assert [e["event"] for e in m.history(new)] == ["ADD"]
    elif method == "update":
        m.update(target, "written now")
        assert [e["event"] for e in m.history(target)] == ["ADD", "UPDATE"]
    else:
        ids = [r["id"] for r in before[0]]
        assert m.delete_all(user_id="alice")["deleted"] == 2
        assert all([e["event"] for e in h] == ["ADD", "DELETE"] for h in histories(m, ids).values())


def test_async_add_keeps_history_and_store_in_step(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            await am.add("alice likes tea", user_id="alice")

            async def snap() -> Any:
                records = (await am.get_all(user_id="alice"))["results"]
                return records, [await am.history(r["id"]) for r in records]

            before = await snap()
            original = am.vector_store.ainsert

            async def broken(*args: Any) -> None:
                raise StoreError("the store is broken")

            am.vector_store.ainsert = broken  # type: ignore[method-assign]
            with pytest.raises(StoreError, match="the store is broken"):
                await am.add("never stored", user_id="alice")
            assert await snap() == before
            am.vector_store.ainsert = original  # type: ignore[method-assign]
            with FullDisk(am.history_db), pytest.raises(StoreError) as info:
                await am.add(BIG, user_id="alice")
            assert_full_disk_error(info.value)
            assert await snap() == before
            new = (await am.add(BIG, user_id="alice"))["results"][0]["id"]
            assert [e["event"] for e in await am.history(new)] == ["ADD"]
            assert len((await snap())[0]) == 2

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the history file


def test_record_returns_ids_and_remove_takes_exactly_those(tmp_path: Path) -> None:
    history = History(tmp_path / "h.db")
    try:
        first = history.record([HistoryEvent("m1", "ADD", None, "one", "t1")])
        second = history.record(
            [
                HistoryEvent("m1", "UPDATE", "one", "two", "t2"),
                HistoryEvent("m2", "ADD", None, "x", "t2"),
            ]
        )
        assert len(first) == 1 and len(second) == 2
        history.remove(second)
        assert [e["event"] for e in history.get("m1")] == ["ADD"]
        assert history.get("m2") == []
        assert history.record([]) == [] and history.remove([]) is None
        third = history.record([HistoryEvent("m2", "ADD", None, "x", "t3")])
        assert not set(third) & set(second)  # ids are never reused
    finally:
        history.close()


def test_a_malformed_history_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "history.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 500)
    with pytest.raises(StoreError) as info:
        Memory.from_config(config(tmp_path))
    assert str(path) in str(info.value) and "not a database" in str(info.value)

    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE history (seq INTEGER PRIMARY KEY, something TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="is not a memsift history database"):
        Memory.from_config(config(tmp_path))


def test_a_damaged_history_page_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    history = History(path)
    history.record([HistoryEvent(f"m{i}", "ADD", None, BIG, "t") for i in range(20)])
    history.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # keep the header and the schema page
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        reopened = History(path)
        try:
            reopened.get("m3")
            reopened.record([HistoryEvent("m3", "DELETE", BIG, None, "t")])
        finally:
            reopened.close()
    assert str(path) in str(info.value)
