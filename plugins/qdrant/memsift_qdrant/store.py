"""The ``qdrant`` vector store: memories as Qdrant points, searched exactly.

One memory is one point of a collection with one unnamed vector (cosine distance) and a
payload holding the whole record (:mod:`memsift_qdrant.payload`). Filters compile to Qdrant's
filter language where its semantics equal :func:`memsift.filters.evaluate`'s
(:mod:`memsift_qdrant.filters`); every hit Qdrant returns is checked with the evaluator, and
the store reads on until it has ``limit`` exact matches or Qdrant has no more, so answers
are exact whatever was pushed down.

The collection is created on first use (:meth:`QdrantStore.open`) with the embedder's
dimension, cosine distance, the payload indexes (on a server) and, in the collection's
metadata, the embedder that fills it; a collection of another dimension or recorded embedder
is refused with :class:`memsift.EmbedderMismatchError`.

Writes wait for Qdrant to apply them (``wait=True``): a write that returned is stored.
``insert`` checks every record and vector first, refuses ids that exist, and sends up to
:data:`UPSERT_BATCH` points per request (one request for one ``add`` of that many); should a
later request of the same insert fail, the points written before are deleted again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np

from memsift.errors import (
    ConfigError,
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFoundError,
    StoreError,
)
from memsift.filters import Filter, MatchAll, evaluate
from memsift.interfaces import EmbedderIdentity, FloatArray, MemoryRecord, VectorHit, VectorStore
from memsift_qdrant.config import QdrantStoreConfig, client_kind
from memsift_qdrant.folder_lock import FolderLock
from memsift_qdrant.payload import PAYLOAD_INDEXES, from_payload, point_id, to_payload
from memsift_qdrant.transport import (
    AsyncTransport,
    Call,
    Plan,
    ServerTransport,
    SyncTransport,
    Transport,
    arun_plan,
    clean_error,
    run_plan,
)

if TYPE_CHECKING:
    from qdrant_client import models

T = TypeVar("T")

#: The format of the record memsift keeps in the collection's metadata.
RECORD_FORMAT: Final = 1
#: The key of that record in the collection's metadata.
RECORD_KEY: Final = "memsift"
#: Points per upsert request (an ``add`` of up to this many memories is one request).
UPSERT_BATCH: Final = 1000
#: Ids per retrieve or delete request.
ID_BATCH: Final = 1000
#: Points per page when reading everything that passes a filter.
SCROLL_PAGE: Final = 1000
#: The largest page of a search; past it, search reads on with offsets.
SEARCH_PAGE_MAX: Final = 4096
#: The largest newest-first listing asked of Qdrant at once; past it, the store reads every
#: point that passes the filter and sorts them itself.
ORDERED_MAX: Final = 10_000


def _models() -> Any:
    from qdrant_client import models

    return models


class QdrantStore(VectorStore):
    """Memories in a Qdrant collection (a server, or the local mode), searched exactly."""

    config: QdrantStoreConfig

    def __init__(self, config: QdrantStoreConfig) -> None:
        super().__init__(config)
        self._lock = threading.RLock()
        self._identity: EmbedderIdentity | None = None
        self._closed = False
        self._folder_lock: FolderLock | None = None  # the local mode's folder, while open
        try:
            self._transport = self._connect()
        except BaseException:
            self._release_folder()
            raise
        self.collection = config.collection_name

    # ------------------------------------------------------------------ connection

    def _connect(self) -> Transport:
        cfg = self.config
        where = cfg.where()
        secret = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        if cfg.client is not None:
            local = _client_is_local(cfg.client)
            if client_kind(cfg.client) == "async":
                return AsyncTransport(cfg.client, owned=False, local=local, where=where)
            return SyncTransport(cfg.client, owned=False, local=local, where=where)
        import qdrant_client

        folder = cfg.local_folder()
        if folder is not None:  # before qdrant-client reads or writes anything there
            self._folder_lock = FolderLock(folder)
        options = cfg.server_options()
        if cfg.path is None:
            # no version probe at construction (it runs in a thread of the client's and only
            # warns); the first request, in open(), says whether the server can be reached
            options["check_compatibility"] = False
        try:
            sync = qdrant_client.QdrantClient(**options)
        except Exception as exc:
            failure = _connect_error(where, exc, secret)
        else:
            if cfg.path is not None:
                return SyncTransport(sync, owned=True, local=True, where=where)

            def async_client() -> Any:
                return qdrant_client.AsyncQdrantClient(**options)

            try:
                async_transport = AsyncTransport(
                    None, factory=async_client, owned=True, local=False, where=where, secret=secret
                )
            except Exception as exc:
                sync.close()
                failure = _connect_error(where, exc, secret)
            else:
                return ServerTransport(
                    SyncTransport(sync, owned=True, local=False, where=where, secret=secret),
                    async_transport,
                )
        raise failure

    @property
    def local(self) -> bool:
        """Whether the data lives in this process (qdrant-client's local mode)."""
        return self._transport.local

    @property
    def data_directory(self) -> Path | None:
        """The local mode's folder (the history database goes beside the data); None for a
        server or the local mode in memory (the history then goes to ``$MEMSIFT_HOME``)."""
        folder = self.config.local_folder()
        if folder is not None:
            return folder
        if self.config.client is not None:
            path = (getattr(self.config.client, "init_options", None) or {}).get("path")
            if isinstance(path, str) and path:
                return Path(path).expanduser()
        return None

    def _run(self, plan: Plan[T]) -> T:
        self._check_open()
        return run_plan(plan, self._transport.call)

    async def _arun(self, plan: Plan[T]) -> T:
        self._check_open()
        return await arun_plan(plan, self._transport.acall)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if self._identity is None:
            raise StoreError("the store is not bound to an embedder: call open(identity) first")

    def _require_dims(self) -> int:
        identity = self._identity
        if identity is None:
            raise StoreError("the store is not bound to an embedder: call open(identity) first")
        return identity.dims

    # ------------------------------------------------------------------ binding

    def open(self, identity: EmbedderIdentity) -> None:
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            dims = self.config.embedding_model_dims
            if dims is not None and dims != identity.dims:
                raise ConfigError(
                    f"vector_store.config.embedding_model_dims is {dims} but the embedder "
                    f"{identity.provider}/{identity.model} makes {identity.dims}-dimensional "
                    "vectors"
                )
            run_plan(self._open_plan(identity), self._transport.call)
            self._identity = identity

    def _record(self, identity: EmbedderIdentity) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "embedder_provider": identity.provider,
            "embedder_model": identity.model,
            "dims": identity.dims,
            "distance": "cosine",
        }

    def _open_plan(self, identity: EmbedderIdentity) -> Plan[None]:
        models = _models()
        name = self.collection
        exists = yield Call("collection_exists", {"collection_name": name}, "find the collection")
        if not exists:
            vectors = models.VectorParams(
                size=identity.dims,
                distance=models.Distance.COSINE,
                on_disk=True if self.config.on_disk else None,
            )
            try:
                yield Call(
                    "create_collection",
                    {
                        "collection_name": name,
                        "vectors_config": vectors,
                        "metadata": {RECORD_KEY: self._record(identity)},
                    },
                    f"create the collection {name!r}",
                )
            except StoreError:
                again = yield Call("collection_exists", {"collection_name": name}, "find it")
                if not again:
                    raise
                # created meanwhile by another process: check it like any existing one
            else:
                yield from self._index_plan(set())
                return
        info = yield Call("get_collection", {"collection_name": name}, "read the collection")
        yield from self._check_collection(info, identity)

    def _check_collection(self, info: Any, identity: EmbedderIdentity) -> Plan[None]:
        models = _models()
        name = self.collection
        where = f"the Qdrant collection {name!r} ({self._transport.where})"
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise StoreError(
                f"{where} has named vectors; memsift needs a collection with one unnamed "
                "vector: use another collection_name"
            )
        record = (info.config.metadata or {}).get(RECORD_KEY)
        if params.size != identity.dims:
            recorded = _describe_record(record)
            raise EmbedderMismatchError(
                f"{where} holds {params.size}-dimensional vectors{recorded}, not "
                f"{identity.dims}-dimensional ones of {identity.provider}/{identity.model}; "
                "vectors from different embedders cannot be mixed. Use another "
                "collection_name for this embedder (memsift migrate copies memories between "
                "stores of one embedder), or reset() this store."
            )
        if params.distance != models.Distance.COSINE:
            raise StoreError(
                f"{where} uses {params.distance} distance; memsift needs cosine: use another "
                "collection_name"
            )
        if isinstance(record, dict):
            stored = EmbedderIdentity(
                provider=str(record.get("embedder_provider")),
                model=str(record.get("embedder_model")),
                dims=int(record.get("dims", params.size)),
            )
            if stored != identity:
                raise EmbedderMismatchError(
                    f"{where} holds vectors from embedder {stored.provider}/{stored.model} "
                    f"({stored.dims}-d), not {identity.provider}/{identity.model} "
                    f"({identity.dims}-d); vectors from different embedders cannot be mixed. "
                    "Use another collection_name for the new embedder and add the memories "
                    "again (Memory.get_all gives their texts), or reset() this store."
                )
        else:
            count = yield Call(
                "count", {"collection_name": name, "exact": True}, "count the points"
            )
            if count.count:
                raise StoreError(
                    f"{where} holds {count.count} points that memsift did not write (its "
                    "metadata records no embedder); use another collection_name"
                )
            yield Call(
                "update_collection",
                {"collection_name": name, "metadata": {RECORD_KEY: self._record(identity)}},
                "record the embedder",
            )
        yield from self._index_plan(set(info.payload_schema or {}))

    def _index_plan(self, present: set[str]) -> Plan[None]:
        """Create the payload indexes a server lacks (the local mode has none: it scans)."""
        if self._transport.local:
            return
        models = _models()
        for field_name, kind in PAYLOAD_INDEXES.items():
            if field_name in present:
                continue
            schema: Any
            if kind == "tenant":
                schema = models.KeywordIndexParams(
                    type=models.KeywordIndexType.KEYWORD, is_tenant=True
                )
            elif kind == "datetime":
                schema = models.PayloadSchemaType.DATETIME
            else:
                schema = models.PayloadSchemaType.KEYWORD
            yield Call(
                "create_payload_index",
                {
                    "collection_name": self.collection,
                    "field_name": field_name,
                    "field_schema": schema,
                    "wait": True,
                },
                f"index the payload field {field_name!r}",
            )

    # ------------------------------------------------------------------ validation

    def _check_vectors(self, vectors: Any, n: int) -> FloatArray:
        dims = self._require_dims()
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 1 and n == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[0] != n:
            raise InvalidInputError(
                f"expected {n} vector(s) of dimension {dims}, got an array of shape "
                f"{tuple(np.shape(vectors))}"
            )
        if array.shape[1] != dims:
            raise InvalidInputError(
                f"vectors must have dimension {dims} (the embedder's), got {array.shape[1]}"
            )
        if not np.isfinite(array).all():
            raise InvalidInputError("vectors must be finite (no NaN or infinity)")
        if array.size and not np.linalg.norm(array, axis=1).all():
            raise InvalidInputError("a zero vector has no direction (cosine distance)")
        return array

    def _points(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> list[Any]:
        models = _models()
        return [
            models.PointStruct(id=point_id(r.id), vector=v.tolist(), payload=to_payload(r))
            for r, v in zip(records, vectors)
        ]

    # ------------------------------------------------------------------ writes

    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        self._run(self._insert_plan(records, vectors))

    async def ainsert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        await self._arun(self._insert_plan(records, vectors))

    def _insert_plan(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> Plan[None]:
        records = list(records)
        array = self._check_vectors(vectors, len(records))
        if not records:
            return
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            twice = next(i for n, i in enumerate(ids) if i in ids[:n])
            raise InvalidInputError(f"memory id {twice!r} appears twice in one insert")
        points = self._points(records, array)
        found = yield from self._existing_plan(ids)
        if found:
            raise InvalidInputError(
                f"a memory with id {sorted(found)[0]!r} already exists ({len(found)} of "
                f"{len(ids)} ids exist); nothing was stored"
            )
        try:
            for start in range(0, len(points), UPSERT_BATCH):
                batch = points[start : start + UPSERT_BATCH]
                yield self._upsert(batch, f"store {len(points)} memories")
        except StoreError:
            # earlier requests were applied, and a failed one may have been in part: take
            # back every point of this insert (none existed before), so it stores all or none
            with contextlib.suppress(StoreError):
                yield from self._delete_points_plan([str(p.id) for p in points])
            raise

    def _upsert(self, points: list[Any], what: str) -> Call:
        return Call(
            "upsert",
            {"collection_name": self.collection, "points": points, "wait": True},
            what,
        )

    def update(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        self._run(self._update_plan(record, vector))

    async def aupdate(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        """The async twin of :meth:`update`."""
        await self._arun(self._update_plan(record, vector))

    def _update_plan(self, record: MemoryRecord, vector: FloatArray | None) -> Plan[None]:
        payload = to_payload(record)
        array = None if vector is None else self._check_vectors(vector, 1)
        found = yield from self._existing_plan([record.id])
        if not found:
            raise StoreError(f"no memory with id {record.id!r} to update")
        pid = point_id(record.id)
        if array is None:
            yield Call(
                "overwrite_payload",
                {
                    "collection_name": self.collection,
                    "payload": payload,
                    "points": [pid],
                    "wait": True,
                },
                "update a memory",
            )
            return
        models = _models()
        point = models.PointStruct(id=pid, vector=array[0].tolist(), payload=payload)
        yield self._upsert([point], "update a memory")

    def delete(self, ids: Sequence[str]) -> int:
        return self._run(self._delete_plan(ids))

    async def adelete(self, ids: Sequence[str]) -> int:
        """The async twin of :meth:`delete`."""
        return await self._arun(self._delete_plan(ids))

    def _delete_plan(self, ids: Sequence[str]) -> Plan[int]:
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found = yield from self._existing_plan(wanted)
        if not found:
            return 0
        yield from self._delete_points_plan([point_id(i) for i in found])
        return len(found)

    def _delete_points_plan(self, pids: list[str]) -> Plan[None]:
        models = _models()
        for start in range(0, len(pids), ID_BATCH):
            yield Call(
                "delete",
                {
                    "collection_name": self.collection,
                    "points_selector": models.PointIdsList(points=pids[start : start + ID_BATCH]),
                    "wait": True,
                },
                "delete memories",
            )

    def reset(self) -> None:
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            identity, self._identity = self._identity, None
            run_plan(self._reset_plan(), self._transport.call)
            if identity is not None:
                self.open(identity)

    def _reset_plan(self) -> Plan[None]:
        name = self.collection
        exists = yield Call("collection_exists", {"collection_name": name}, "find the collection")
        if exists:
            yield Call("delete_collection", {"collection_name": name}, "delete the collection")

    def close(self) -> None:
        """Close the clients this store made (a given ``client`` stays open). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._transport.close()
            finally:
                self._release_folder()

    def _release_folder(self) -> None:
        lock, self._folder_lock = self._folder_lock, None
        if lock is not None:
            lock.release()

    # ------------------------------------------------------------------ reads by id

    def _existing_plan(self, ids: Sequence[str]) -> Plan[set[str]]:
        """Which of ``ids`` are stored."""
        found: set[str] = set()
        for start in range(0, len(ids), ID_BATCH):
            chunk = {str(i) for i in ids[start : start + ID_BATCH]}
            by_pid = {point_id(i): i for i in chunk}
            points = yield Call(
                "retrieve",
                {
                    "collection_name": self.collection,
                    "ids": list(by_pid),
                    "with_payload": ["memory_id"],
                    "with_vectors": False,
                },
                "look memories up",
            )
            for p in points:
                memory_id = (p.payload or {}).get("memory_id")
                if memory_id is not None and memory_id in chunk:
                    found.add(str(memory_id))
        return found

    def get(self, memory_id: str) -> MemoryRecord | None:
        return self._run(self._get_plan(memory_id))

    async def aget(self, memory_id: str) -> MemoryRecord | None:
        """The async twin of :meth:`get`."""
        return await self._arun(self._get_plan(memory_id))

    def _get_plan(self, memory_id: str) -> Plan[MemoryRecord | None]:
        points = yield Call(
            "retrieve",
            {
                "collection_name": self.collection,
                "ids": [point_id(memory_id)],
                "with_payload": True,
                "with_vectors": False,
            },
            "read a memory",
        )
        for p in points:
            record = _record(p)
            if record is not None and record.id == str(memory_id):
                return record
        return None

    def get_vectors(self, ids: Sequence[str]) -> FloatArray:
        """The stored vectors of ``ids``, in their order (Qdrant keeps cosine vectors
        normalised to unit length); MemoryNotFoundError names an id that is not stored."""
        return self._run(self._vectors_plan(ids))

    async def aget_vectors(self, ids: Sequence[str]) -> FloatArray:
        """The async twin of :meth:`get_vectors`."""
        return await self._arun(self._vectors_plan(ids))

    def _vectors_plan(self, ids: Sequence[str]) -> Plan[FloatArray]:
        dims = self._require_dims()
        wanted = [str(i) for i in ids]
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), ID_BATCH):
            chunk = wanted[start : start + ID_BATCH]
            points = yield Call(
                "retrieve",
                {
                    "collection_name": self.collection,
                    "ids": list(dict.fromkeys(point_id(i) for i in chunk)),
                    "with_payload": ["memory_id"],
                    "with_vectors": True,
                },
                "read vectors",
            )
            for p in points:
                memory_id = (p.payload or {}).get("memory_id")
                if memory_id is not None:
                    found[str(memory_id)] = p.vector
        out = np.zeros((len(wanted), dims), dtype=np.float32)
        for row, memory_id in enumerate(wanted):
            vector = found.get(memory_id)
            if vector is None:
                raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
            out[row] = np.asarray(vector, dtype=np.float32)
        return out

    # ------------------------------------------------------------------ search

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        return self._run(self._search_plan(vector, filters, limit))

    async def asearch(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        return await self._arun(self._search_plan(vector, filters, limit))

    def _search_plan(
        self, vector: FloatArray, filters: Filter, limit: int
    ) -> Plan[list[VectorHit]]:
        from memsift_qdrant.filters import compile_filter

        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit!r}")
        query = self._check_vectors(np.asarray(vector).reshape(1, -1), 1)[0].tolist()
        pushed = compile_filter(filters)
        if pushed.nothing:
            return []
        models = _models()
        params = None if self._transport.local else models.SearchParams(exact=self.config.exact)
        hits: list[VectorHit] = []
        seen: set[str] = set()
        offset = 0
        page = limit if pushed.exact else max(4 * limit, 64)
        while True:
            response = yield Call(
                "query_points",
                {
                    "collection_name": self.collection,
                    "query": query,
                    "query_filter": pushed.filter,
                    "search_params": params,
                    "limit": page,
                    "offset": offset or None,
                    "with_payload": True,
                    "with_vectors": False,
                },
                "search",
            )
            points = response.points
            for p in points:
                record = _record(p)
                if record is None or record.id in seen or not evaluate(filters, record):
                    continue
                seen.add(record.id)
                hits.append(VectorHit(record=record, score=float(p.score)))
                if len(hits) == limit:
                    return hits
            if len(points) < page:
                return hits
            offset += len(points)
            page = min(page * 2, max(SEARCH_PAGE_MAX, limit))

    # ------------------------------------------------------------------ listing

    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        return self._run(self._list_plan(filters, limit))

    async def alist_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        """The async twin of :meth:`list_records`."""
        return await self._arun(self._list_plan(filters, limit))

    def _list_plan(self, filters: Filter, limit: int) -> Plan[list[MemoryRecord]]:
        from memsift_qdrant.filters import compile_filter

        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit!r}")
        pushed = compile_filter(filters)
        if pushed.nothing:
            return []
        models = _models()
        order = models.OrderBy(key="created_at", direction=models.Direction.DESC)
        fetch = limit if pushed.exact else max(4 * limit, 64)
        while fetch <= ORDERED_MAX:
            points, _ = yield Call(
                "scroll",
                {
                    "collection_name": self.collection,
                    "scroll_filter": pushed.filter,
                    "limit": fetch,
                    "order_by": order,
                    "with_payload": True,
                    "with_vectors": False,
                },
                "list memories",
            )
            records = _matching(points, filters)
            if len(records) >= limit or len(points) < fetch:
                return records[:limit]
            fetch *= 4
        # more than ORDERED_MAX at once: read every point that passes, sort here
        records = yield from self._scan_plan(pushed.filter, filters)
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records[:limit]

    def _scan_plan(
        self, qfilter: models.Filter | None, filters: Filter, *, payload: Any = True
    ) -> Plan[list[MemoryRecord]]:
        """Every record that passes ``qfilter`` and ``filters``, in pages."""
        out: list[MemoryRecord] = []
        offset: Any = None
        while True:
            points, offset = yield Call(
                "scroll",
                {
                    "collection_name": self.collection,
                    "scroll_filter": qfilter,
                    "limit": SCROLL_PAGE,
                    "offset": offset,
                    "with_payload": payload,
                    "with_vectors": False,
                },
                "read memories",
            )
            out.extend(_matching(points, filters))
            if offset is None or not points:
                return out

    def count(self, *, filters: Filter | None = None) -> int:
        """How many records satisfy ``filters`` (all of them without)."""
        return self._run(self._count_plan(filters))

    async def acount(self, *, filters: Filter | None = None) -> int:
        """The async twin of :meth:`count`."""
        return await self._arun(self._count_plan(filters))

    def _count_plan(self, filters: Filter | None) -> Plan[int]:
        from memsift_qdrant.filters import compile_filter

        parsed = MatchAll() if filters is None else filters
        pushed = compile_filter(parsed)
        if pushed.nothing:
            return 0
        if pushed.exact:
            result = yield Call(
                "count",
                {"collection_name": self.collection, "count_filter": pushed.filter, "exact": True},
                "count memories",
            )
            return int(result.count)
        records = yield from self._scan_plan(pushed.filter, parsed)
        return len(records)

    def find_hashes(self, hashes: Sequence[str], *, filters: Filter) -> set[str]:
        """Which of ``hashes`` the records that satisfy ``filters`` have (one scroll per
        1000 hashes over the hash index)."""
        return self._run(self._hashes_plan(hashes, filters))

    async def afind_hashes(self, hashes: Sequence[str], *, filters: Filter) -> set[str]:
        """The async twin of :meth:`find_hashes`."""
        return await self._arun(self._hashes_plan(hashes, filters))

    def _hashes_plan(self, hashes: Sequence[str], filters: Filter) -> Plan[set[str]]:
        from memsift_qdrant.filters import compile_filter, with_condition

        wanted = list(dict.fromkeys(str(h) for h in hashes))
        pushed = compile_filter(filters)
        if pushed.nothing or not wanted:
            return set()
        models = _models()
        found: set[str] = set()
        for start in range(0, len(wanted), ID_BATCH):
            chunk = wanted[start : start + ID_BATCH]
            by_hash = models.FieldCondition(key="hash", match=models.MatchAny(any=chunk))
            records = yield from self._scan_plan(with_condition(pushed.filter, by_hash), filters)
            found.update(r.hash for r in records if r.hash in set(chunk))
        return found


def _record(point: Any) -> MemoryRecord | None:
    try:
        return from_payload(point.payload)
    except ValueError:
        return None  # a point memsift did not write


def _matching(points: Sequence[Any], filters: Filter) -> list[MemoryRecord]:
    out = []
    for p in points:
        record = _record(p)
        if record is not None and evaluate(filters, record):
            out.append(record)
    return out


def _describe_record(record: Any) -> str:
    if not isinstance(record, dict):
        return ""
    return f" from embedder {record.get('embedder_provider')}/{record.get('embedder_model')}"


def _client_is_local(client: Any) -> bool:
    options = getattr(client, "init_options", None) or {}
    if options.get("location") == ":memory:" or options.get("path"):
        return True
    inner = getattr(client, "_client", None)
    return type(inner).__name__ in ("QdrantLocal", "AsyncQdrantLocal")


def _connect_error(where: str, exc: BaseException, secret: str | None) -> StoreError:
    detail = str(exc).strip() or type(exc).__name__
    if "already accessed by another instance" in detail:
        advice = (
            "the local mode allows one client per folder: close the other Memory (or process) "
            "using it, or run a Qdrant server for several processes"
        )
    else:
        advice = "check the connection settings"
    return clean_error(
        StoreError(f"cannot connect to Qdrant ({where}): {type(exc).__name__}: {detail}; {advice}"),
        secret,
    )


__all__ = ["ORDERED_MAX", "RECORD_KEY", "UPSERT_BATCH", "QdrantStore"]
