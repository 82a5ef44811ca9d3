"""The in-memory scope columns of the ``faiss`` store: per slot, whether it is live and its
scope ids as integer codes, so that a scope-only filter needs no SQL.

Every vector lives in one *slot* of the index (its position). A scope-only filter (equalities
on ``user_id``, ``agent_id``, ``run_id``, see :func:`scope_only`) is answered from these
columns; any other filter from SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from memsift.filters import SCOPE_FIELDS, And, Cond, Filter, MatchAll
from memsift.records import MemoryRecord

Int64Array = npt.NDArray[np.int64]


class Columns:
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
    def from_rows(cls, rows: Sequence[Sequence[Any]], size: int) -> Columns:
        """Columns of ``size`` slots from ``(slot, user_id, agent_id, run_id)`` rows."""
        cols = cls()
        cols._grow(size)
        cols.size = size
        cols.set_many((r[0] for r in rows), (tuple(r[1:]) for r in rows))
        return cols

    def compacted(self, order: Int64Array) -> Columns:
        """The columns of the live slots ``order``, renumbered 0..len(order)-1."""
        cols = Columns()
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

    def scope_slots(self, scope: dict[str, str]) -> Int64Array:
        """The live slots whose scope ids equal ``scope``."""
        mask = self.live[: self.size].copy()
        for field_name, value in scope.items():
            code = self.code(field_name, value, create=False)
            mask &= self.codes[field_name][: self.size] == code
        return np.flatnonzero(mask).astype(np.int64)


def scope_only(filters: Filter) -> dict[str, str] | None:
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


__all__ = ["Columns", "Int64Array", "scope_only"]
