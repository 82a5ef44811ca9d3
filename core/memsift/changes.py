"""What a change writes, and in which order: the records, their history events, and the rule
that keeps the history and the store in step.

A change (``add``, ``update``, ``delete``, ``delete_all``) writes records to the vector store
and ADD / UPDATE / DELETE events to the history. The history is a separate SQLite file, so the
two writes cannot share a transaction; :func:`record_then` writes them in this order: the
history events first, then the store. If the history write fails, the store is not touched and
:class:`memsift.errors.StoreError` is raised; if the store write fails, the events just written
are removed again and the store's error is raised. So a change that raises leaves the memories
and their history as they were, and retrying it cannot duplicate anything. (Should removing
the events fail too, that is logged, and the history keeps events of a change that did not
happen.)
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from memsift.filters import canonical_timestamp
from memsift.history import History, HistoryEvent
from memsift.records import MemoryRecord

log = logging.getLogger("memsift")

T = TypeVar("T")


def now_timestamp() -> str:
    return canonical_timestamp(datetime.now(timezone.utc))


def memory_hash(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- records


def new_records(
    texts: Sequence[str], scope: Mapping[str, str], metadata: Mapping[str, Any]
) -> list[MemoryRecord]:
    """One new record per text (a fresh id, its hash), all with the same timestamps."""
    stamp = now_timestamp()
    return [
        MemoryRecord(
            id=str(uuid.uuid4()),
            memory=text,
            hash=memory_hash(text),
            metadata=dict(metadata),
            user_id=scope.get("user_id"),
            agent_id=scope.get("agent_id"),
            run_id=scope.get("run_id"),
            created_at=stamp,
            updated_at=stamp,
        )
        for text in texts
    ]


def updated_record(old: MemoryRecord, text: str, metadata: dict[str, Any] | None) -> MemoryRecord:
    """``old`` with a new text (and its hash), and new metadata when given."""
    return MemoryRecord(
        id=old.id,
        memory=text,
        hash=memory_hash(text),
        metadata=metadata if metadata is not None else dict(old.metadata),
        user_id=old.user_id,
        agent_id=old.agent_id,
        run_id=old.run_id,
        created_at=old.created_at,
        updated_at=now_timestamp(),
    )


# --------------------------------------------------------------------------- events


def add_events(records: Sequence[MemoryRecord]) -> list[HistoryEvent]:
    return [
        HistoryEvent(
            memory_id=r.id,
            event="ADD",
            old_memory=None,
            new_memory=r.memory,
            created_at=r.created_at,
            user_id=r.user_id,
            agent_id=r.agent_id,
            run_id=r.run_id,
        )
        for r in records
    ]


def update_event(old: MemoryRecord, new: MemoryRecord) -> HistoryEvent:
    return HistoryEvent(
        memory_id=new.id,
        event="UPDATE",
        old_memory=old.memory,
        new_memory=new.memory,
        created_at=new.updated_at,
        user_id=new.user_id,
        agent_id=new.agent_id,
        run_id=new.run_id,
    )


def delete_event(record: MemoryRecord) -> HistoryEvent:
    return HistoryEvent(
        memory_id=record.id,
        event="DELETE",
        old_memory=record.memory,
        new_memory=None,
        created_at=now_timestamp(),
        user_id=record.user_id,
        agent_id=record.agent_id,
        run_id=record.run_id,
    )


# --------------------------------------------------------------------------- the order


def record_then(history: History, events: Sequence[HistoryEvent], write: Callable[[], T]) -> T:
    """Record ``events``, then run the store ``write``; take the events back if it fails.

    A history failure raises StoreError before the store is touched.
    """
    ids = history.record(events)
    try:
        return write()
    except Exception:
        take_back(history, ids)
        raise


def take_back(history: History, ids: Sequence[int]) -> None:
    """Remove the events ``ids`` of a change whose store write failed (a failure is logged)."""
    try:
        history.remove(ids)
    except Exception:
        log.exception(
            "the store write failed and its %d history event(s) could not be removed; "
            "the history now lists a change that did not happen",
            len(ids),
        )
