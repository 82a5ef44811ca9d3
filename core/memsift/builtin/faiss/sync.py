"""How the ``faiss`` store keeps its in-memory index in step with SQLite, the source of truth:
the connection and its transactions, binding to an embedder, loading the index (from a
verified file, else from SQLite), catching up with other processes' commits, and saving
the index file (see :mod:`memsift.builtin.faiss` for the multi-process model).

:class:`SyncedStore` is the base of :class:`~memsift.builtin.faiss.store.FaissStore`, which
adds the :class:`~memsift.interfaces.VectorStore` operations on top.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from memsift.builtin.faiss import keyword
from memsift.builtin.faiss.columns import Columns
from memsift.builtin.faiss.config import FaissStoreConfig
from memsift.builtin.faiss.index import (
    STAMP_FORMAT,
    append_vectors,
    build_index,
    install,
    may_replace,
    read_index_file,
    temp_index_file,
    write_index_file,
)
from memsift.builtin.faiss.schema import (
    State,
    Txn,
    bind,
    chunks,
    connect,
    create_schema,
    read_data_version,
    read_meta,
    read_state,
    record_txn,
    rollback,
    schema_ready,
    sqlite_errors,
)
from memsift.errors import ConfigError, StoreError
from memsift.interfaces import VectorStore
from memsift.records import EmbedderIdentity

log = logging.getLogger(__name__)


class SyncedStore(VectorStore):
    """The SQLite connection and the in-memory index and scope columns kept in step with it.

    Attributes that the store's operations use: ``_conn`` (the connection), ``_index`` (the
    FAISS index, None until bound), ``_cols`` (:class:`Columns`), ``_epoch`` (None: the
    in-memory index must be reloaded), ``_generation``, ``_lock`` (one per store object).
    """

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
        self._cols = Columns()
        self._epoch: str | None = None  # None: the in-memory index must be reloaded
        self._generation = 0
        self._saved_generation = -1
        self._data_version = -1
        self._keyword: str | None = None  # the keyword index's analyzer (SQLite's, as synced)
        self._wanted_analyzer = config.analyzer()  # what the config asks the index to use
        self._remembered: keyword.Remembered | None = None  # the last keyword search's scores
        self._scope_statistics = keyword.ScopeStatistics()  # BM25 statistics per scope
        self._closed = False
        self._refuse_a_lost_database()
        self._conn = connect(self.db_path)

    def _refuse_a_lost_database(self) -> None:
        """Raise StoreError when the SQLite file is missing or empty but an index file or its
        sidecar is there: the database was lost (deleted, truncated to nothing), and opening
        would start an empty store over it. Nothing is created or removed."""
        try:
            if self.db_path.stat().st_size:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return  # connect() reports what is wrong with the file
        left = [str(p) for p in (self.index_path, self.stamp_path) if p.exists()]
        if left:
            raise StoreError(
                f"the store database {self.db_path} is missing or empty, but the index files "
                f"{', '.join(left)} are there: the database was lost. Restore it from a "
                "backup; or, to start an empty store here, remove the index files (with the "
                "database and its -wal and -shm files)"
            )

    # ------------------------------------------------------------------ transactions

    def _sqlite_errors(self, action: str) -> AbstractContextManager[None]:
        """Turn every sqlite3 error raised inside into a StoreError that names the file."""
        return sqlite_errors(self.db_path, action)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[None]:
        """One read snapshot (``BEGIN``) or one write transaction (``BEGIN IMMEDIATE``)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            rollback(self._conn, self.db_path)
            raise

    @contextmanager
    def _write_txn(self, action: str, *, sync: bool = True) -> Iterator[Txn]:
        """A write transaction, on an in-memory index first caught up with SQLite.

        The body runs its statements and updates the :class:`Txn` (slots taken, slots to
        log); meta is updated and the transaction committed when the body returns. The caller
        applies the change to the in-memory index only after that, so a failed write changes
        nothing in memory either.
        """
        conn = self._conn
        with self._sqlite_errors(action):
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = read_data_version(conn)
                state = read_state(conn)
                if sync:
                    self._sync_to(state)
                    self._data_version = version
                txn = Txn(
                    epoch=state.epoch,
                    generation=state.generation + 1,
                    next_slot=state.next_slot,
                    log_floor=state.log_floor,
                    keyword=state.keyword,
                )
                yield txn
                if txn.dirty:
                    record_txn(conn, txn)
                conn.execute("COMMIT")
            except BaseException:
                rollback(self._conn, self.db_path)
                raise
        if txn.dirty:
            self._generation = txn.generation
            self._epoch = txn.epoch

    @contextmanager
    def _applying(self) -> Iterator[None]:
        """Apply a committed write in memory; if that fails, reload from SQLite next time."""
        try:
            yield
        except BaseException:
            self._epoch = None
            raise

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
                if not write and not (schema_ready(self._conn) and self._keyword_ready()):
                    write = True
                    continue
                version = read_data_version(self._conn)
                if write:
                    create_schema(self._conn)
                meta = read_meta(self._conn)
                bind(
                    self._conn,
                    meta,
                    identity,
                    self.config,
                    db_path=self.db_path,
                    index_files=(self.index_path, self.stamp_path),
                    write=write,
                )
                if write and not self._keyword_ready():
                    analyzer = self._wanted_analyzer
                    if analyzer is None:
                        keyword.drop(self._conn)
                    else:
                        keyword.build(self._conn, analyzer, db_path=self.db_path)
                self._identity = identity
                self._dims = identity.dims
                self._load(read_state(self._conn))
                self._data_version = version
            return

    def _keyword_ready(self) -> bool:
        """Whether the keyword index is as the config asks: present and built by its
        analyzer, or absent when ``keyword_index`` is off."""
        analyzer = self._wanted_analyzer
        recorded = read_meta(self._conn).get("keyword_analyzer")
        if analyzer is None:
            return recorded is None and not keyword.has_table(self._conn)
        return recorded == analyzer.signature and keyword.has_table(self._conn)

    def _require_open(self) -> int:
        if self._closed:
            raise StoreError("the store is closed")
        if self._dims is None:
            raise StoreError("the store is not bound to an embedder: call open(identity) first")
        return self._dims

    # ------------------------------------------------------------------ loading, catching up

    def _load(self, state: State) -> None:
        """Load the in-memory index and columns from SQLite (inside a transaction)."""
        dims = self._require_open()
        self._epoch = None
        rows = self._conn.execute(
            "SELECT slot, user_id, agent_id, run_id FROM memories ORDER BY slot"
        ).fetchall()
        size = state.next_slot
        found = read_index_file(
            self._conn,
            self.config,
            dims,
            state,
            live=len(rows),
            db_path=self.db_path,
            index_path=self.index_path,
            stamp_path=self.stamp_path,
        )
        if found is None:
            index = self._rebuild_index(dims, size)
        else:
            index, self._saved_generation = found
            if int(index.ntotal) < size:  # added since it was saved
                append_vectors(self._conn, index, dims, int(index.ntotal), size)
        self._index = index
        self._cols = Columns.from_rows(rows, size)
        self._generation = state.generation
        self._epoch = state.epoch
        self._keyword = state.keyword

    def _rebuild_index(self, dims: int, size: int) -> Any:
        """Rebuild the FAISS index from the vectors in SQLite (slots without a row stay 0)."""
        index = build_index(self._conn, self.config, dims, size)
        self._saved_generation = -1
        return index

    def _sync_to(self, state: State) -> None:
        """Catch the in-memory index up with ``state`` (inside a transaction)."""
        self._keyword = state.keyword
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

    def _catch_up(self, state: State) -> None:
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
            rows = append_vectors(conn, self._index, self._require_open(), start, state.next_slot)
            cols.extend(state.next_slot)
            cols.set_many((r[0] for r in rows), (tuple(r[1:]) for r in rows))
        if touched:
            cols.kill(touched)
            for chunk in chunks(touched, 500):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT slot, user_id, agent_id, run_id FROM memories WHERE slot IN ({marks})",
                    chunk,
                ).fetchall()
                cols.set_many((r[0] for r in rows), (tuple(r[1:]) for r in rows))
        self._generation = state.generation

    def _refresh_if_changed(self) -> None:
        """Catch up with other connections' commits (inside a read transaction).

        ``PRAGMA data_version`` changes exactly when another connection committed; it is read
        before the state, so a commit that lands in between is caught on the next call.
        """
        version = read_data_version(self._conn)
        if version == self._data_version and self._epoch is not None:
            return
        self._sync_to(read_state(self._conn))
        self._data_version = version

    # ------------------------------------------------------------------ the index file

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
            tmp = temp_index_file(self.index_path)
            try:
                nbytes, digest = write_index_file(self._index, tmp, index_path=self.index_path)
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
                    if may_replace(self._conn, self.db_path, epoch, generation, ntotal):
                        install(
                            self._conn,
                            tmp,
                            stamp,
                            index_path=self.index_path,
                            stamp_path=self.stamp_path,
                        )
                self._saved_generation = generation
            finally:
                tmp.unlink(missing_ok=True)


__all__ = ["SyncedStore"]
