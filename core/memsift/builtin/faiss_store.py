"""The built-in vector store ``faiss``: SQLite is the source of truth, FAISS the derived index.

SQLite (WAL) holds every memory: id, text, hash, metadata (JSON), scope ids, timestamps and
the vector. A FAISS index over the vectors is derived from it, saved beside it on close, and
rebuilt from SQLite whenever the two disagree.

Every vector lives in one *slot* of the index (its position). Filters give the set of
allowed slots -- scope-only filters from in-memory scope columns, others from SQL -- and the
search is exact over exactly those slots: a gathered brute-force product when the set is
small, FAISS with a bitmap selector otherwise. Deletes and updates never rebuild the index:
they leave a tombstone (an update writes the new vector to a new slot), and tombstones are
compacted away once they pass a quarter of the index.

**What SQLite records about the index.** The ``meta`` table holds an *epoch* (a random token,
new whenever slot numbers change: at compaction and at reset), a *generation* (bumped by
every write), ``next_slot`` (the high-water mark of slots; slots are never reused within an
epoch, so the vector in a slot never changes within an epoch) and a ``slot_log`` table
naming the slots each generation deleted or re-scoped. Saving the index file records its
stamp -- epoch, generation, slot count, live count, byte size and SHA-256 of the file -- in
``meta`` (the authority) and in the sidecar ``<name>.faiss.json``. At open the file is used
only when the sidecar equals the stamp in ``meta``, the bytes hash to the recorded SHA-256,
and the epoch is the current one; the slots added since it was saved are then read from
SQLite. Anything else (a damaged, foreign, missing or half-written file or sidecar) rebuilds
the index from SQLite with a logged warning; a file of an older epoch is rebuilt quietly.

**Several processes on one store** (web workers, a CLI next to a server) are supported:

- Every call sees the writes other processes have committed before it. SQLite is the
  truth; each process keeps an in-memory index and catches it up from SQLite's change
  counter (``PRAGMA data_version``): a search re-reads nothing when no other connection
  committed, reads only the slots added since (and the slots ``slot_log`` names) when the
  epoch is unchanged, and reloads fully after another process compacted or reset the store.
  Reads by id and listings go to SQLite directly.
- Writes serialise on SQLite's write lock (``BEGIN IMMEDIATE``, busy timeout
  :data:`BUSY_TIMEOUT_S` s): a write first catches up, then takes its slots from
  ``next_slot`` inside the transaction, so no two processes ever claim one slot. A writer
  that waits longer than the timeout gets a :class:`~memsift.errors.StoreError`.
- Compaction renumbers slots under the write lock and starts a new epoch; the other
  processes notice the new epoch on their next call and reload (reading the index file if
  one of this epoch was saved, else rebuilding from SQLite).
- Saving the index file happens under the write lock and never replaces a file that
  reflects a newer state of the same epoch, nor writes one of an outdated epoch; and a
  process loads a file only when its stamp matches SQLite, so a stale save can never be
  taken for the current state.

Every :mod:`sqlite3` error (a full disk, a lock held past the timeout, a malformed file)
surfaces as :class:`~memsift.errors.StoreError` naming the file, carrying SQLite's message
and saying what to do. A write is applied to the in-memory index only after SQLite
committed it, so a failed write changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from memsift.builtin import lazy_module
from memsift.config import memsift_home
from memsift.errors import ConfigError, EmbedderMismatchError, InvalidInputError, StoreError
from memsift.filters import (
    SCOPE_FIELDS,
    And,
    Cond,
    Filter,
    MatchAll,
    compile_sql,
    register_sql_functions,
)
from memsift.hookspecs import hookimpl
from memsift.interfaces import (
    EmbedderIdentity,
    FloatArray,
    MemoryRecord,
    VectorHit,
    VectorStore,
    VectorStoreConfig,
)

if TYPE_CHECKING:
    from memsift.registry import ProviderRegistrar

log = logging.getLogger(__name__)
faiss: Any = lazy_module("faiss")  # imported when an index is first built; untyped SWIG

#: "1": memories and meta; "2" adds the epoch, next_slot and the slot_log table.
SCHEMA_VERSION = "2"
_KNOWN_SCHEMAS = ("1", "2")
#: Up to this many allowed vectors, search gathers them and scores them with one product.
BRUTE_FORCE_MAX = 20_000
#: Compact tombstones once they exceed this share of the index (and COMPACT_MIN slots).
COMPACT_SHARE = 0.25
COMPACT_MIN = 1024
#: How long a write waits for another process's write lock before it fails.
BUSY_TIMEOUT_S = 10.0
#: slot_log keeps the last LOG_KEEP generations (pruned every LOG_PRUNE_EVERY); a process
#: further behind than that reloads fully instead of catching up.
LOG_KEEP = 65_536
LOG_PRUNE_EVERY = 1024
#: Format of the index stamp recorded in meta and in the sidecar.
STAMP_FORMAT = 1

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$")
_ROW_COLUMNS = "id, memory, hash, metadata, user_id, agent_id, run_id, created_at, updated_at"
_STATE_KEYS = ("epoch", "generation", "next_slot", "log_floor")
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
        vector BLOB NOT NULL
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

Int64Array = npt.NDArray[np.int64]


class FaissStoreConfig(VectorStoreConfig):
    """Config of the built-in ``faiss`` store."""

    path: str | None = Field(
        default=None,
        description="directory of the store files (default: $MEMSIFT_HOME or ~/.memsift, /faiss)",
    )
    collection_name: str = Field(default="memsift", description="name of the collection's files")
    embedding_model_dims: int | None = Field(
        default=None, ge=1, le=65536, description="vector dimension; must match the embedder"
    )
    distance_strategy: Literal["cosine", "inner_product", "euclidean"] = Field(
        default="cosine",
        description="similarity: cosine, inner product, or 1/(1+L2 distance); higher is better",
    )
    index: Literal["flat", "hnsw"] = Field(
        default="flat", description="flat (exact) or hnsw (approximate, for large scopes)"
    )
    hnsw_m: int = Field(default=32, ge=4, le=256, description="HNSW graph degree")
    hnsw_ef_construction: int = Field(default=200, ge=8, le=4096, description="HNSW build depth")
    hnsw_ef_search: int = Field(default=128, ge=8, le=8192, description="HNSW search depth")

    @field_validator("collection_name")
    @classmethod
    def _check_collection(cls, value: str) -> str:
        if not _COLLECTION_RE.match(value):
            raise ValueError(
                "collection_name must be 1-128 letters, digits, '_' or '-' (it names files on disk)"
            )
        return value

    def directory(self) -> Path:
        return Path(self.path).expanduser() if self.path else memsift_home() / "faiss"


class _Columns:
    """Per-slot arrays kept in memory: liveness and the scope ids as integer codes."""

    def __init__(self) -> None:
        self.size = 0
        self.live = np.zeros(0, dtype=bool)
        self.codes = {f: np.zeros(0, dtype=np.int32) for f in SCOPE_FIELDS}
        self.vocab: dict[str, dict[str, int]] = {f: {} for f in SCOPE_FIELDS}

    def _grow(self, size: int) -> None:
        if size <= len(self.live):
            return
        capacity = max(size, 2 * len(self.live), 1024)
        live = np.zeros(capacity, dtype=bool)
        live[: self.size] = self.live[: self.size]
        self.live = live
        for f in SCOPE_FIELDS:
            codes = np.full(capacity, -1, dtype=np.int32)
            codes[: self.size] = self.codes[f][: self.size]
            self.codes[f] = codes

    def extend(self, size: int) -> None:
        """Grow to ``size`` slots; the new ones are dead until set."""
        self._grow(size)
        self.size = max(self.size, size)

    def code(self, field: str, value: str | None, *, create: bool) -> int:
        if value is None:
            return -1
        vocab = self.vocab[field]
        found = vocab.get(value)
        if found is None:
            if not create:
                return -2  # matches no slot
            found = vocab[value] = len(vocab)
        return found

    def set(self, slot: int, record: MemoryRecord) -> None:
        self.set_many([slot], [(record.user_id, record.agent_id, record.run_id)])

    def set_many(self, slots: Iterable[int], scopes: Iterable[tuple[Any, Any, Any]]) -> None:
        slot_list = list(slots)
        scope_list = list(scopes)
        if not slot_list:
            return
        top = max(slot_list) + 1
        self._grow(top)
        self.size = max(self.size, top)
        idx = np.asarray(slot_list, dtype=np.int64)
        self.live[idx] = True
        for pos, f in enumerate(SCOPE_FIELDS):
            self.codes[f][idx] = np.fromiter(
                (self.code(f, s[pos], create=True) for s in scope_list),
                dtype=np.int32,
                count=len(scope_list),
            )

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]], size: int) -> _Columns:
        """Columns of ``size`` slots from ``(slot, user_id, agent_id, run_id)`` rows."""
        cols = cls()
        cols._grow(size)
        cols.size = size
        cols.set_many((r[0] for r in rows), (tuple(r[1:]) for r in rows))
        return cols

    def compacted(self, order: Int64Array) -> _Columns:
        """The columns of the live slots ``order``, renumbered 0..len(order)-1."""
        cols = _Columns()
        cols._grow(len(order))
        cols.size = len(order)
        cols.live[: len(order)] = True
        for f in SCOPE_FIELDS:
            cols.codes[f][: len(order)] = self.codes[f][order]
        cols.vocab = self.vocab
        return cols

    def kill(self, slots: Iterable[int]) -> None:
        idx = np.fromiter(slots, dtype=np.int64)
        if idx.size:
            self.live[idx] = False

    def live_count(self) -> int:
        return int(np.count_nonzero(self.live[: self.size]))


@dataclass(frozen=True)
class _State:
    """What SQLite says about the slots: the numbering epoch, the generation, the next slot."""

    epoch: str
    generation: int
    next_slot: int
    log_floor: int


@dataclass
class _Txn:
    """A write transaction in progress: what it will record in meta when it commits."""

    epoch: str
    generation: int  # the generation this write commits
    next_slot: int
    log_floor: int
    logged: list[int] = field(default_factory=list)  # slots deleted or re-scoped
    clear_log: bool = False
    dirty: bool = True  # False: nothing to record (the transaction changed nothing)


class FaissStore(VectorStore):
    """SQLite + FAISS vector store. Thread-safe in one process; several processes may share it."""

    config: FaissStoreConfig

    def __init__(self, config: FaissStoreConfig) -> None:
        super().__init__(config)
        self._lock = threading.RLock()
        self.directory = config.directory()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.directory}: {exc}") from exc
        name = config.collection_name
        self.db_path = self.directory / f"{name}.sqlite3"
        self.index_path = self.directory / f"{name}.faiss"
        self.stamp_path = self.directory / f"{name}.faiss.json"
        self._identity: EmbedderIdentity | None = None
        self._dims: int | None = None
        self._index: Any = None
        self._cols = _Columns()
        self._epoch: str | None = None  # None: the in-memory index must be reloaded
        self._generation = 0
        self._saved_generation = -1
        self._data_version = -1
        self._closed = False
        self._conn = self._connect()

    # ------------------------------------------------------------------ sqlite

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.db_path,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise self._store_error("open the store", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")  # reads the header: fails on a non-database
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._store_error("open the store", exc) from exc
        register_sql_functions(conn)
        return conn

    def _store_error(self, action: str, exc: sqlite3.Error) -> StoreError:
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
                f"another process held the store's write lock for more than {BUSY_TIMEOUT_S:g} s;"
                " retry"
            )
        elif "readonly" in low or "read-only" in low or "unable to open" in low:
            advice = "check that the folder and the file exist and are writable"
        else:
            advice = "this call changed nothing"
        return StoreError(
            f"cannot {action}: the store database {self.db_path} failed: {cause}; {advice}"
        )

    @contextmanager
    def _sqlite_errors(self, action: str) -> Iterator[None]:
        """Turn every sqlite3 error raised inside into a StoreError that names the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._store_error(action, exc) from exc

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already rolled it back itself."""
        conn = self._conn
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the original error matters, not this one
                log.debug("rollback on %s failed: %s", self.db_path, exc)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[None]:
        """One read snapshot (``BEGIN``) or one write transaction (``BEGIN IMMEDIATE``)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    @contextmanager
    def _write_txn(self, action: str, *, sync: bool = True) -> Iterator[_Txn]:
        """A write transaction, on an in-memory index first caught up with SQLite.

        The body runs its statements and updates the :class:`_Txn` (slots taken, slots to
        log); meta is updated and the transaction committed when the body returns. The caller
        applies the change to the in-memory index only after that, so a failed write changes
        nothing in memory either.
        """
        conn = self._conn
        with self._sqlite_errors(action):
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._read_data_version()
                state = self._read_state()
                if sync:
                    self._sync_to(state)
                    self._data_version = version
                txn = _Txn(
                    epoch=state.epoch,
                    generation=state.generation + 1,
                    next_slot=state.next_slot,
                    log_floor=state.log_floor,
                )
                yield txn
                if txn.dirty:
                    self._record(txn)
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        if txn.dirty:
            self._generation = txn.generation
            self._epoch = txn.epoch

    def _record(self, txn: _Txn) -> None:
        """Write the transaction's slot log and its new meta state (inside the transaction)."""
        conn = self._conn
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
        self._set_meta(
            {
                "epoch": txn.epoch,
                "generation": str(txn.generation),
                "next_slot": str(txn.next_slot),
                "log_floor": str(txn.log_floor),
            }
        )

    @contextmanager
    def _applying(self) -> Iterator[None]:
        """Apply a committed write in memory; if that fails, reload from SQLite next time."""
        try:
            yield
        except BaseException:
            self._epoch = None
            raise

    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, values: dict[str, str]) -> None:
        self._conn.executemany(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def _read_state(self) -> _State:
        marks = ",".join("?" * len(_STATE_KEYS))
        meta = dict(
            self._conn.execute(
                f"SELECT key, value FROM meta WHERE key IN ({marks})", _STATE_KEYS
            ).fetchall()
        )
        top = self._conn.execute("SELECT MAX(slot) FROM memories").fetchone()[0]
        # next_slot is the high-water mark; MAX(slot) guards against a meta that lags behind.
        next_slot = max(int(meta.get("next_slot", "0")), 0 if top is None else int(top) + 1)
        return _State(
            epoch=meta.get("epoch", ""),
            generation=int(meta.get("generation", "0")),
            next_slot=next_slot,
            log_floor=int(meta.get("log_floor", "0")),
        )

    def _read_data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _schema_ready(self) -> bool:
        """Whether the tables exist and meta is initialised at this schema (a read only)."""
        names = {
            r[0]
            for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
            )
        }
        if not _SCHEMA_OBJECTS.issubset(names):
            return False
        meta = self._meta()
        return (
            meta.get("schema_version") == SCHEMA_VERSION
            and "epoch" in meta
            and "embedder_model" in meta
        )

    # ------------------------------------------------------------------ binding

    def open(self, identity: EmbedderIdentity) -> None:
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            cfg = self.config
            if cfg.embedding_model_dims is not None and cfg.embedding_model_dims != identity.dims:
                raise ConfigError(
                    f"vector_store.config.embedding_model_dims is {cfg.embedding_model_dims} "
                    f"but the embedder {identity.provider}/{identity.model} makes "
                    f"{identity.dims}-dimensional vectors"
                )
            try:
                with self._sqlite_errors("open the store"):
                    self._open(identity)
            except BaseException:
                self._identity, self._dims, self._index, self._epoch = None, None, None, None
                raise

    def _open(self, identity: EmbedderIdentity) -> None:
        # A read snapshot when the store is initialised (a damaged file is left untouched);
        # a write transaction only to create or upgrade it.
        write = False
        while True:
            with self._transaction(write=write):
                if not write and not self._schema_ready():
                    write = True
                    continue
                version = self._read_data_version()
                if write:
                    for statement in _SCHEMA:
                        self._conn.execute(statement)
                meta = self._meta()
                self._bind(meta, identity, write=write)
                self._identity = identity
                self._dims = identity.dims
                self._load(self._read_state())
                self._data_version = version
            return

    def _bind(self, meta: dict[str, str], identity: EmbedderIdentity, *, write: bool) -> None:
        """Check the embedder and the layout recorded in meta; record them on a new store."""
        cfg = self.config
        schema = meta.get("schema_version", "1")
        if schema not in _KNOWN_SCHEMAS:
            raise StoreError(
                f"the store {self.db_path} has schema version {schema}, written by a newer "
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
                    f"the store {self.db_path} holds vectors from embedder "
                    f"{stored.provider}/{stored.model} ({stored.dims}-d), not "
                    f"{identity.provider}/{identity.model} ({identity.dims}-d); vectors "
                    "from different embedders cannot be mixed. Use another "
                    "collection_name or path for the new embedder and add the memories "
                    "again (Memory.get_all gives their texts), or reset() this store."
                )
            if meta.get("distance_strategy", cfg.distance_strategy) != cfg.distance_strategy:
                raise StoreError(
                    f"the store {self.db_path} was built with distance_strategy "
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
            values.update(epoch=_new_epoch(), generation=generation, log_floor=generation)
            top = self._conn.execute("SELECT MAX(slot) FROM memories").fetchone()[0]
            values["next_slot"] = str(0 if top is None else int(top) + 1)
            self._conn.execute("DELETE FROM meta WHERE key = 'index_stamp'")
            for leftover in (self.index_path, self.stamp_path):  # unverifiable: rebuilt
                with suppress(OSError):
                    leftover.unlink(missing_ok=True)
        self._set_meta(values)

    def _require_open(self) -> int:
        if self._closed:
            raise StoreError("the store is closed")
        if self._dims is None:
            raise StoreError("the store is not bound to an embedder: call open(identity) first")
        return self._dims

    # ------------------------------------------------------------------ index

    def _new_index(self, dims: int) -> Any:
        metric = (
            faiss.METRIC_L2
            if self.config.distance_strategy == "euclidean"
            else faiss.METRIC_INNER_PRODUCT
        )
        if self.config.index == "hnsw":
            index = faiss.IndexHNSWFlat(dims, self.config.hnsw_m, metric)
            index.hnsw.efConstruction = self.config.hnsw_ef_construction
            index.hnsw.efSearch = self.config.hnsw_ef_search
            return index
        return faiss.IndexFlat(dims, metric)

    def _vectors(self) -> FloatArray:
        """A zero-copy view of the index's stored vectors (valid until the next add)."""
        dims = self._require_open()
        index = self._index
        n = int(index.ntotal)
        if n == 0:
            return np.zeros((0, dims), dtype=np.float32)
        flat = faiss.downcast_index(index.storage) if self.config.index == "hnsw" else index
        view = faiss.rev_swig_ptr(flat.get_xb(), n * dims)
        return np.asarray(view).reshape(n, dims)

    def _load(self, state: _State) -> None:
        """Load the in-memory index and columns from SQLite (inside a transaction)."""
        dims = self._require_open()
        self._epoch = None
        rows = self._conn.execute(
            "SELECT slot, user_id, agent_id, run_id FROM memories ORDER BY slot"
        ).fetchall()
        size = state.next_slot
        index = self._read_index_file(dims, state, live=len(rows))
        if index is None:
            index = self._rebuild_index(dims, size)
        elif int(index.ntotal) < size:
            self._append_vectors(index, int(index.ntotal), size)  # added since it was saved
        self._index = index
        self._cols = _Columns.from_rows(rows, size)
        self._generation = state.generation
        self._epoch = state.epoch

    def _sync_to(self, state: _State) -> None:
        """Catch the in-memory index up with ``state`` (inside a transaction)."""
        try:
            if (
                self._index is None
                or self._epoch != state.epoch
                or state.generation < self._generation
                or self._generation < state.log_floor
                or int(self._index.ntotal) > state.next_slot
            ):
                if self._epoch is not None:
                    log.info("store %s was compacted or reset elsewhere; reloading", self.db_path)
                self._load(state)
            elif state.generation != self._generation or int(self._index.ntotal) < state.next_slot:
                self._catch_up(state)
        except BaseException:
            self._epoch = None
            raise

    def _catch_up(self, state: _State) -> None:
        """Apply other connections' writes of this epoch: new slots, and the slots logged."""
        conn = self._conn
        cols = self._cols
        start = int(self._index.ntotal)
        touched = [
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT slot FROM slot_log WHERE generation > ? AND slot < ?",
                (self._generation, start),
            )
        ]
        if state.next_slot > start:
            rows = self._append_vectors(self._index, start, state.next_slot)
            cols.extend(state.next_slot)
            cols.set_many((r[0] for r in rows), (tuple(r[1:]) for r in rows))
        if touched:
            cols.kill(touched)
            for chunk in _chunks(touched, 500):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT slot, user_id, agent_id, run_id FROM memories WHERE slot IN ({marks})",
                    chunk,
                ).fetchall()
                cols.set_many((r[0] for r in rows), (tuple(r[1:]) for r in rows))
        self._generation = state.generation

    def _append_vectors(self, index: Any, start: int, stop: int) -> list[tuple[Any, ...]]:
        """Add the vectors of slots ``start..stop-1`` from SQLite (zeros where no row is).

        Returns the ``(slot, user_id, agent_id, run_id)`` of the rows found.
        """
        dims = self._require_open()
        vectors = np.zeros((stop - start, dims), dtype=np.float32)
        scopes: list[tuple[Any, ...]] = []
        cursor = self._conn.execute(
            "SELECT slot, user_id, agent_id, run_id, vector FROM memories "
            "WHERE slot >= ? AND slot < ?",
            (start, stop),
        )
        while True:
            chunk = cursor.fetchmany(4096)
            if not chunk:
                break
            slots = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
            blob = b"".join(r[4] for r in chunk)
            vectors[slots - start] = np.frombuffer(blob, dtype=np.float32).reshape(-1, dims)
            scopes.extend(tuple(r[:4]) for r in chunk)
        if stop > start:
            index.add(vectors)
        return scopes

    def _rebuild_index(self, dims: int, size: int) -> Any:
        """Rebuild the FAISS index from the vectors in SQLite (slots without a row stay 0)."""
        index = self._new_index(dims)
        self._append_vectors(index, 0, size)
        self._saved_generation = -1
        return index

    def _read_index_file(self, dims: int, state: _State, *, live: int) -> Any:
        """The saved index if it is verifiably derived from this SQLite state, else None."""
        path = self.index_path
        raw = self._conn.execute("SELECT value FROM meta WHERE key = 'index_stamp'").fetchone()
        if raw is None:
            if path.exists():
                log.warning(
                    "index file %s is not recorded in %s; rebuilding the index from SQLite",
                    path,
                    self.db_path,
                )
            return None
        try:
            stamp = json.loads(raw[0])
        except ValueError:
            stamp = None
        if not isinstance(stamp, dict):
            log.warning("the index stamp in %s is unreadable; rebuilding the index", self.db_path)
            return None
        expected = {
            "format": STAMP_FORMAT,
            "epoch": state.epoch,
            "dims": dims,
            "index": self.config.index,
            "distance_strategy": self.config.distance_strategy,
        }
        if any(stamp.get(k) != v for k, v in expected.items()):
            log.info("index file %s is of an older layout; rebuilding it from SQLite", path)
            return None
        ntotal, generation = stamp.get("ntotal"), stamp.get("generation")
        if (
            not isinstance(ntotal, int)
            or not isinstance(generation, int)
            or ntotal > state.next_slot
            or generation > state.generation
            or (generation == state.generation and stamp.get("live") != live)
        ):
            log.warning(
                "the index stamp in %s disagrees with its rows; rebuilding the index", self.db_path
            )
            return None
        sidecar = self._read_sidecar()
        if sidecar != stamp:
            if _saved_later(sidecar, stamp):
                log.info("index file %s was replaced while being read; rebuilding it", path)
            else:
                log.warning(
                    "index sidecar %s is missing or disagrees with %s; rebuilding the index",
                    self.stamp_path,
                    self.db_path,
                )
            return None
        try:
            # One open file for both passes: a file another process swaps in meanwhile is a
            # new inode, so the bytes parsed are the bytes hashed.
            with path.open("rb") as handle:
                nbytes, digest = _digest(handle)
                if nbytes != stamp.get("bytes") or digest != stamp.get("sha256"):
                    if _saved_later(self._read_sidecar(), stamp):
                        log.info("index file %s was replaced while being read; rebuilding", path)
                    else:
                        log.warning(
                            "index file %s does not match the checksum recorded in %s "
                            "(damaged, or another store's); rebuilding the index from SQLite",
                            path,
                            self.db_path,
                        )
                    return None
                handle.seek(0)
                index = faiss.read_index(faiss.PyCallbackIOReader(handle.read, 1 << 20))
        except (OSError, RuntimeError) as exc:
            log.warning("index file %s is unreadable (%s); rebuilding the index", path, exc)
            return None
        if int(index.ntotal) != ntotal or int(index.d) != dims:
            log.warning("index file %s has the wrong size; rebuilding the index", path)
            return None
        if self.config.index == "hnsw":
            index.hnsw.efSearch = self.config.hnsw_ef_search
        self._saved_generation = generation
        return index

    def _read_sidecar(self) -> Any:
        try:
            return json.loads(self.stamp_path.read_text())
        except (OSError, ValueError):
            return None

    def save(self) -> None:
        """Write the index file, if it changed since it was last written.

        The file is written to a temporary name and hashed outside any lock; then, under the
        write lock, it replaces the current file and its stamp is recorded -- unless the
        store moved to another epoch meanwhile, or the current file reflects a newer state.
        """
        with self._lock:
            if (
                self._closed
                or self._index is None
                or self._epoch is None
                or self._saved_generation == self._generation
            ):
                return
            epoch, generation, ntotal = self._epoch, self._generation, int(self._index.ntotal)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.index_path.name}.", suffix=".tmp", dir=self.directory
            )
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                try:
                    faiss.write_index(self._index, tmp_name)
                    with tmp.open("rb") as handle:
                        nbytes, digest = _digest(handle)
                except (RuntimeError, OSError) as exc:
                    raise StoreError(
                        f"cannot write the index file {self.index_path}: {exc}"
                    ) from exc
                stamp = {
                    "format": STAMP_FORMAT,
                    "epoch": epoch,
                    "generation": generation,
                    "ntotal": ntotal,
                    "live": self._cols.live_count(),
                    "dims": self._dims,
                    "index": self.config.index,
                    "distance_strategy": self.config.distance_strategy,
                    "bytes": nbytes,
                    "sha256": digest,
                }
                with self._sqlite_errors("save the index"), self._transaction(write=True):
                    if self._may_replace(epoch, generation, ntotal):
                        self._install(tmp, stamp)
                self._saved_generation = generation
            finally:
                tmp.unlink(missing_ok=True)

    def _may_replace(self, epoch: str, generation: int, ntotal: int) -> bool:
        """Whether a file of this state may replace the current one (under the write lock)."""
        if self._read_state().epoch != epoch:
            log.info("not saving the index of %s: it was compacted or reset since", self.db_path)
            return False
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'index_stamp'").fetchone()
        try:
            current = json.loads(row[0]) if row else None
        except ValueError:
            current = None
        if isinstance(current, dict) and current.get("epoch") == epoch:
            theirs = (current.get("ntotal"), current.get("generation"))
            if all(isinstance(v, int) for v in theirs) and theirs > (ntotal, generation):
                log.info("not saving the index of %s: a newer one is saved", self.db_path)
                return False
        return True

    def _install(self, tmp: Path, stamp: dict[str, Any]) -> None:
        """Move the written file into place, then the sidecar, then record the stamp."""
        text = json.dumps(stamp, sort_keys=True)
        sidecar_tmp = tmp.with_suffix(".json.tmp")
        try:
            os.replace(tmp, self.index_path)
            sidecar_tmp.write_text(text)
            os.replace(sidecar_tmp, self.stamp_path)
        except OSError as exc:
            sidecar_tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write the index file {self.index_path}: {exc}") from exc
        self._set_meta({"index_stamp": text})

    def _refresh_if_changed(self) -> None:
        """Catch up with other connections' commits (inside a read transaction).

        ``PRAGMA data_version`` changes exactly when another connection committed; it is read
        before the state, so a commit that lands in between is caught on the next call.
        """
        version = self._read_data_version()
        if version == self._data_version and self._epoch is not None:
            return
        self._sync_to(self._read_state())
        self._data_version = version

    def _check_vectors(self, vectors: FloatArray, count: int) -> FloatArray:
        dims = self._require_open()
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape != (count, dims):
            raise InvalidInputError(
                f"expected {count} vectors of dimension {dims}, got an array of shape "
                f"{tuple(arr.shape)}"
            )
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError("vectors must be finite (no NaN or infinity)")
        if self.config.distance_strategy == "cosine":
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            if np.any(norms == 0):
                raise InvalidInputError("a zero vector has no direction (cosine distance)")
            arr = arr / norms
        return np.ascontiguousarray(arr, dtype=np.float32)

    # ------------------------------------------------------------------ writes

    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        with self._lock:
            arr = self._check_vectors(vectors, len(records))
            if not records:
                return
            metadata = [_dump_metadata(r.metadata) for r in records]
            with self._write_txn("add memories") as txn:
                start = txn.next_slot  # taken inside the transaction: no other writer has it
                rows = [
                    (
                        r.id,
                        start + i,
                        r.memory,
                        r.hash,
                        metadata[i],
                        r.user_id,
                        r.agent_id,
                        r.run_id,
                        r.created_at,
                        r.updated_at,
                        arr[i].tobytes(),
                    )
                    for i, r in enumerate(records)
                ]
                try:
                    self._conn.executemany(
                        "INSERT INTO memories(id, slot, memory, hash, metadata, user_id, "
                        "agent_id, run_id, created_at, updated_at, vector) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                except sqlite3.IntegrityError as exc:
                    if "memories.id" not in str(exc):
                        raise
                    raise InvalidInputError(f"a memory with this id already exists: {exc}") from exc
                txn.next_slot = start + len(records)
            with self._applying():
                self._index.add(arr)
                self._cols.set_many(
                    range(start, start + len(records)),
                    ((r.user_id, r.agent_id, r.run_id) for r in records),
                )

    def update(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        with self._lock:
            self._require_open()
            arr = (
                None
                if vector is None
                else self._check_vectors(np.asarray(vector).reshape(1, -1), 1)
            )
            fields = (
                record.memory,
                record.hash,
                _dump_metadata(record.metadata),
                record.user_id,
                record.agent_id,
                record.run_id,
                record.updated_at,
            )
            base = (
                "UPDATE memories SET memory=?, hash=?, metadata=?, user_id=?, agent_id=?, "
                "run_id=?, updated_at=?"
            )
            with self._write_txn("update a memory") as txn:
                row = self._conn.execute(
                    "SELECT slot FROM memories WHERE id = ?", (record.id,)
                ).fetchone()
                if row is None:
                    raise StoreError(f"no memory with id {record.id!r}")
                old_slot = int(row[0])
                new_slot = txn.next_slot
                if arr is None:
                    self._conn.execute(f"{base} WHERE id=?", (*fields, record.id))
                else:
                    self._conn.execute(
                        f"{base}, slot=?, vector=? WHERE id=?",
                        (*fields, new_slot, arr[0].tobytes(), record.id),
                    )
                    txn.next_slot = new_slot + 1
                txn.logged.append(old_slot)  # re-scoped, or a tombstone
            with self._applying():
                if arr is None:
                    self._cols.set(old_slot, record)
                    return
                self._index.add(arr)
                self._cols.set(new_slot, record)
                self._cols.kill([old_slot])
            self._maybe_compact()

    def delete(self, ids: Sequence[str]) -> int:
        with self._lock:
            self._require_open()
            if not ids:
                return 0
            slots: list[int] = []
            with self._write_txn("delete memories") as txn:
                for chunk in _chunks(list(ids), 500):
                    marks = ",".join("?" * len(chunk))
                    slots.extend(
                        int(r[0])
                        for r in self._conn.execute(
                            f"SELECT slot FROM memories WHERE id IN ({marks})", chunk
                        )
                    )
                if slots:
                    self._conn.executemany(
                        "DELETE FROM memories WHERE slot = ?", [(s,) for s in slots]
                    )
                    txn.logged.extend(slots)
                else:
                    txn.dirty = False
            if not slots:
                return 0
            with self._applying():
                self._cols.kill(slots)
            self._maybe_compact()
            return len(slots)

    def reset(self) -> None:
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            with self._write_txn("reset the store", sync=False) as txn:
                self._conn.execute("DELETE FROM memories")
                self._conn.execute("DELETE FROM meta WHERE key != 'generation'")
                txn.epoch = _new_epoch()
                txn.next_slot = 0
                txn.clear_log = True
                try:  # under the write lock: no save can race with this
                    self.index_path.unlink(missing_ok=True)
                    self.stamp_path.unlink(missing_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot remove the index file {self.index_path}: {exc}"
                    ) from exc
            self._cols = _Columns()
            self._index = None
            self._epoch = None
            identity, self._identity, self._dims = self._identity, None, None
            self._saved_generation = -1
            if identity is not None:
                self.open(identity)

    def _maybe_compact(self) -> None:
        cols = self._cols
        if _needs_compaction(cols.size, cols.live_count()):
            self._compact(force=False)

    def compact(self) -> None:
        """Drop tombstoned slots: renumber live vectors densely and rebuild the index once.

        The renumbering starts a new epoch: other processes reload on their next call.
        """
        with self._lock:
            self._compact(force=True)

    def _compact(self, *, force: bool) -> None:
        dims = self._require_open()
        with self._write_txn("compact the index") as txn:
            cols = self._cols
            order = np.fromiter(
                (r[0] for r in self._conn.execute("SELECT slot FROM memories ORDER BY slot")),
                dtype=np.int64,
            )
            if not force and not _needs_compaction(cols.size, len(order)):
                txn.dirty = False  # another process compacted first
                return
            if not np.array_equal(order, np.flatnonzero(cols.live[: cols.size])):
                log.warning("in-memory slots of %s disagree with SQLite; reloading", self.db_path)
                rows = self._conn.execute(
                    "SELECT slot, user_id, agent_id, run_id FROM memories ORDER BY slot"
                ).fetchall()
                cols = _Columns.from_rows(rows, cols.size)
            vectors = np.ascontiguousarray(self._vectors()[order])
            index = self._new_index(dims)
            if len(order):
                index.add(vectors)
            mapping = [(int(new), int(old)) for new, old in enumerate(order)]
            # Two passes keep the UNIQUE(slot) constraint satisfied while renumbering.
            self._conn.execute("UPDATE memories SET slot = -1 - slot")
            self._conn.executemany("UPDATE memories SET slot = ? WHERE slot = -1 - ?", mapping)
            txn.epoch = _new_epoch()
            txn.next_slot = len(order)
            txn.clear_log = True
            compacted = cols.compacted(order)
        with self._applying():
            self._index = index
            self._cols = compacted
        log.info("compacted %s: %d live vectors", self.db_path, len(order))

    # ------------------------------------------------------------------ reads

    def get(self, memory_id: str) -> MemoryRecord | None:
        with self._lock, self._sqlite_errors("read a memory"):
            self._require_open()
            row = self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM memories WHERE id = ?", (memory_id,)
            ).fetchone()
            return None if row is None else _record(row)

    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        with self._lock, self._sqlite_errors("list memories"):
            self._require_open()
            where, params = compile_sql(filters)
            rows = self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM memories WHERE {where} "
                "ORDER BY created_at DESC, slot DESC LIMIT ?",
                (*params, int(limit)),
            ).fetchall()
            return [_record(r) for r in rows]

    def count(self, *, filters: Filter | None = None) -> int:
        with self._lock, self._sqlite_errors("count memories"):
            self._require_open()
            if filters is None or isinstance(filters, MatchAll):
                return int(self._conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0])
            where, params = compile_sql(filters)
            row = self._conn.execute(f"SELECT COUNT(*) FROM memories WHERE {where}", params)
            return int(row.fetchone()[0])

    @property
    def data_directory(self) -> Path:
        """The folder of the store's files (the history database goes beside them)."""
        return self.directory

    def find_hashes(self, hashes: Sequence[str], *, filters: Filter) -> set[str]:
        """Which of ``hashes`` already exist among the records that satisfy ``filters``."""
        with self._lock, self._sqlite_errors("look up memories"):
            self._require_open()
            found: set[str] = set()
            where, params = compile_sql(filters)
            for chunk in _chunks(list(hashes), 500):
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0]
                    for r in self._conn.execute(
                        f"SELECT hash FROM memories WHERE hash IN ({marks}) AND ({where})",
                        (*chunk, *params),
                    )
                )
            return found

    def _allowed_slots(self, filters: Filter) -> Int64Array | None:
        """Slots that satisfy ``filters``; None means every live slot."""
        cols = self._cols
        scope = _scope_only(filters)
        if scope is not None:
            if not scope:
                return None
            mask = cols.live[: cols.size].copy()
            for field_name, value in scope.items():
                code = cols.code(field_name, value, create=False)
                mask &= cols.codes[field_name][: cols.size] == code
            slots = np.flatnonzero(mask).astype(np.int64)
            if len(slots) > BRUTE_FORCE_MAX and len(slots) == cols.live_count():
                return None  # the scope holds everything: search without a selector
            return slots
        where, params = compile_sql(filters)
        cursor = self._conn.execute(f"SELECT slot FROM memories WHERE {where}", params)
        return np.fromiter((r[0] for r in cursor), dtype=np.int64)

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        with self._lock:
            query = self._check_vectors(np.asarray(vector).reshape(1, -1), 1)
            # One read snapshot: the catch-up, the SQL filter and the rows all see one state.
            with self._sqlite_errors("search"), self._transaction(write=False):
                self._refresh_if_changed()
                allowed = self._allowed_slots(filters)
                slots, scores = self._rank(query, allowed, limit)
                if not len(slots):
                    return []
                records = self._records_by_slot(slots)
            return [
                VectorHit(record=records[int(s)], score=float(sc))
                for s, sc in zip(slots, scores)
                if int(s) in records
            ]

    def _rank(
        self, query: FloatArray, allowed: Int64Array | None, limit: int
    ) -> tuple[Int64Array, FloatArray]:
        cols = self._cols
        n_live = cols.live_count()
        n_allowed = n_live if allowed is None else len(allowed)
        if n_allowed == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        k = min(limit, n_allowed)
        euclidean = self.config.distance_strategy == "euclidean"
        if allowed is not None and n_allowed <= BRUTE_FORCE_MAX:
            gathered = self._vectors()[allowed]
            if euclidean:
                diff = gathered - query
                sims = 1.0 / (1.0 + np.sqrt(np.einsum("ij,ij->i", diff, diff)))
            else:
                sims = gathered @ query[0]
            top = _top_k(sims, k)
            return allowed[top], sims[top].astype(np.float32)
        selector = None
        params: Any
        # A flat index scans faster with a selector than without one (measured: 57 vs 140 ms
        # over 1M x 384), so it always gets one; HNSW only needs one to exclude something.
        if allowed is not None or n_live != cols.size or self.config.index == "flat":
            bits = np.zeros(cols.size, dtype=bool)
            if allowed is None:
                bits[:] = cols.live[: cols.size]
            else:
                bits[allowed] = True
            packed = np.packbits(bits, bitorder="little")
            selector = faiss.IDSelectorBitmap(cols.size, faiss.swig_ptr(packed))
        if self.config.index == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.config.hnsw_ef_search, k)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        distances, labels = self._index.search(query, k, params=params)
        keep = labels[0] >= 0
        found = labels[0][keep].astype(np.int64)
        dist = distances[0][keep].astype(np.float32)
        if euclidean:
            dist = (1.0 / (1.0 + np.sqrt(np.maximum(dist, 0.0)))).astype(np.float32)
        return found, dist

    def _records_by_slot(self, slots: Int64Array) -> dict[int, MemoryRecord]:
        marks = ",".join("?" * len(slots))
        rows = self._conn.execute(
            f"SELECT slot, {_ROW_COLUMNS} FROM memories WHERE slot IN ({marks})",
            [int(s) for s in slots],
        ).fetchall()
        return {int(r[0]): _record(r[1:]) for r in rows}

    def stats(self) -> dict[str, Any]:
        """Figures for diagnostics: live and tombstoned slots, index kind, paths."""
        with self._lock:
            live = self._cols.live_count()
            return {
                "path": str(self.db_path),
                "index": self.config.index,
                "live": live,
                "tombstones": self._cols.size - live,
                "generation": self._generation,
                "epoch": self._epoch,
            }

    def close(self) -> None:
        """Save the index file (a failure is logged: SQLite holds everything) and close."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._dims is not None:
                    self.save()
            except StoreError as exc:
                log.warning("%s; the index is rebuilt from SQLite on the next open", exc)
            finally:
                self._closed = True
                self._conn.close()


# ---------------------------------------------------------------------- helpers


def _scope_only(filters: Filter) -> dict[str, str] | None:
    """The scope equalities when ``filters`` is nothing but them, else None."""
    if isinstance(filters, MatchAll):
        return {}
    conds: list[Filter] = list(filters.children) if isinstance(filters, And) else [filters]
    scope: dict[str, str] = {}
    for cond in conds:
        if not (
            isinstance(cond, Cond)
            and cond.field in SCOPE_FIELDS
            and cond.op == "eq"
            and isinstance(cond.value, str)
        ):
            return None
        if scope.get(cond.field, cond.value) != cond.value:
            return None  # contradictory scopes: let SQL answer (nothing)
        scope[cond.field] = cond.value
    return scope


def _top_k(scores: npt.NDArray[Any], k: int) -> Int64Array:
    """Indices of the ``k`` highest scores, best first (ties: lower index first)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable").astype(np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    order = np.lexsort((part, -scores[part]))
    return part[order].astype(np.int64)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _needs_compaction(size: int, live: int) -> bool:
    dead = size - live
    return dead >= COMPACT_MIN and dead >= COMPACT_SHARE * size


