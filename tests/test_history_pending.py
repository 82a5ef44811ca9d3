"""Pending history events: a change's events are written pending, settled once its store write
returned, and, while pending, shown only when the store confirms them (memsift.history).

The kills themselves are in tests/reliability/test_crash.py; here the rule is checked on the
history file directly (a fake store lookup) and through ``Memory`` / ``AsyncMemory``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memsift import AsyncMemory, Memory
from memsift.errors import StoreError
from memsift.history import History, HistoryEvent


@dataclass
class Rec:
    memory: str
    updated_at: str = "t9"


class FakeStore:
    """What a store holds, by id (``get`` is all a History reads)."""

    def __init__(self, **held: Rec) -> None:
        self.held = dict(held)
        self.gets: list[str] = []

    def get(self, memory_id: str) -> Rec | None:
        self.gets.append(memory_id)
        return self.held.get(memory_id)


def pending_count(history: History) -> int:
    return int(
        history._conn.execute("SELECT COUNT(*) FROM history WHERE pending IS NOT NULL").fetchone()[
            0
        ]
    )


def pairs(history: History, memory_id: str) -> list[tuple[str, str | None]]:
    return [(e["event"], e["new_memory"]) for e in history.get(memory_id)]


ADD = HistoryEvent("m1", "ADD", None, "one", "t1")
UPDATE = HistoryEvent("m1", "UPDATE", "one", "two", "t2")
DELETE = HistoryEvent("m1", "DELETE", "two", None, "t3")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
def bound(path: Path) -> Iterator[tuple[History, FakeStore]]:
    store = FakeStore()
    history = History(path, store.get)
    yield history, store
    history.close()


def test_a_bound_history_writes_pending_events_and_settle_clears_them(
    bound: tuple[History, FakeStore],
) -> None:
    history, store = bound
    ids = history.record([ADD])
    assert pending_count(history) == 1
    assert history.get("m1") == [] and history.memory_ids() == []  # the store lacks m1
    store.held["m1"] = Rec("one")
    assert pairs(history, "m1") == [("ADD", "one")]  # confirmed by the store
    assert history.memory_ids() == ["m1"]
    history.settle(ids)
    assert pending_count(history) == 0
    store.held.clear()
    assert pairs(history, "m1") == [("ADD", "one")]  # settled: shown whatever the store says


def test_an_unbound_history_writes_settled_events_and_hides_pending_ones(path: Path) -> None:
    plain = History(path)
    plain.record([ADD])
    assert pending_count(plain) == 0 and pairs(plain, "m1") == [("ADD", "one")]
    store = FakeStore(m1=Rec("two"))
    with_store = History(path, store.get)
    with_store.record([UPDATE])
    assert pairs(with_store, "m1") == [("ADD", "one"), ("UPDATE", "two")]
    assert pairs(plain, "m1") == [("ADD", "one")]  # it cannot confirm: settled events only
    assert plain.events_for(["m1"]) == [ADD]
    with_store.close()
    plain.close()


@pytest.mark.parametrize(
    ("read", "held", "shown"),
    [
        # the DELETE read "two" (so the UPDATE landed), and the memory is gone
        ("two", {}, ["ADD", "UPDATE", "DELETE"]),
        # the DELETE read "two", and was killed before the store's delete
        ("two", {"m1": Rec("two")}, ["ADD", "UPDATE"]),
        # the DELETE read "one": the UPDATE never landed; the delete did
        ("one", {}, ["ADD", "DELETE"]),
        ("one", {"m1": Rec("one")}, ["ADD"]),
    ],
)
def test_each_pending_event_is_judged_by_the_next_event_or_the_store(
    path: Path, read: str, held: dict[str, Rec], shown: list[str]
) -> None:
    store = FakeStore(**held)
    history = History(path, store.get)
    history.settle(history.record([ADD]))
    history.record([UPDATE])  # both pending (killed changes, or in flight)
    history.record([HistoryEvent("m1", "DELETE", read, None, "t3")])
    assert [e["event"] for e in history.get("m1")] == shown
    assert store.gets == ["m1"]  # one lookup, for the last event only
    history.close()


def test_an_update_that_keeps_the_text_is_confirmed_by_its_time(
    bound: tuple[History, FakeStore],
) -> None:
    history, store = bound
    history.settle(history.record([ADD]))
    history.record([HistoryEvent("m1", "UPDATE", "one", "one", "t5")])
    store.held["m1"] = Rec("one", updated_at="t1")  # the update never landed
    assert pairs(history, "m1") == [("ADD", "one")]
    store.held["m1"] = Rec("one", updated_at="t5")
    assert pairs(history, "m1") == [("ADD", "one"), ("UPDATE", "one")]


def test_opening_settles_the_confirmed_and_removes_only_stale_unconfirmed_events(
    path: Path,
) -> None:
    writer = History(path, FakeStore().get)
    writer.record([ADD, HistoryEvent("m2", "ADD", None, "x", "t1")])  # in flight, say
    store = FakeStore(m2=Rec("x"))
    # Another process opens: m2 is confirmed (settled); m1 may be a live write in flight.
    other = History(path, store.get)
    assert pending_count(other) == 1 and other.memory_ids() == ["m2"]
    assert [r[0] for r in other._conn.execute("SELECT memory_id FROM history")] == ["m1", "m2"]
    other.close()
    # Past the lease, an event the store still does not confirm is removed.
    late = History(path, store.get, lease=0.0)
    assert pending_count(late) == 0
    assert [r[0] for r in late._conn.execute("SELECT memory_id FROM history")] == ["m2"]
    late.close()
    writer.close()


def test_a_store_that_cannot_be_read_on_open_leaves_the_events_pending(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    History(path, FakeStore().get).record([ADD])

    def broken(memory_id: str) -> Rec | None:
        raise StoreError("the store is down")

    with caplog.at_level(logging.ERROR, logger="memsift"):
        history = History(path, broken, lease=0.0)
    assert "stay pending" in caplog.text and pending_count(history) == 1
    with pytest.raises(StoreError, match="the store is down"):
        history.get("m1")
    history.close()


def test_a_history_file_from_before_pending_events_gets_the_column(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, memory_id TEXT NOT NULL, "
        "event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')), old_memory TEXT, "
        "new_memory TEXT, created_at TEXT NOT NULL, user_id TEXT, agent_id TEXT, run_id TEXT)"
    )
    conn.execute(
        "INSERT INTO history(memory_id, event, new_memory, created_at) "
        "VALUES('m1', 'ADD', 'one', 't1')"
    )
    conn.commit()
    conn.close()
    history = History(path, FakeStore().get)  # the store does not hold m1: settled anyway
    assert pairs(history, "m1") == [("ADD", "one")]
    indexes = {r[1] for r in history._conn.execute("PRAGMA index_list(history)")}
    assert "history_pending" in indexes
    history.close()


# --------------------------------------------------------------------------- through Memory


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }


def test_every_acknowledged_change_is_settled(tmp_path: Path) -> None:
    with Memory.from_config(config(tmp_path)) as m:
        first = m.add(["alice likes tea", "alice likes trains"], user_id="alice")["results"]
        m.update(first[0]["id"], "alice likes coffee")
        m.delete(first[1]["id"])
        m.add_many([{"text": f"bulk {i}", "user_id": "bob"} for i in range(5)], batch_size=2)
        m.delete_all(user_id="bob")
        assert pending_count(m.history_db) == 0
        assert [e["event"] for e in m.history(first[0]["id"])] == ["ADD", "UPDATE"]

    async def scenario() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            await am.add("carol likes jazz", user_id="carol")
            await am.add_many([{"text": "dave likes golf", "user_id": "dave"}])
            assert pending_count(am.history_db) == 0

    asyncio.run(scenario())


def test_a_settle_that_fails_is_logged_and_the_change_still_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Memory.from_config(config(tmp_path)) as m:

        def broken(ids: Any) -> None:
            raise StoreError("cannot settle")

        monkeypatch.setattr(m.history_db, "settle", broken)
        with caplog.at_level(logging.ERROR, logger="memsift"):
            added = m.add("alice likes tea", user_id="alice")["results"][0]
        assert "could not be settled" in caplog.text
        assert pending_count(m.history_db) == 1
        assert [e["event"] for e in m.history(added["id"])] == ["ADD"]  # the store confirms
        monkeypatch.undo()
    with Memory.from_config(config(tmp_path)) as reopened:  # opening settles it
        assert pending_count(reopened.history_db) == 0
        assert [e["event"] for e in reopened.history(added["id"])] == ["ADD"]
