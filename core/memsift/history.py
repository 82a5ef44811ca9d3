"""The change history of memories: ADD, UPDATE and DELETE events in SQLite.

The history is its own SQLite file (by default ``history.db`` beside the store), so a write to
it and a write to the vector store cannot share one transaction. ``Memory`` keeps the two in
step by this rule (:func:`memsift.changes.record_then`): the events are written first
(:meth:`History.record` returns their ids), then the store; if the store write fails the
events are taken back (:meth:`History.remove`) and the error is raised, and if the history
write fails the store is not touched. So a call that raises leaves both as they were.

Every SQLite error (a full disk, a locked or malformed file) surfaces as
:class:`memsift.errors.StoreError` naming the file and carrying SQLite's own message; a write
that fails is rolled back (when SQLite has not already rolled it back itself).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
        ids: list[int] = []
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
                ids.append(int(cursor.lastrowid))
        return ids

    def remove(self, ids: Sequence[int]) -> None:
        """Delete the events with these ids (those :meth:`record` returned), in one transaction.

        Used to take back the events of a change whose store write failed. The ids are never
        reused (``AUTOINCREMENT``), so only those events go. Raises :class:`StoreError`.
        """
        if not ids:
            return
        with self._write("take events back from") as conn:
            conn.executemany("DELETE FROM history WHERE seq = ?", [(int(i),) for i in ids])

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

    def reset(self) -> None:
        """Delete every event."""
        with self._write("clear") as conn:
            conn.execute("DELETE FROM history")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