def _saved_later(sidecar: Any, stamp: dict[str, Any]) -> bool:
    """Whether ``sidecar`` describes a file of the same epoch saved after ``stamp``'s (another
    process saved while this one read, from a snapshot taken before that save)."""
    return (
        isinstance(sidecar, dict)
        and sidecar.get("epoch") == stamp.get("epoch")
        and isinstance(sidecar.get("generation"), int)
        and sidecar["generation"] > stamp["generation"]
    )


def _new_epoch() -> str:
    return os.urandom(8).hex()


def _digest(handle: BinaryIO) -> tuple[int, str]:
    """The size and SHA-256 of what is left to read in ``handle``."""
    digest = hashlib.sha256()
    size = 0
    while block := handle.read(1 << 20):
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


def _dump_metadata(metadata: dict[str, Any]) -> str:
    try:
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from exc


def _record(row: Sequence[Any]) -> MemoryRecord:
    return MemoryRecord(
        id=row[0],
        memory=row[1],
        hash=row[2],
        metadata=json.loads(row[3]),
        user_id=row[4],
        agent_id=row[5],
        run_id=row[6],
        created_at=row[7],
        updated_at=row[8],
    )


@hookimpl
def register_vector_stores(registry: ProviderRegistrar) -> None:
    registry.register(
        "faiss",
        FaissStore,
        FaissStoreConfig,
        description="embedded FAISS index over SQLite (exact pre-filtered search), the default",
    )
