"""The change history of memories (ADD, UPDATE and DELETE events) and the per-scope message
log of ``add(infer=True)``, in SQLite.

The history is its own SQLite file (by default ``history.db`` beside the store), so a write to
it and a write to the vector store cannot share one transaction. ``Memory`` keeps the two in
step by this rule (:func:`memsift.changes.record_then`): the events are written first
(:meth:`History.record` returns their ids), then the store; if the store write fails the
events are taken back (:meth:`History.remove`) and the error is raised, and if the history
write fails the store is not touched. So a call that raises leaves both as they were.

Every SQLite error (a full disk, a locked or malformed file) surfaces as
:class:`memsift.errors.StoreError` naming the file and carrying SQLite's own message; a write
that fails is rolled back (when SQLite has not already rolled it back itself).

The message log (table ``messages``) keeps the last few non-system messages that the
``add(infer=True)`` calls of each scope were given (each cut to
:data:`LOGGED_MESSAGE_CHARS` characters), so the next extraction sees the recent
conversation. A scope is the exact ``(user_id, agent_id, run_id)`` triple of the call. The
messages of a call are written in the same transaction as its events
(:meth:`History.record_change`), and taken back with them. ``add(infer=False)`` logs nothing;
``delete_all`` forgets the messages of the scope ids it pins (:meth:`History.forget_messages`);
``reset`` forgets them all.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memsift.errors import StoreError

Event = Literal["ADD", "UPDATE", "DELETE"]

_COLUMNS = (
    "seq",
    "memory_id",
    "event",
    "old_memory",
    "new_memory",
    "created_at",
    "user_id",
    "agent_id",
    "run_id",
)
_INSERT = (
    "INSERT INTO history(memory_id, event, old_memory, new_memory, created_at, "
    "user_id, agent_id, run_id) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"
)
#: How many logged messages a scope keeps (older ones are pruned as new ones come).
LOG_KEEP = 10
#: The longest logged message, in characters (a longer one is cut; the log is context only).
LOGGED_MESSAGE_CHARS = 2000
_MESSAGES_TABLE = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT,
    agent_id TEXT,
    run_id TEXT,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_scope ON messages(user_id, agent_id, run_id, seq);
"""
_SCOPE_IS = "user_id IS ? AND agent_id IS ? AND run_id IS ?"


@dataclass(frozen=True)
class HistoryEvent:
    memory_id: str
    event: Event
    old_memory: str | None
    new_memory: str | None
    created_at: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class LoggedMessage:
    """One message of a scope's log: its scope triple, role and content."""

    role: str
    content: str
    created_at: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def scope(self) -> tuple[str | None, str | None, str | None]:
        return (self.user_id, self.agent_id, self.run_id)


@dataclass(frozen=True)
class Receipt:
    """What :meth:`History.record_change` wrote: event ids and message-log ids."""

    events: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)


