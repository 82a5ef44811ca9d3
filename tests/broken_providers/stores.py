"""A correct in-memory vector store, and stores that each break one rule of the contract."""

from __future__ import annotations

import asyncio
import copy
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.errors import EmbedderMismatchError, InvalidInputError, StoreError
from memsift.filters import And, Cond, Filter, MatchAll, Not, Or, evaluate, parse_filter
from memsift.interfaces import (
    EmbedderIdentity,
    FloatArray,
    MemoryRecord,
    VectorHit,
    VectorStore,
    VectorStoreConfig,
)


class Storage:
    """What outlives one store object: the records, their vectors, the embedder binding."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.rows: dict[str, tuple[MemoryRecord, FloatArray]] = {}
        self.order: list[str] = []
        self.identity: EmbedderIdentity | None = None


class MemoryStoreConfig(VectorStoreConfig):
    """No options: the storage object is handed to the constructor."""


class MemoryStore(VectorStore):
    """Brute force over records held in a :class:`Storage`; filters by ``evaluate``."""

    def __init__(self, config: MemoryStoreConfig, storage: Storage) -> None:
        super().__init__(config)
        self.storage = storage
        self.dims: int | None = None
        self.closed = False

    # -- filtering: subclasses break one condition kind by overriding ``cond``
    def matches(self, f: Filter, record: MemoryRecord) -> bool:
        if isinstance(f, Cond):
            return self.cond(f, record)
        if isinstance(f, And):
            return all(self.matches(c, record) for c in f.children)
        if isinstance(f, Or):
            return any(self.matches(c, record) for c in f.children)
        if isinstance(f, Not):
            return not self.matches(f.child, record)
        assert isinstance(f, MatchAll)
        return True

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        return evaluate(c, record)

    # -- the contract
    def open(self, identity: EmbedderIdentity) -> None:
        with self.storage.lock:
            if self.storage.identity is not None and self.storage.identity != identity:
                raise EmbedderMismatchError("filled by another embedder")
            self.storage.identity = identity
            self.dims = identity.dims

    def _vectors(self, vectors: Any, count: int) -> FloatArray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape != (count, self.dims):
            raise InvalidInputError(f"expected {count} vectors of dimension {self.dims}")
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError("vectors must be finite")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise InvalidInputError("zero vector")
        out: FloatArray = (arr / norms).astype(np.float32)
        return out

    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        if self.closed:
            raise StoreError("closed")
        arr = self._vectors(vectors, len(records))
        with self.storage.lock:
            ids = [r.id for r in records]
            if len(set(ids)) != len(ids) or any(i in self.storage.rows for i in ids):
                raise InvalidInputError("duplicate id")
            for r, v in zip(records, arr):
                self.storage.rows[r.id] = (copy.deepcopy(r), v)
                self.storage.order.append(r.id)

    def candidates(self) -> list[tuple[MemoryRecord, FloatArray]]:
        with self.storage.lock:
            return [self.storage.rows[i] for i in self.storage.order if i in self.storage.rows]

    def rank(
        self, vector: FloatArray, rows: list[tuple[MemoryRecord, FloatArray]], limit: int
    ) -> list[VectorHit]:
        scored = [(float(v @ vector), pos, r) for pos, (r, v) in enumerate(rows)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [VectorHit(record=copy.deepcopy(r), score=s) for s, _, r in scored[:limit]]

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        query = self._vectors(np.asarray(vector).reshape(1, -1), 1)[0]
        rows = [(r, v) for r, v in self.candidates() if self.matches(filters, r)]
        return self.rank(query, rows, limit)

    def get(self, memory_id: str) -> MemoryRecord | None:
        with self.storage.lock:
            row = self.storage.rows.get(memory_id)
            return None if row is None else copy.deepcopy(row[0])

    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        rows = [r for r, _ in self.candidates() if self.matches(filters, r)]
        rows.sort(key=lambda r: r.created_at, reverse=True)
        return [copy.deepcopy(r) for r in rows[:limit]]

    def update(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        with self.storage.lock:
            old = self.storage.rows.get(record.id)
            if old is None:
                raise StoreError(f"no memory {record.id}")
            v = old[1] if vector is None else self._vectors(np.asarray(vector).reshape(1, -1), 1)[0]
            self.storage.rows[record.id] = (copy.deepcopy(record), v)

    def delete(self, ids: Sequence[str]) -> int:
        with self.storage.lock:
            found = [i for i in set(ids) if i in self.storage.rows]
            for i in found:
                del self.storage.rows[i]
            return len(found)

    def reset(self) -> None:
        with self.storage.lock:
            self.storage.rows.clear()
            self.storage.order.clear()
            self.storage.identity = None
            self.dims = None

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------- broken


class IgnoresAgentId(MemoryStore):
    """Drops every condition on agent_id (as if the field were not indexed)."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        return True if c.field == "agent_id" else super().cond(c, record)


