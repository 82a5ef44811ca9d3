"""Bulk adds: many memories in one call, each with its own text, scope ids and metadata
(``Memory.add_many`` / ``AsyncMemory.add_many``, and ``memsift import``).

``add(list)`` stores a list of messages under one scope and one metadata; a real bulk load
(an import, a backfill) has different scope ids and metadata for every memory, so it has its
own method and its own item type, :class:`MemoryItem`::

    m.add_many(
        [
            {"text": "Prefers window seats", "user_id": "alice", "metadata": {"topic": "travel"}},
            {"text": "Allergic to peanuts", "user_id": "bob", "created_at": "2025-03-01T09:00Z"},
        ]
    )

How a call runs:

1. **Every item is checked first**, with the checks of ``add`` (text, scope ids, metadata;
   :mod:`memsift.inputs`) and those of the timestamps. The first bad item raises
   :class:`~memsift.errors.InvalidInputError` (or :class:`~memsift.errors.ScopeError`)
   naming its index (``items[3]: user_id must be ...``), and nothing is written.
2. The items are cut into batches of ``batch_size``. Each batch is embedded in one
   ``embed`` call (the embedder batches and length-buckets inside it) and written as a single
   ``add`` writes: its ADD events first (pending), in one history transaction, then its
   records and vectors in one store ``insert`` (one transaction in the built-in store), then
   the events settled; they are taken back if the insert fails
   (:func:`memsift.changes.record_then`).
3. **A call that raises stored nothing**: when a batch fails (its embedding or its write),
   the batches already written are deleted again and their events taken back before the
   error is raised (should that undo fail too, it is logged). A process killed mid-way
   leaves whole batches only, each with its history.

Items are not deduplicated (as with ``add(infer=False)``). ``created_at`` / ``updated_at``
are optional (an ISO-8601 string or a ``datetime``; naive means UTC); an item without them
gets the time of the call, one without ``updated_at`` gets its ``created_at``. The result
is ``{"results": [{"id", "memory", "event": "ADD"}, ...]}`` in the order of the items.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

from memsift.changes import add_events, memory_hash, now_timestamp, settle, take_back
from memsift.errors import FilterError, InvalidInputError, MemsiftError
from memsift.filters import canonical_timestamp
from memsift.history import History
from memsift.inference import added_response
from memsift.inputs import check_metadata, check_scope, check_text
from memsift.interfaces import Embedder, MemoryRecord, VectorStore

log = logging.getLogger("memsift")

#: Memories embedded and written per batch (one ``embed`` call, one history transaction,
#: one store ``insert``) unless ``batch_size`` says otherwise.
DEFAULT_BATCH_SIZE = 512
#: The keys an item may have.
ITEM_KEYS = ("text", "user_id", "agent_id", "run_id", "metadata", "created_at", "updated_at")

#: ``progress(done, total)``: called after every batch written.
BulkProgress = Callable[[int, int], None]


class _ItemText(TypedDict):
    text: str


class MemoryItem(_ItemText, total=False):
    """One memory of :meth:`memsift.Memory.add_many`: ``text`` is required, and at least one
    of ``user_id`` / ``agent_id`` / ``run_id``."""

    user_id: str
    agent_id: str
    run_id: str
    metadata: dict[str, Any]
    created_at: str | datetime
    updated_at: str | datetime


def check_item(item: Any, where: str, *, stamp: str | None = None) -> MemoryRecord:
    """The new record of one item (a fresh id, its hash, its timestamps), or the error that
    the item is bad, prefixed with ``where`` (``"items[3]"``, ``"line 4"``)."""
    try:
        return _record(item, stamp if stamp is not None else now_timestamp())
    except MemsiftError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _record(item: Any, stamp: str) -> MemoryRecord:
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"an item must be a dict with 'text' and a scope id, got {type(item).__name__}"
        )
    unknown = sorted(str(k) for k in item if k not in ITEM_KEYS)
    if unknown:
        raise InvalidInputError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(ITEM_KEYS)}"
        )
    if "text" not in item:
        raise InvalidInputError("an item needs a 'text'")
    text = check_text(item["text"], "text")
    scope = check_scope(item.get("user_id"), item.get("agent_id"), item.get("run_id"))
    metadata = check_metadata(item.get("metadata"))
    created = _timestamp(item.get("created_at"), "created_at") or stamp
    updated = _timestamp(item.get("updated_at"), "updated_at") or created
    if updated < created:
        raise InvalidInputError(f"updated_at {updated} is before created_at {created}")
    return MemoryRecord(
        id=str(uuid.uuid4()),
        memory=text,
        hash=memory_hash(text),
        metadata=metadata,
        user_id=scope.get("user_id"),
        agent_id=scope.get("agent_id"),
        run_id=scope.get("run_id"),
        created_at=created,
        updated_at=updated,
    )


def _timestamp(value: Any, what: str) -> str | None:
    if value is None:
        return None
    try:
        return canonical_timestamp(value)
    except FilterError as exc:
        raise InvalidInputError(f"{what}: {exc}") from None


def check_items(items: Any) -> list[MemoryRecord]:
    """The records of every item, all checked before any is returned (see the module doc)."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInputError(
            f"add_many() takes a list of items (dicts), got {type(items).__name__}; "
            "add() takes a text or messages"
        )
    stamp = now_timestamp()
    return [check_item(item, f"items[{i}]", stamp=stamp) for i, item in enumerate(items)]


