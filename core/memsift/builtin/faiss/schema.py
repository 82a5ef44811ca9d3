"""The SQLite side of the ``faiss`` store: the schema and its migration, the ``meta`` state
(epoch, generation, next slot, the slot log, the index stamp), rows to records, and the
mapping of every :mod:`sqlite3` error to a :class:`~memsift.errors.StoreError`.

The functions take the connection (and the database path, for messages); the store owns the
connection and its transactions.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memsift.builtin.faiss.config import FaissStoreConfig
from memsift.errors import EmbedderMismatchError, InvalidInputError, StoreError
from memsift.filters import register_sql_functions
from memsift.records import EmbedderIdentity, MemoryRecord

log = logging.getLogger(__name__)

#: "1": memories and meta; "2" adds the epoch, next_slot and the slot_log table; "3" adds the
#: memories.terms column and the keyword index (see :mod:`~memsift.builtin.faiss.keyword`).
SCHEMA_VERSION = "3"
_KNOWN_SCHEMAS = ("1", "2", "3")
#: How long a write waits for another process's write lock before it fails.
BUSY_TIMEOUT_S = 10.0
#: slot_log keeps the last LOG_KEEP generations (pruned every LOG_PRUNE_EVERY); a process
#: further behind than that reloads fully instead of catching up.
LOG_KEEP = 65_536
LOG_PRUNE_EVERY = 1024

ROW_COLUMNS = "id, memory, hash, metadata, user_id, agent_id, run_id, created_at, updated_at"
_STATE_KEYS = ("epoch", "generation", "next_slot", "log_floor", "keyword_analyzer")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS memories (
        id TEXT PRIMARY KEY,
        slot INTEGER NOT NULL UNIQUE,
        memory TEXT NOT NULL,
        hash TEXT NOT NULL,
        metadata TEXT NOT NULL,
        user_id TEXT,
        agent_id TEXT,
        run_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        vector BLOB NOT NULL,
        terms TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS memories_user ON memories(user_id)",
    "CREATE INDEX IF NOT EXISTS memories_agent ON memories(agent_id)",
    "CREATE INDEX IF NOT EXISTS memories_run ON memories(run_id)",
    "CREATE INDEX IF NOT EXISTS memories_hash ON memories(hash)",
    "CREATE TABLE IF NOT EXISTS slot_log (generation INTEGER NOT NULL, slot INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS slot_log_generation ON slot_log(generation)",
)
_SCHEMA_OBJECTS = {
    "meta",
    "memories",
    "memories_user",
    "memories_agent",
    "memories_run",
    "memories_hash",
    "slot_log",
    "slot_log_generation",
}


@dataclass(frozen=True)
class State:
    """What SQLite says about the slots: the numbering epoch, the generation, the next slot."""

    epoch: str
    generation: int
    next_slot: int
    log_floor: int
    keyword: str | None = None  # the keyword index's analyzer signature; None: no index


@dataclass
class Txn:
    """A write transaction in progress: what it will record in meta when it commits."""

    epoch: str
    generation: int  # the generation this write commits
    next_slot: int
    log_floor: int
    keyword: str | None = None  # keep the keyword index, built by this analyzer, in step
    logged: list[int] = field(default_factory=list)  # slots deleted or re-scoped
    clear_log: bool = False
    dirty: bool = True  # False: nothing to record (the transaction changed nothing)


# --------------------------------------------------------------------------- connection, errors


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with full sync, the busy timeout and memsift's SQL functions."""
    try:
        conn = sqlite3.connect(
            db_path,
            timeout=BUSY_TIMEOUT_S,
            check_same_thread=False,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        raise store_error(db_path, "open the store", exc) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")  # reads the header: fails on a non-database
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(db_path, "open the store", exc) from exc
    register_sql_functions(conn)
    return conn


def store_error(db_path: Path, action: str, exc: sqlite3.Error) -> StoreError:
    """A StoreError for a failed SQLite operation: the file, SQLite's message, a remedy."""
    cause = str(exc) or type(exc).__name__
    low = cause.lower()
    if "is full" in low:
        advice = "free disk space and retry; this call changed nothing"
    elif "malformed" in low or "not a database" in low or "corrupt" in low:
        advice = (
            "the file is damaged and was left as it is; restore it from a backup, or move "
            "it (with its -wal and -shm files) aside to start an empty store"
        )
    elif "locked" in low or "busy" in low:
        advice = (
            f"another process held the store's write lock for more than {BUSY_TIMEOUT_S:g} s; retry"
        )
    elif "readonly" in low or "read-only" in low:
        advice = "the file or its folder is read-only: reads work, writes need both writable"
    elif "unable to open" in low:
        advice = (
            "check that the folder exists and is writable: SQLite keeps its -wal and -shm "
            "files beside the database, even to read it"
        )
    else:
        advice = "this call changed nothing"
    return StoreError(f"cannot {action}: the store database {db_path} failed: {cause}; {advice}")


@contextmanager
def sqlite_errors(db_path: Path, action: str) -> Iterator[None]:
    """Turn every sqlite3 error raised inside into a StoreError that names the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(db_path, action, exc) from exc


def rollback(conn: sqlite3.Connection, db_path: Path) -> None:
    """Roll back the open transaction, if SQLite has not already rolled it back itself."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the original error matters, not this one
            log.debug("rollback on %s failed: %s", db_path, exc)


# --------------------------------------------------------------------------- meta


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def set_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES(?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def read_stamp(conn: sqlite3.Connection) -> str | None:
    """The index stamp recorded in meta (JSON text), or None when no file was recorded."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'index_stamp'").fetchone()
    return None if row is None else str(row[0])


def read_state(conn: sqlite3.Connection) -> State:
    marks = ",".join("?" * len(_STATE_KEYS))
    meta = dict(
        conn.execute(f"SELECT key, value FROM meta WHERE key IN ({marks})", _STATE_KEYS).fetchall()
    )
    top = conn.execute("SELECT MAX(slot) FROM memories").fetchone()[0]
    # next_slot is the high-water mark; MAX(slot) guards against a meta that lags behind.
    next_slot = max(int(meta.get("next_slot", "0")), 0 if top is None else int(top) + 1)
    return State(
        epoch=meta.get("epoch", ""),
        generation=int(meta.get("generation", "0")),
        next_slot=next_slot,
        log_floor=int(meta.get("log_floor", "0")),
        keyword=meta.get("keyword_analyzer"),
    )


def read_data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def record_txn(conn: sqlite3.Connection, txn: Txn) -> None:
    """Write the transaction's slot log and its new meta state (inside the transaction)."""
    if txn.clear_log:
        conn.execute("DELETE FROM slot_log")
        txn.log_floor = txn.generation
    elif txn.generation % LOG_PRUNE_EVERY == 0 and txn.generation - LOG_KEEP > txn.log_floor:
        txn.log_floor = txn.generation - LOG_KEEP
        conn.execute("DELETE FROM slot_log WHERE generation <= ?", (txn.log_floor,))
    if txn.logged:
        conn.executemany(
            "INSERT INTO slot_log(generation, slot) VALUES(?, ?)",
            [(txn.generation, s) for s in txn.logged],
        )
    set_meta(
        conn,
        {
            "epoch": txn.epoch,
            "generation": str(txn.generation),
            "next_slot": str(txn.next_slot),
            "log_floor": str(txn.log_floor),
        },
    )


def new_epoch() -> str:
    return os.urandom(8).hex()


# --------------------------------------------------------------------------- schema, migration


def schema_ready(conn: sqlite3.Connection) -> bool:
    """Whether the tables exist and meta is initialised at this schema (a read only)."""
    names = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
    }
    if not _SCHEMA_OBJECTS.issubset(names):
        return False
    meta = read_meta(conn)
    return (
        meta.get("schema_version") == SCHEMA_VERSION
        and "epoch" in meta
        and "embedder_model" in meta
    )


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes that do not exist yet, and add the columns a store of
    an older schema lacks (inside a write transaction)."""
    for statement in _SCHEMA:
        conn.execute(statement)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(memories)")}
    if "terms" not in columns:  # schema 1 or 2: the keyword index is built by the store
        conn.execute("ALTER TABLE memories ADD COLUMN terms TEXT")


def bind(
    conn: sqlite3.Connection,
    meta: dict[str, str],
    identity: EmbedderIdentity,
    config: FaissStoreConfig,
    *,
    db_path: Path,
    index_files: Sequence[Path],
    write: bool,
) -> None:
    """Check the embedder and the layout recorded in meta; record them on a new store.

    With ``write``, a new store records them and a store of schema 1 gets an epoch (its
    ``index_files`` cannot be verified, so they are removed and the index rebuilt).
    """
    cfg = config
    schema = meta.get("schema_version", "1")
    if schema not in _KNOWN_SCHEMAS:
        raise StoreError(
            f"the store {db_path} has schema version {schema}, written by a newer "
            "memsift; upgrade memsift to open it"
        )
    if "embedder_model" in meta:
        stored = EmbedderIdentity(
            provider=meta["embedder_provider"],
            model=meta["embedder_model"],
            dims=int(meta["dims"]),
        )
        if stored != identity:
            raise EmbedderMismatchError(
                f"the store {db_path} holds vectors from embedder "
                f"{stored.provider}/{stored.model} ({stored.dims}-d), not "
                f"{identity.provider}/{identity.model} ({identity.dims}-d); vectors "
                "from different embedders cannot be mixed. Use another "
                "collection_name or path for the new embedder and add the memories "
                "again (Memory.get_all gives their texts), or reset() this store."
            )
        if meta.get("distance_strategy", cfg.distance_strategy) != cfg.distance_strategy:
            raise StoreError(
                f"the store {db_path} was built with distance_strategy "
                f"{meta['distance_strategy']!r}, not {cfg.distance_strategy!r}"
            )
    if not write:
        return
    values = {"schema_version": SCHEMA_VERSION}
    if "embedder_model" not in meta:
        values.update(
            embedder_provider=identity.provider,
            embedder_model=identity.model,
            dims=str(identity.dims),
            distance_strategy=cfg.distance_strategy,
        )
    if "epoch" not in meta:  # a new store, or one written before epochs existed
        generation = meta.get("generation", "0")
        values.update(epoch=new_epoch(), generation=generation, log_floor=generation)
        top = conn.execute("SELECT MAX(slot) FROM memories").fetchone()[0]
        values["next_slot"] = str(0 if top is None else int(top) + 1)
        conn.execute("DELETE FROM meta WHERE key = 'index_stamp'")
        for leftover in index_files:  # unverifiable: rebuilt
            with suppress(OSError):
                leftover.unlink(missing_ok=True)
    set_meta(conn, values)


# --------------------------------------------------------------------------- rows


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    """``items`` in lists of at most ``size`` (SQL ``IN`` lists under SQLite's limits)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def dump_metadata(metadata: dict[str, Any]) -> str:
    try:
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from exc


def record_from_row(row: Sequence[Any]) -> MemoryRecord:
    """The record of a row of :data:`ROW_COLUMNS`."""
    return MemoryRecord(
        id=row[0],
        memory=row[1],
        hash=row[2],
        metadata={} if row[3] == "{}" else json.loads(row[3]),  # the common case, fast
        user_id=row[4],
        agent_id=row[5],
        run_id=row[6],
        created_at=row[7],
        updated_at=row[8],
    )