class IgnoresRunId(MemoryStore):
    """Drops every condition on run_id."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        return True if c.field == "run_id" else super().cond(c, record)


class PostFiltersOversampledANN(MemoryStore):
    """Takes the best 4 x limit records of the whole store, then applies the filter."""

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        query = self._vectors(np.asarray(vector).reshape(1, -1), 1)[0]
        pool = self.rank(query, self.candidates(), 4 * limit)
        return [h for h in pool if self.matches(filters, h.record)][:limit]


class DateOnlyTimestamps(MemoryStore):
    """Compares created_at / updated_at by their date alone."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        if c.field not in ("created_at", "updated_at") or c.op == "exists":
            return super().cond(c, record)
        day = getattr(record, c.field)[:10]
        if not day:
            return c.op in ("ne", "nin")
        value = tuple(v[:10] for v in c.value) if isinstance(c.value, tuple) else c.value[:10]
        probe = MemoryRecord(**{**record.__dict__, c.field: day + "T00:00:00.000000+00:00"})
        shifted = Cond(c.field, c.op, _midnights(value))
        return evaluate(shifted, probe)


def _midnights(value: Any) -> Any:
    if isinstance(value, tuple):
        return [v + "T00:00:00.000000+00:00" for v in value]
    return value + "T00:00:00.000000+00:00"


class LikeWildcardsInIcontains(MemoryStore):
    """icontains as SQL ``LIKE '%needle%'`` without escaping: % and _ are wildcards."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        if c.op != "icontains":
            return super().cond(c, record)
        value = (
            getattr(record, c.field)
            if c.field in ("user_id", "agent_id", "run_id")
            else (record.metadata.get(c.field))
        )
        if not isinstance(value, str):
            return False
        pattern = "".join(
            ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in c.value.lower()
        )
        return re.search(pattern, value.lower(), flags=re.DOTALL) is not None


class CasefoldIcontains(MemoryStore):
    """icontains with str.casefold instead of the documented str.lower."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        if c.op != "icontains":
            return super().cond(c, record)
        value = (
            getattr(record, c.field)
            if c.field in ("user_id", "agent_id", "run_id")
            else (record.metadata.get(c.field))
        )
        return isinstance(value, str) and c.value.casefold() in value.casefold()


class ContainsDescendsIntoNestedLists(MemoryStore):
    """contains also finds the operand inside lists nested in the array."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        value = record.metadata.get(c.field)
        if c.op != "contains" or not isinstance(value, list):
            return super().cond(c, record)
        return any(evaluate(Cond("x", "eq", c.value), _as_x(item)) for item in _flatten(value))


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _as_x(value: Any) -> MemoryRecord:
    return MemoryRecord(id="x", memory="", hash="", metadata={"x": value})


class BigIntsAsFloats(MemoryStore):
    """Reads numbers as doubles when filtering (as a JSON parser into float64 does)."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        meta = {k: _floats(v) for k, v in record.metadata.items()}
        probe = MemoryRecord(**{**record.__dict__, "metadata": meta})
        return evaluate(Cond(c.field, c.op, _floats(c.value)), probe)


def _floats(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_floats(v) for v in value)
    return value