def check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


# --------------------------------------------------------------------------- the drivers


def add_many(
    embedder: Embedder,
    store: VectorStore,
    history: History,
    items: Any,
    *,
    batch_size: Any = None,
    progress: BulkProgress | None = None,
) -> dict[str, Any]:
    """What ``Memory.add_many`` runs (see the module doc)."""
    size = check_batch_size(batch_size)
    records = check_items(items)
    done: list[tuple[list[str], list[int]]] = []  # (memory ids, history event ids) per batch
    try:
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            vectors = embedder.embed([r.memory for r in batch], purpose="document")
            written = _write(store, history, batch, vectors)
            done.append(([r.id for r in batch], written))
            if progress is not None:
                progress(start + len(batch), len(records))
    except BaseException:
        _undo(store, history, done)
        raise
    return added_response(records)


def _write(
    store: VectorStore, history: History, batch: list[MemoryRecord], vectors: Any
) -> list[int]:
    """One batch as a single ``add`` writes it: its events (pending), then the store, then the
    events settled; they are taken back if the store write fails
    (:func:`memsift.changes.record_then`'s order). Returns the ids of the events."""
    ids = history.record(add_events(batch))
    try:
        store.insert(batch, vectors)
    except BaseException:
        take_back(history, ids)
        raise
    settle(history, ids)
    return ids


async def aadd_many(
    embedder: Embedder,
    store: VectorStore,
    history: History,
    items: Any,
    *,
    batch_size: Any = None,
    progress: BulkProgress | None = None,
) -> dict[str, Any]:
    """What ``AsyncMemory.add_many`` runs: the embedder's and the store's async twins, the
    history in a worker thread; a batch's write, once started, finishes even if the task is
    cancelled, and a cancelled call undoes the batches it wrote (as a failed one does)."""
    size = check_batch_size(batch_size)
    records = check_items(items)
    done: list[tuple[list[str], list[int]]] = []
    writing: tuple[list[str], asyncio.Future[list[int]]] | None = None
    try:
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            vectors = await embedder.aembed([r.memory for r in batch], purpose="document")
            task = asyncio.ensure_future(_awrite(store, history, batch, vectors))
            writing = ([r.id for r in batch], task)
            ids = await asyncio.shield(task)
            writing = None
            done.append(([r.id for r in batch], ids))
            if progress is not None:
                progress(start + len(batch), len(records))
    except BaseException:
        await asyncio.shield(_aundo(store, history, done, writing))
        raise
    return added_response(records)


async def _aundo(
    store: VectorStore,
    history: History,
    done: list[tuple[list[str], list[int]]],
    writing: tuple[list[str], asyncio.Future[list[int]]] | None,
) -> None:
    """Undo what a failed or cancelled call wrote, the batch whose write was under way when
    it was cancelled included (that write is let finish first)."""
    if writing is not None:
        memory_ids, task = writing
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is None:
            done.append((memory_ids, task.result()))
    await asyncio.to_thread(_undo, store, history, done)


async def _awrite(
    store: VectorStore, history: History, batch: list[MemoryRecord], vectors: Any
) -> list[int]:
    ids = await asyncio.to_thread(history.record, add_events(batch))
    try:
        await store.ainsert(batch, vectors)
    except BaseException:
        await asyncio.to_thread(take_back, history, ids)
        raise
    await asyncio.to_thread(settle, history, ids)
    return ids


def _undo(store: VectorStore, history: History, done: list[tuple[list[str], list[int]]]) -> None:
    """Delete the batches written before a failure and take back their events."""
    for memory_ids, event_ids in reversed(done):
        try:
            store.delete(memory_ids)
        except Exception:
            log.exception(
                "add_many failed and %d memories it had written could not be deleted again; "
                "they stay stored, with their history",
                len(memory_ids),
            )
            continue
        take_back(history, event_ids)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ITEM_KEYS",
    "BulkProgress",
    "MemoryItem",
    "aadd_many",
    "add_many",
    "check_item",
    "check_items",
]