class History:
    """An append-only log of memory changes, one SQLite file (WAL).

    Raises :class:`StoreError` when the file cannot be opened, is not a history database, or
    a read or write fails.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the history database {self.path}: {exc}"
            ) from exc
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the history database {self.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS history (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    memory_id TEXT NOT NULL,
                    event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
                    old_memory TEXT,
                    new_memory TEXT,
                    created_at TEXT NOT NULL,
                    user_id TEXT,
                    agent_id TEXT,
                    run_id TEXT
                );
                """
            )
            columns = tuple(row[1] for row in self._conn.execute("PRAGMA table_info(history)"))
            if columns == _COLUMNS:
                self._conn.execute(
                    "CREATE INDEX IF NOT EXISTS history_memory ON history(memory_id, seq)"
                )
                self._conn.execute("SELECT seq FROM history ORDER BY seq DESC LIMIT 1").fetchall()
                self._conn.executescript(_MESSAGES_TABLE)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(
                f"the history database {self.path} cannot be used: {exc}. If the file is "
                "damaged, move it away (a new history starts) or set history_db_path to "
                "another file"
            ) from exc
        if columns != _COLUMNS:
            self._conn.close()
            raise StoreError(
                f"{self.path} is not a memsift history database: its history table has the "
                f"columns {list(columns)}, expected {list(_COLUMNS)}; set history_db_path to "
                "another file"
            )

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; any SQLite error becomes StoreError."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                # SQLite rolls back by itself on some errors (a full disk, for one); a second
                # ROLLBACK would fail with "no transaction is active" and hide the cause.
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(
                        f"cannot {what} the history database {self.path}: {exc}"
                    ) from exc
                raise

    def record(self, events: Sequence[HistoryEvent]) -> list[int]:
        """Append ``events`` in one transaction; returns their ids (for :meth:`remove`).

        Raises :class:`StoreError` (nothing written) when the write fails.
        """
        if not events:
            return []
        return self.record_change(events).events

    def record_change(
        self, events: Sequence[HistoryEvent], messages: Sequence[LoggedMessage] = ()
    ) -> Receipt:
        """Append ``events`` and log ``messages`` in one transaction (for :meth:`take_back`).

        Each scope that gets messages is first pruned to its newest :data:`LOG_KEEP`
        messages (so a change taken back never costs a scope the messages it had).
        Raises :class:`StoreError` (nothing written) when the write fails.
        """
        receipt = Receipt()
        if not events and not messages:
            return receipt
        with self._write("write to") as conn:
            for e in events:
                cursor = conn.execute(
                    _INSERT,
                    (
                        e.memory_id,
                        e.event,
                        e.old_memory,
                        e.new_memory,
                        e.created_at,
                        e.user_id,
                        e.agent_id,
                        e.run_id,
                    ),
                )
                assert cursor.lastrowid is not None
                receipt.events.append(int(cursor.lastrowid))
            for scope in dict.fromkeys(m.scope() for m in messages):
                conn.execute(
                    f"DELETE FROM messages WHERE {_SCOPE_IS} AND seq NOT IN (SELECT seq FROM "
                    f"messages WHERE {_SCOPE_IS} ORDER BY seq DESC LIMIT ?)",
                    (*scope, *scope, LOG_KEEP),
                )
            for m in messages:
                cursor = conn.execute(
                    "INSERT INTO messages(user_id, agent_id, run_id, role, content, created_at) "
                    "VALUES(?, ?, ?, ?, ?, ?)",
                    (*m.scope(), m.role, m.content[:LOGGED_MESSAGE_CHARS], m.created_at),
                )
                assert cursor.lastrowid is not None
                receipt.messages.append(int(cursor.lastrowid))
        return receipt

    def remove(self, ids: Sequence[int]) -> None:
        """Delete the events with these ids (those :meth:`record` returned), in one transaction.

        Used to take back the events of a change whose store write failed. The ids are never
        reused (``AUTOINCREMENT``), so only those events go. Raises :class:`StoreError`.
        """
        self.take_back(Receipt(events=list(ids)))

    def take_back(self, receipt: Receipt) -> None:
        """Delete what :meth:`record_change` wrote (events and messages), in one transaction.

        Raises :class:`StoreError`.
        """
        if not receipt.events and not receipt.messages:
            return
        with self._write("take events back from") as conn:
            conn.executemany(
                "DELETE FROM history WHERE seq = ?", [(int(i),) for i in receipt.events]
            )
            conn.executemany(
                "DELETE FROM messages WHERE seq = ?", [(int(i),) for i in receipt.messages]
            )

    def recent_messages(
        self, scope: tuple[str | None, str | None, str | None], limit: int = LOG_KEEP
    ) -> list[tuple[str, str]]:
        """The scope's last ``limit`` logged messages, oldest first, as ``(role, content)``."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    f"SELECT role, content FROM messages WHERE {_SCOPE_IS} "
                    "ORDER BY seq DESC LIMIT ?",
                    (*scope, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the history database {self.path}: {exc}") from exc
        return [(str(role), str(content)) for role, content in reversed(rows)]

    def forget_messages(self, pins: dict[str, str]) -> None:
        """Delete the logged messages of every scope that has all of ``pins``
        (``{"user_id": "alice"}`` forgets every scope of alice). Raises :class:`StoreError`."""
        fields = [f for f in ("user_id", "agent_id", "run_id") if f in pins]
        if not fields:
            return
        where = " AND ".join(f"{f} = ?" for f in fields)
        with self._write("forget messages in") as conn:
            conn.execute(f"DELETE FROM messages WHERE {where}", [pins[f] for f in fields])

    def get(self, memory_id: str) -> list[dict[str, Any]]:
        """Every event of one memory, oldest first."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT seq, memory_id, event, old_memory, new_memory, created_at, user_id, "
                    "agent_id, run_id FROM history WHERE memory_id = ? ORDER BY seq",
                    (memory_id,),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the history database {self.path}: {exc}") from exc
        out = []
        for seq, mid, event, old, new, created, user, agent, run in rows:
            item: dict[str, Any] = {
                "id": seq,
                "memory_id": mid,
                "event": event,
                "old_memory": old,
                "new_memory": new,
                "created_at": created,
            }
            for key, value in (("user_id", user), ("agent_id", agent), ("run_id", run)):
                if value is not None:
                    item[key] = value
            out.append(item)
        return out

    def events_for(self, memory_ids: Sequence[str]) -> list[HistoryEvent]:
        """The events of these memories, oldest first (what ``memsift migrate`` copies)."""
        out: list[HistoryEvent] = []
        ids = list(dict.fromkeys(memory_ids))
        with self._lock:
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    out.extend(
                        HistoryEvent(*row)
                        for row in self._conn.execute(
                            "SELECT memory_id, event, old_memory, new_memory, created_at, "
                            f"user_id, agent_id, run_id FROM history WHERE memory_id IN ({marks}) "
                            "ORDER BY seq",
                            chunk,
                        )
                    )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the history database {self.path}: {exc}") from exc
        return out

    def memory_ids(self) -> list[str]:
        """Every memory id that has events, in the order of its first event."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT memory_id FROM history GROUP BY memory_id ORDER BY MIN(seq)"
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the history database {self.path}: {exc}") from exc
        return [str(r[0]) for r in rows]

    def replace_events(self, memory_ids: Sequence[str], events: Sequence[HistoryEvent]) -> None:
        """In one transaction: delete every event of ``memory_ids``, then append ``events``
        (``memsift migrate`` imports a memory's events this way, so a rerun after an
        interruption never doubles them). Raises :class:`StoreError`."""
        ids = list(dict.fromkeys(memory_ids))
        with self._write("import events into") as conn:
            conn.executemany("DELETE FROM history WHERE memory_id = ?", [(i,) for i in ids])
            conn.executemany(
                _INSERT,
                [
                    (
                        e.memory_id,
                        e.event,
                        e.old_memory,
                        e.new_memory,
                        e.created_at,
                        e.user_id,
                        e.agent_id,
                        e.run_id,
                    )
                    for e in events
                ],
            )

    def reset(self) -> None:
        """Delete every event and every logged message."""
        with self._write("clear") as conn:
            conn.execute("DELETE FROM history")
            conn.execute("DELETE FROM messages")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
