"""``FaissStore``: the :class:`~memsift.interfaces.VectorStore` operations of the built-in
``faiss`` store -- writes, reads, the filtered vector and keyword searches, compaction -- on
top of :class:`~memsift.builtin.faiss.sync.SyncedStore`, and the ``register_vector_stores``
hook. The keyword index is kept in the same transaction as every write (see
:mod:`~memsift.builtin.faiss.keyword`).

Deletes and updates never rebuild the index: they leave a tombstone (an update writes the new
vector to a new slot), and tombstones are compacted away once they pass a quarter of the
index. A write is applied to the in-memory index only after SQLite committed it, so a failed
write changes nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memsift.builtin.faiss import keyword
from memsift.builtin.faiss.columns import Columns, Int64Array
from memsift.builtin.faiss.config import FaissStoreConfig
from memsift.builtin.faiss.index import compacted_index, needs_compaction
from memsift.builtin.faiss.schema import (
    ROW_COLUMNS,
    Txn,
    chunks,
    dump_metadata,
    new_epoch,
    record_from_row,
)
from memsift.builtin.faiss.search import allowed_slots, rank, similarities
from memsift.builtin.faiss.sync import SyncedStore
from memsift.errors import InvalidInputError, MemoryNotFoundError, StoreError
from memsift.filters import Filter, MatchAll, compile_sql
from memsift.hookspecs import hookimpl
from memsift.records import FloatArray, KeywordHit, MemoryRecord, VectorHit

if TYPE_CHECKING:
    from memsift.registry import ProviderRegistrar

log = logging.getLogger(__name__)


class FaissStore(SyncedStore):
    """SQLite + FAISS vector store. Thread-safe in one process; several processes may share it."""

    config: FaissStoreConfig

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

    def _terms_of(self, txn: Txn, texts: Sequence[str]) -> list[str | None]:
        """The keyword index terms of ``texts`` (by the index's analyzer), or Nones when the
        store has no keyword index."""
        if txn.keyword is None:
            return [None] * len(texts)
        analyzer = keyword.analyzer_of(txn.keyword)
        return [analyzer.joined(t) for t in texts]

    # ------------------------------------------------------------------ writes

    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        with self._lock:
            arr = self._check_vectors(vectors, len(records))
            if not records:
                return
            metadata = [dump_metadata(r.metadata) for r in records]
            with self._write_txn("add memories") as txn:
                start = txn.next_slot  # taken inside the transaction: no other writer has it
                terms = self._terms_of(txn, [r.memory for r in records])
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
                        terms[i],
                    )
                    for i, r in enumerate(records)
                ]
                try:
                    self._conn.executemany(
                        "INSERT INTO memories(id, slot, memory, hash, metadata, user_id, "
                        "agent_id, run_id, created_at, updated_at, vector, terms) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                except sqlite3.IntegrityError as exc:
                    if "memories.id" not in str(exc):
                        raise
                    raise InvalidInputError(f"a memory with this id already exists: {exc}") from exc
                if txn.keyword:
                    keyword.add(self._conn, range(start, start + len(records)))
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
            arr = None if vector is None else self._check_vectors(np.reshape(vector, (1, -1)), 1)
            fields = (
                record.memory,
                record.hash,
                dump_metadata(record.metadata),
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
                (terms,) = self._terms_of(txn, [record.memory])
                if txn.keyword:
                    keyword.remove(self._conn, [old_slot])
                if arr is None:
                    self._conn.execute(f"{base}, terms=? WHERE id=?", (*fields, terms, record.id))
                else:
                    self._conn.execute(
                        f"{base}, terms=?, slot=?, vector=? WHERE id=?",
                        (*fields, terms, new_slot, arr[0].tobytes(), record.id),
                    )
                    txn.next_slot = new_slot + 1
                if txn.keyword:
                    keyword.add(self._conn, [old_slot if arr is None else new_slot])
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
                for chunk in chunks(list(ids), 500):
                    marks = ",".join("?" * len(chunk))
                    slots.extend(
                        int(r[0])
                        for r in self._conn.execute(
                            f"SELECT slot FROM memories WHERE id IN ({marks})", chunk
                        )
                    )
                if slots:
                    if txn.keyword:
                        keyword.remove(self._conn, slots)
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
                if txn.keyword:
                    keyword.clear(self._conn)  # its meta goes too: open() builds it anew
                self._conn.execute("DELETE FROM memories")
                self._conn.execute("DELETE FROM meta WHERE key != 'generation'")
                txn.epoch = new_epoch()
                txn.next_slot = 0
                txn.clear_log = True
                try:  # under the write lock: no save can race with this
                    self.index_path.unlink(missing_ok=True)
                    self.stamp_path.unlink(missing_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot remove the index file {self.index_path}: {exc}"
                    ) from exc
            self._cols = Columns()
            self._index = None
            self._epoch = None
            identity, self._identity, self._dims = self._identity, None, None
            self._saved_generation = -1
            if identity is not None:
                self.open(identity)

    def _maybe_compact(self) -> None:
        cols = self._cols
        if needs_compaction(cols.size, cols.live_count()):
            try:  # the write before it is committed: a failure (a full disk) is only logged
                self._compact(force=False)
            except StoreError as exc:
                log.warning("%s; the tombstones stay until a later compaction", exc)

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
            if not force and not needs_compaction(cols.size, len(order)):
                txn.dirty = False  # another process compacted first
                return
            if not np.array_equal(order, np.flatnonzero(cols.live[: cols.size])):
                log.warning("in-memory slots of %s disagree with SQLite; reloading", self.db_path)
                rows = self._conn.execute(
                    "SELECT slot, user_id, agent_id, run_id FROM memories ORDER BY slot"
                ).fetchall()
                cols = Columns.from_rows(rows, cols.size)
            index = compacted_index(self._index, self.config, dims, order)
            mapping = [(int(new), int(old)) for new, old in enumerate(order)]
            # Two passes keep the UNIQUE(slot) constraint satisfied while renumbering.
            self._conn.execute("UPDATE memories SET slot = -1 - slot")
            self._conn.executemany("UPDATE memories SET slot = ? WHERE slot = -1 - ?", mapping)
            if txn.keyword:
                keyword.rebuild(self._conn)  # its rowids are the slots
            txn.epoch = new_epoch()
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
                f"SELECT {ROW_COLUMNS} FROM memories WHERE id = ?", (memory_id,)
            ).fetchone()
            return None if row is None else record_from_row(row)

    def get_vectors(self, ids: Sequence[str]) -> FloatArray:
        """The stored (unit-length, for cosine) vectors of ``ids``, in their order."""
        with self._lock, self._sqlite_errors("read vectors"):
            dims = self._require_open()
            found: dict[str, bytes] = {}
            for chunk in chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                found.update(
                    self._conn.execute(
                        f"SELECT id, vector FROM memories WHERE id IN ({marks})", chunk
                    ).fetchall()
                )
            out = np.zeros((len(ids), dims), dtype=np.float32)
            for row, memory_id in enumerate(ids):
                if memory_id not in found:
                    raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
                out[row] = np.frombuffer(found[memory_id], dtype=np.float32)
            return out

    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        with self._lock, self._sqlite_errors("list memories"):
            self._require_open()
            where, params = compile_sql(filters)
            rows = self._conn.execute(
                f"SELECT {ROW_COLUMNS} FROM memories WHERE {where} "
                "ORDER BY created_at DESC, slot DESC LIMIT ?",
                (*params, int(limit)),
            ).fetchall()
            return [record_from_row(r) for r in rows]

    def count(self, *, filters: Filter | None = None) -> int:
        """How many records satisfy ``filters`` (all of them by default), counted in SQL."""
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
            for chunk in chunks(list(hashes), 500):
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0]
                    for r in self._conn.execute(
                        f"SELECT hash FROM memories WHERE hash IN ({marks}) AND ({where})",
                        (*chunk, *params),
                    )
                )
            return found

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        with self._lock:
            query = self._check_vectors(np.asarray(vector).reshape(1, -1), 1)
            # One read snapshot: the catch-up, the SQL filter and the rows all see one state.
            with self._sqlite_errors("search"), self._transaction(write=False):
                self._refresh_if_changed()
                allowed = allowed_slots(self._conn, self._cols, filters)
                slots, scores = rank(
                    self._index,
                    self._cols,
                    self.config,
                    self._require_open(),
                    query,
                    allowed,
                    limit,
                )
                if not len(slots):
                    return []
                records = self._records_by_slot(slots)
            return [
                VectorHit(record=records[int(s)], score=float(sc))
                for s, sc in zip(slots, scores)
                if int(s) in records
            ]

    @property
    def supports_keyword_search(self) -> bool:
        """True while the store has its keyword index (``keyword_index``, the default)."""
        return self._keyword is not None and not self._closed

    def keyword_search(
        self, query: str, *, filters: Filter, limit: int, vector: FloatArray | None = None
    ) -> list[KeywordHit]:
        """BM25 over the memories that satisfy ``filters`` (statistics from the whole
        collection), best first; see :mod:`~memsift.builtin.faiss.keyword`."""
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        with self._lock:
            dims = self._require_open()
            q = vector if vector is None else self._check_vectors(np.reshape(vector, (1, -1)), 1)
            with self._sqlite_errors("search keywords"), self._transaction(write=False):
                self._refresh_if_changed()
                expression = self._match_expression(query, filters)
                if expression is None:
                    return []
                wide = max(limit, keyword.REMEMBER)
                matches = keyword.top_matches(
                    self._conn, expression, filters, wide, self._scope_statistics
                )
                self._remembered = keyword.Remembered(
                    self._keyword_key(expression, filters),
                    {i: score for _, i, score in matches},
                    complete=len(matches) < wide,
                )
                found = [(s, score) for s, _, score in matches[:limit]]
                if not found:
                    return []
                slots = np.fromiter((s for s, _ in found), dtype=np.int64, count=len(found))
                records = self._records_by_slot(slots)
                sims = None if q is None else similarities(self._index, self.config, dims, q, slots)
            return [
                KeywordHit(records[s], score, None if sims is None else float(sims[i]))
                for i, (s, score) in enumerate(found)
                if s in records
            ]

    def keyword_scores(
        self, query: str, ids: Sequence[str], *, filters: Filter | None = None
    ) -> dict[str, float]:
        """The BM25 scores of ``ids`` (those matching a query term), as keyword_search."""
        with self._lock:
            self._require_open()
            with self._sqlite_errors("score keywords"), self._transaction(write=False):
                self._refresh_if_changed()
                scope = MatchAll() if filters is None else filters
                expression = self._match_expression(query, scope)
                if expression is None or not ids:
                    return {}
                last = self._remembered
                key = self._keyword_key(expression, scope)
                known = None if last is None else last.scores_of(key, ids)
                if known is not None:
                    return known
                return keyword.scores_of(self._conn, expression, ids, self._scope_statistics)

    def _keyword_key(self, expression: str, filters: Filter) -> tuple[str, str, Any]:
        return (expression, repr(filters), (self._data_version, self._generation, self._epoch))

    def _match_expression(self, query: str, filters: Filter) -> str | None:
        if self._keyword is None:
            raise StoreError(
                f"the store {self.db_path} has no keyword index (keyword_index is off for it)"
            )
        return keyword.match_expression(keyword.analyzer_of(self._keyword), query, filters)

    def _records_by_slot(self, slots: Int64Array) -> dict[int, MemoryRecord]:
        marks = ",".join("?" * len(slots))
        rows = self._conn.execute(
            f"SELECT slot, {ROW_COLUMNS} FROM memories WHERE slot IN ({marks})",
            [int(s) for s in slots],
        ).fetchall()
        return {int(r[0]): record_from_row(r[1:]) for r in rows}

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


@hookimpl
def register_vector_stores(registry: ProviderRegistrar) -> None:
    registry.register(
        "faiss",
        FaissStore,
        FaissStoreConfig,
        description="embedded FAISS index over SQLite (exact pre-filtered search), the default",
    )


__all__ = ["FaissStore", "FaissStoreConfig", "register_vector_stores"]