class BooleansEqualNumbers(MemoryStore):
    """Compares booleans and numbers with Python's loose ``==`` (True == 1, False == 0.0)."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        value = record.metadata.get(c.field, _ABSENT)
        if c.op in ("eq", "ne") and _scalar_number(value) and _scalar_number(c.value):
            same = bool(value == c.value)
            return same if c.op == "eq" else not same
        return super().cond(c, record)


_ABSENT = object()


def _scalar_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


class NullIsMissing(MemoryStore):
    """Treats a JSON null as an absent key (exists, eq None, ...)."""

    def cond(self, c: Cond, record: MemoryRecord) -> bool:
        meta = {k: v for k, v in record.metadata.items() if v is not None}
        return evaluate(c, MemoryRecord(**{**record.__dict__, "metadata": meta}))


class UnsortedHits(MemoryStore):
    """Returns the right hits in insertion order instead of best first."""

    def rank(
        self, vector: FloatArray, rows: list[tuple[MemoryRecord, FloatArray]], limit: int
    ) -> list[VectorHit]:
        best = super().rank(vector, rows, limit)
        position = {r.id: i for i, (r, _) in enumerate(rows)}
        return sorted(best, key=lambda h: position[h.record.id])


class AsyncSearchIgnoresFilters(MemoryStore):
    """The async twin forgets the filter."""

    async def asearch(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        return await asyncio.to_thread(self.search, vector, filters=parse_filter(None), limit=limit)


class LosesDataOnReopen(MemoryStore):
    """Keeps writes in the object, never in the shared storage: nothing survives close."""

    def __init__(self, config: MemoryStoreConfig, storage: Storage) -> None:
        super().__init__(config, Storage())
        self.storage.identity = storage.identity
        self._shared = storage

    def open(self, identity: EmbedderIdentity) -> None:
        with self._shared.lock:
            if self._shared.identity is not None and self._shared.identity != identity:
                raise EmbedderMismatchError("filled by another embedder")
            self._shared.identity = identity
        super().open(identity)


class FaissPostFilter(FaissStore):
    """The built-in store, searching unfiltered with oversampling and filtering after."""

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        pool = super().search(vector, filters=parse_filter(None), limit=4 * limit)
        return [h for h in pool if evaluate(filters, h.record)][:limit]


StoreMaker = Callable[[Path], Callable[[], VectorStore]]


def memory_store_factory(cls: type[MemoryStore]) -> StoreMaker:
    def make(tmp: Path) -> Callable[[], VectorStore]:
        storage = Storage()
        return lambda: cls(MemoryStoreConfig(), storage)

    return make


def faiss_factory(cls: type[FaissStore]) -> StoreMaker:
    def make(tmp: Path) -> Callable[[], VectorStore]:
        return lambda: cls(FaissStoreConfig(path=str(tmp / "store")))

    return make


REFERENCE: StoreMaker = memory_store_factory(MemoryStore)

#: breakage id -> factory of a broken store; the suite must fail each one.
BROKEN: dict[str, StoreMaker] = {
    "ignores-agent_id": memory_store_factory(IgnoresAgentId),
    "ignores-run_id": memory_store_factory(IgnoresRunId),
    "post-filters-oversampled-ann": memory_store_factory(PostFiltersOversampledANN),
    "faiss-post-filters-oversampled-ann": faiss_factory(FaissPostFilter),
    "timestamps-by-date-only": memory_store_factory(DateOnlyTimestamps),
    "icontains-like-wildcards": memory_store_factory(LikeWildcardsInIcontains),
    "icontains-casefold": memory_store_factory(CasefoldIcontains),
    "contains-descends-nested-lists": memory_store_factory(ContainsDescendsIntoNestedLists),
    "big-ints-read-as-floats": memory_store_factory(BigIntsAsFloats),
    "booleans-equal-numbers": memory_store_factory(BooleansEqualNumbers),
    "null-is-missing": memory_store_factory(NullIsMissing),
    "unsorted-hits": memory_store_factory(UnsortedHits),
    "async-search-ignores-filters": memory_store_factory(AsyncSearchIgnoresFilters),
    "loses-data-on-reopen": memory_store_factory(LosesDataOnReopen),
}
