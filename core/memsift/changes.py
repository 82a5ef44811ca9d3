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

A change of several store writes (an ``add(infer=True)`` in reconcile mode: new memories,
updated ones, deleted ones) is a list of :class:`Step` run by :func:`write_change` (or its
async twin): all the events (and the call's message-log entries) are written first, in one
history transaction; then the steps, in order, each one store call that is atomic by the
store contract (one ``insert`` of every new memory, one ``update`` per updated memory, one
``delete`` of every deleted memory, last). If a step fails, the steps done before it are
undone in reverse order (inserted memories deleted again, updated ones put back with their
old text and a re-embedded vector), the events taken back, and the error raised; so again a
change that raises leaves the memories and their history as they were. A step that cannot be
undone (the delete) always comes last. Should an undo fail too, that is logged and the events
of that step are kept (they describe what the store holds).

**A kill between the two commits.** A process killed after the history commit and before the
store's leaves events of a change the store never made; killed after the store's commit and
before returning, events of a change the store did make. So the events are written *pending*
(the ``History`` of a ``Memory`` is bound to its store), and :func:`settle` clears the mark
once the store write has returned (one more history commit, without an fsync), before the call
returns: an acknowledged change always has settled events. A pending event is shown only when
the store confirms it (the memory's later events, or the store's ``get`` of its id: the rule
of :mod:`memsift.history`), so a killed change shows its events exactly when the store holds
it. A ``Memory`` opening settles the pending events its store confirms and removes the others
once they are older than :data:`memsift.history.PENDING_LEASE`; younger ones may be another
live process's write in flight (several processes may share a store), so they are only hidden.
Should the settle itself fail, that is logged and the events stay pending (still shown, as
the store confirms them): the change is made, so the call does not raise. The events kept
after a failed undo are settled too; taken-back events are deleted, pending or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from memsift.errors import StoreError
from memsift.filters import canonical_timestamp
from memsift.history import History, HistoryEvent, LoggedMessage, Lookup, Receipt
from memsift.records import MemoryRecord

log = logging.getLogger("memsift")

T = TypeVar("T")


def open_history(path: str | Path, lookup: Lookup, count: Callable[[], int]) -> History:
    """The history at ``path``, bound to its store (``lookup`` is the store's ``get``, which
    confirms pending events). A history file that is missing or empty (its ``-wal`` too)
    while the store already holds memories (``count``) starts empty: their earlier events
    are not in it, which is logged as a warning (the memories themselves are intact)."""
    file = Path(path).expanduser()
    sizes = [f.stat().st_size for f in (file, file.with_name(file.name + "-wal")) if f.exists()]
    history = History(file, lookup)
    if not any(sizes) and (held := count()) > 0:
        log.warning(
            "the history database %s was missing or empty, but the store holds %d memories: "
            "their earlier history is not in it (the memories are intact). Restore the file "
            "from a backup to get it back, or point history_db_path at the right one",
            file,
            held,
        )
    return history


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

    A history failure raises StoreError before the store is touched; the events are settled
    once the write returned.
    """
    ids = history.record(events)
    try:
        result = write()
    except Exception:
        take_back(history, ids)
        raise
    settle(history, ids)
    return result


def settle(history: History, ids: Sequence[int]) -> None:
    """Clear the pending mark of the events ``ids`` of a change whose store write returned
    (a failure is logged: the events stay pending, shown as the store confirms them)."""
    try:
        history.settle(ids)
    except Exception as exc:  # a StoreError (read-only, full disk) is no bug: no traceback
        bug = not isinstance(exc, StoreError)
        log.error("%d history event(s) could not be settled: %s", len(ids), exc, exc_info=bug)


def take_back(history: History, ids: Sequence[int] | Receipt) -> None:
    """Remove the events ``ids`` (or what a :class:`Receipt` lists) of a change whose store
    write failed (a failure is logged)."""
    receipt = ids if isinstance(ids, Receipt) else Receipt(events=list(ids))
    try:
        history.take_back(receipt)
    except Exception as exc:
        log.error(
            "the store write failed and its %d history event(s) could not be removed (%s); "
            "they stay pending, shown only if the store confirms them",
            len(receipt.events),
            exc,
            exc_info=not isinstance(exc, StoreError),
        )


# --------------------------------------------------------------------------- several writes


@dataclass
class Step:
    """One store write of a change: its events, the write, and how to undo it.

    ``run`` is the sync write; ``arun`` (optional) its async twin, used by
    :func:`awrite_change`. ``undo`` is None for a write that cannot be undone: it must be the
    last step.
    """

    events: Sequence[HistoryEvent]
    run: Callable[[], object]
    undo: Callable[[], object] | None = None
    arun: Callable[[], Awaitable[object]] | None = None


def write_change(
    history: History, steps: Sequence[Step], messages: Sequence[LoggedMessage] = ()
) -> None:
    """Record every step's events and ``messages``, then run the steps in order; on a
    failure undo the steps done, take the events back and raise (see the module doc)."""
    _check_order(steps)
    receipt = history.record_change([e for s in steps for e in s.events], messages)
    for index, step in enumerate(steps):
        try:
            step.run()
        except Exception:
            _roll_back(history, steps, index, receipt)
            raise
    settle(history, receipt.events)


async def awrite_change(
    history: History, steps: Sequence[Step], messages: Sequence[LoggedMessage] = ()
) -> None:
    """The async twin of :func:`write_change`: the history and the undo run in a worker
    thread, a step through its ``arun`` when it has one."""
    _check_order(steps)
    events = [e for s in steps for e in s.events]
    receipt = await asyncio.to_thread(history.record_change, events, messages)
    for index, step in enumerate(steps):
        try:
            if step.arun is not None:
                await step.arun()
            else:
                await asyncio.to_thread(step.run)
        except Exception:
            await asyncio.to_thread(_roll_back, history, steps, index, receipt)
            raise
    await asyncio.to_thread(settle, history, receipt.events)


def _check_order(steps: Sequence[Step]) -> None:
    if any(step.undo is None for step in steps[:-1]):
        raise ValueError("only the last step of a change may be one that cannot be undone")


def _roll_back(history: History, steps: Sequence[Step], failed: int, receipt: Receipt) -> None:
    """Undo steps[:failed] in reverse, then take back every event but those of a step whose
    undo failed (they describe what the store still holds: settled), and the logged messages."""
    kept: set[int] = set()
    for index in range(failed - 1, -1, -1):
        undo = steps[index].undo
        assert undo is not None  # _check_order
        try:
            undo()
        except Exception:
            log.exception("undoing part of a failed change failed; its history events stay")
            kept.add(index)
    ids: list[int] = []
    keep: list[int] = []
    offset = 0
    for index, step in enumerate(steps):
        count = len(step.events)
        (keep if index in kept else ids).extend(receipt.events[offset : offset + count])
        offset += count
    take_back(history, Receipt(events=ids, messages=receipt.messages))
    settle(history, keep)
