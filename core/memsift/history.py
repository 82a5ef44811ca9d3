"""The change history of memories: ADD, UPDATE and DELETE events in SQLite."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from memsift.errors import StoreError

Event = Literal["ADD", "UPDATE", "DELETE"]


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
    """An append-only log of memory changes, one SQLite file (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
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
                CREATE INDEX IF NOT EXISTS history_memory ON history(memory_id, seq);
                """
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the history database {self.path}: {exc}") from exc

    def record(self, events: Sequence[HistoryEvent]) -> None:
        if not events:
            return
        rows = [
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
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO history(memory_id, event, old_memory, new_memory, created_at, "
                    "user_id, agent_id, run_id) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def get(self, memory_id: str) -> list[dict[str, Any]]:
        """Every event of one memory, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, memory_id, event, old_memory, new_memory, created_at, user_id, "
                "agent_id, run_id FROM history WHERE memory_id = ? ORDER BY seq",
                (memory_id,),
            ).fetchall()
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
        with self._lock:
            self._conn.execute("DELETE FROM history")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
