"""The change history of memories (ADD, UPDATE and DELETE events) and the per-scope message
log of ``add(infer=True)``, in SQLite.

The history is its own SQLite file (by default ``history.db`` beside the store), so a write to
it and a write to the vector store cannot share one transaction. ``Memory`` keeps the two in
step by this rule (:func:`memsift.changes.record_then`): the events are written first
(:meth:`History.record` returns their ids), then the store; if the store write fails the
events are taken back (:meth:`History.remove`) and the error is raised, and if the history
write fails the store is not touched. So a call that raises leaves both as they were.

**Pending events.** A process can die between the two commits. So a ``History`` bound to a
store (``History(path, confirm=store.get)``, as ``Memory`` opens it) writes its events
*pending* (column ``pending``: the time they were written; NULL once settled), and
:meth:`History.settle` clears the mark once the store write has returned (a commit without
an fsync: it survives a killed process; after a power loss the rule below still holds). A
settled event is always shown; a pending one only when the store confirms it
(:func:`confirmed`, reading the store through ``VectorStore.get`` only):

- followed by a later event of the same memory (which a later change wrote after reading the
  memory from the store): an ADD is confirmed; an UPDATE when the later event's old text is
  its new text; a DELETE never;
- the memory's last event: an ADD when the store holds the id with its text; an UPDATE when
  the stored text is its new text (and, for an update that kept the text, the stored
  ``updated_at`` is its time); a DELETE when the id is gone.

A bound ``History`` opening (every ``Memory`` / ``AsyncMemory``) settles every pending event
the store confirms, and removes those it does not once older than :data:`PENDING_LEASE`.
Several processes may share one store, so a younger unconfirmed event may be another live
process's write in flight: it is only hidden. An unbound ``History`` (a tool reading the file
alone) writes settled events and shows settled events only. A file from before this column
gets it on opening (``ALTER TABLE``), its events settled.

Every SQLite error (a full disk, a locked or malformed file) is a StoreError naming the file,
SQLite's message and what to do (:mod:`memsift.errors`); a failed write is rolled back.

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

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from memsift.errors import StoreError

log = logging.getLogger("memsift")

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
    "pending",
)
_INSERT = (
    "INSERT INTO history(memory_id, event, old_memory, new_memory, created_at, "
    "user_id, agent_id, run_id, pending) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ROW = "seq, memory_id, event, old_memory, new_memory, created_at, user_id, agent_id, run_id"
#: Seconds after which a pending event that the store does not confirm is removed when a
#: bound ``History`` opens (younger, it may be a live process's write in flight).
PENDING_LEASE = 3600.0
#: How many logged messages a scope keeps (older ones are pruned as new ones come).
LOG_KEEP = 10
#: The longest logged message, in characters (a longer one is cut; the log is context only).
LOGGED_MESSAGE_CHARS = 2000
#: What to do about a failed write, by a word of SQLite's message (the call changed nothing).
_ADVICE = (("full", "free disk space"), ("readonly", "make the file and its folder writable"))
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


class Stored(Protocol):
    """What :func:`confirmed` reads of a stored memory (a :class:`MemoryRecord` is one)."""

    @property
    def memory(self) -> str: ...

    @property
    def updated_at(self) -> str: ...


#: The store's lookup of one memory id (``VectorStore.get``).
Lookup = Callable[[str], "Stored | None"]
#: One history row as read: the columns of :data:`_ROW`, then ``pending``.
_Row = tuple[Any, ...]


def confirmed(row: _Row, later: _Row | None, lookup: Callable[[], Stored | None]) -> bool:
    """Whether the store confirms the pending event ``row`` (the module doc's rule):
    ``later`` is the next event of the same memory, if any; ``lookup`` gets it from the
    store (called only for a last event)."""
    event, old, new, created = str(row[2]), row[3], row[4], row[5]
    if later is not None:
        return event == "ADD" or (event == "UPDATE" and bool(later[3] == new))
    stored = lookup()
    if event == "DELETE":
        return stored is None
    if stored is None or stored.memory != new:
        return False
    return event == "ADD" or bool(old != new) or stored.updated_at == created


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

    def __init__(
        self, path: str | Path, confirm: Lookup | None = None, *, lease: float = PENDING_LEASE
    ) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._confirm = confirm
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
                    run_id TEXT,
                    pending REAL DEFAULT NULL
                );
                """
            )
            columns = tuple(row[1] for row in self._conn.execute("PRAGMA table_info(history)"))
            if columns == _COLUMNS[:-1]:  # a file from before pending events
                self._conn.execute("ALTER TABLE history ADD COLUMN pending REAL DEFAULT NULL")
                columns = _COLUMNS
            if columns == _COLUMNS:
                self._conn.execute(
                    "CREATE INDEX IF NOT EXISTS history_memory ON history(memory_id, seq)"
                )
                self._conn.execute(
                    "CREATE INDEX IF NOT EXISTS history_pending ON history(pending) "
                    "WHERE pending IS NOT NULL"
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
        if confirm is not None:
            self.resolve_pending(lease)

    @contextmanager
    def _write(self, what: str, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; any SQLite error becomes StoreError.
        Not ``durable``: committed without an fsync (it survives a killed process, and the
        next durable commit syncs it too)."""
        with self._lock:
            conn = self._conn
            try:
                if not durable:
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                # SQLite may have rolled back itself (a full disk): a 2nd ROLLBACK hides the cause
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    fix = next((a for w, a in _ADVICE if w in str(exc).lower()), "check the file")
                    raise StoreError(
                        f"cannot {what} the history database {self.path}: {exc}; {fix} and "
                        "retry (this call changed nothing)"
                    ) from exc
                raise
            finally:
                if not durable:
                    with suppress(sqlite3.Error):
                        conn.execute("PRAGMA synchronous=FULL")

    def record(self, events: Sequence[HistoryEvent]) -> list[int]:
        """Append ``events`` in one transaction (pending when bound); returns their ids (for
        :meth:`remove` and :meth:`settle`). Raises :class:`StoreError` (nothing written)."""
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
        pending = time.time() if self._confirm is not None else None
        with self._write("write to") as conn:
            for e in events:
                cursor = conn.execute(_INSERT, (*astuple(e), pending))
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

    def settle(self, ids: Sequence[int]) -> None:
        """Clear the pending mark of these events (their store write returned), in one
        transaction committed without an fsync. Raises :class:`StoreError`."""
        if not ids:
            return
        with self._write("settle events in", durable=False) as conn:
            _settle_in(conn, ids)

    def resolve_pending(self, lease: float = PENDING_LEASE) -> None:
        """Settle every pending event the store confirms; remove those it does not confirm
        that are older than ``lease`` seconds (run when a bound ``History`` opens; a store
        that cannot be read leaves them pending, logged)."""
        if self._confirm is None:
            return
        try:
            with self._lock:
                pending_ids = self._conn.execute(
                    "SELECT DISTINCT memory_id FROM history WHERE pending IS NOT NULL"
                ).fetchall()
            settle: list[int] = []
            stale: list[int] = []
            cutoff = time.time() - lease
            for (memory_id,) in pending_ids:
                rows = self._rows("memory_id = ?", [memory_id])
                shown = self._shown(rows)
                for row in rows:
                    if row[-1] is not None and row[0] in shown:
                        settle.append(row[0])
                    elif row[-1] is not None and row[-1] < cutoff:
                        stale.append(row[0])
            if settle or stale:
                with self._write("resolve the pending events of") as conn:
                    _settle_in(conn, settle)
                    conn.executemany("DELETE FROM history WHERE seq = ?", [(i,) for i in stale])
        except Exception as exc:  # a StoreError (read-only, full disk) is no bug: no traceback
            bug = not isinstance(exc, StoreError)
            log.error("%s: pending events stay pending: %s", self.path, exc, exc_info=bug)

    def _rows(self, where: str, args: Sequence[Any]) -> list[_Row]:
        """The rows (with ``pending``) that match ``where``, by memory then seq."""
        with self._lock:
            try:
                return self._conn.execute(
                    f"SELECT {_ROW}, pending FROM history WHERE {where} ORDER BY memory_id, seq",
                    list(args),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the history database {self.path}: {exc}") from exc

    def _shown(self, rows: Sequence[_Row]) -> set[int]:
        """The seqs of ``rows`` (ordered by memory, then seq) that are shown: the settled ones,
        and the pending ones the store confirms (none when unbound)."""
        confirm = self._confirm
        shown = {row[0] for row in rows if row[-1] is None}
        for index, row in enumerate(rows):
            if row[-1] is not None and confirm is not None:
                nxt = rows[index + 1] if index + 1 < len(rows) else None
                later = nxt if nxt is not None and nxt[1] == row[1] else None
                if confirmed(row, later, partial(confirm, row[1])):
                    shown.add(row[0])
        return shown

    def _visible_of(self, memory_ids: Sequence[str]) -> list[_Row]:
        out: list[_Row] = []
        for start in range(0, len(memory_ids), 500):
            chunk = memory_ids[start : start + 500]
            rows = self._rows(f"memory_id IN ({','.join('?' * len(chunk))})", chunk)
            shown = self._shown(rows)
            out.extend(row for row in rows if row[0] in shown)
        return out

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
        """Every shown event of one memory, oldest first (see the module doc)."""
        out = []
        for seq, mid, event, old, new, created, user, agent, run, _ in self._visible_of(
            [memory_id]
        ):
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
        rows = self._visible_of(list(dict.fromkeys(memory_ids)))
        rows.sort(key=lambda row: int(row[0]))
        return [HistoryEvent(*row[1:-1]) for row in rows]

    def memory_ids(self) -> list[str]:
        """Every memory id that has shown events, in the order of its first event."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT memory_id, MIN(seq), MAX(pending IS NULL) FROM history "
                    "GROUP BY memory_id ORDER BY MIN(seq)"
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the history database {self.path}: {exc}") from exc
        shown = {str(r[1]) for r in self._visible_of([str(r[0]) for r in rows if not r[2]])}
        return [str(r[0]) for r in rows if r[2] or str(r[0]) in shown]

    def replace_events(self, memory_ids: Sequence[str], events: Sequence[HistoryEvent]) -> None:
        """In one transaction: delete every event of ``memory_ids``, then append ``events``
        (``memsift migrate`` imports a memory's events this way, so a rerun after an
        interruption never doubles them). Raises :class:`StoreError`."""
        ids = list(dict.fromkeys(memory_ids))
        with self._write("import events into") as conn:
            conn.executemany("DELETE FROM history WHERE memory_id = ?", [(i,) for i in ids])
            conn.executemany(_INSERT, [(*astuple(e), None) for e in events])

    def reset(self) -> None:
        """Delete every event and every logged message."""
        with self._write("clear") as conn:
            conn.execute("DELETE FROM history")
            conn.execute("DELETE FROM messages")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _settle_in(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), 500):
        chunk = [int(i) for i in ids[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"UPDATE history SET pending = NULL WHERE seq IN ({marks})", chunk)
