"""The reference evaluator: whether a record satisfies a filter, in plain Python.

Every store must give the same answer as :func:`evaluate` for every filter (the conformance
suite checks it); a store without a query language of its own can filter with it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from memsift.errors import FilterError
from memsift.filters.ast import And, Cond, Filter, MatchAll, Not, Or
from memsift.filters.values import (
    _COMPARISONS,
    SCOPE_FIELDS,
    TIMESTAMP_FIELDS,
    _is_number,
    _type_name,
)

if TYPE_CHECKING:
    from memsift.records import MemoryRecord


class _Missing:
    """The value of an absent field (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


def _strict_eq(value: Any, literal: Any) -> bool:
    if isinstance(literal, bool):
        return isinstance(value, bool) and value is literal
    if literal is None:
        return value is None
    if isinstance(literal, str):
        return isinstance(value, str) and value == literal
    return _is_number(value) and bool(value == literal)


def _compare(value: Any, op: str, operand: Any) -> bool:
    if isinstance(operand, str):
        if not isinstance(value, str):
            return False
    elif not _is_number(value):
        return False
    if op == "gt":
        return bool(value > operand)
    if op == "gte":
        return bool(value >= operand)
    if op == "lt":
        return bool(value < operand)
    return bool(value <= operand)


def _field_value(record: MemoryRecord, field: str) -> Any:
    if field in SCOPE_FIELDS:
        value = getattr(record, field)
        return _MISSING if value is None else value
    if field in TIMESTAMP_FIELDS:
        return getattr(record, field) or _MISSING
    metadata = record.metadata or {}
    return metadata.get(field, _MISSING)


def _evaluate_cond(cond: Cond, record: MemoryRecord) -> bool:
    value = _field_value(record, cond.field)
    op, operand = cond.op, cond.value
    if op == "exists":
        return (value is not _MISSING) is operand
    if op == "ne":
        return not _strict_eq(value, operand)
    if op == "nin":
        return not any(_strict_eq(value, item) for item in operand)
    if value is _MISSING:
        return False
    if op == "eq":
        return _strict_eq(value, operand)
    if op == "in":
        return any(_strict_eq(value, item) for item in operand)
    if op in _COMPARISONS:
        return _compare(value, op, operand)
    if op == "contains":
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        if isinstance(value, (list, tuple)):
            return any(_strict_eq(item, operand) for item in value)
        return False
    if op == "icontains":
        return isinstance(value, str) and operand.lower() in value.lower()
    raise FilterError(f"unknown operator {op!r}")


def evaluate(f: Filter, record: MemoryRecord) -> bool:
    """Whether ``record`` satisfies ``f``: the reference every store must agree with."""
    if isinstance(f, Cond):
        return _evaluate_cond(f, record)
    if isinstance(f, And):
        return all(evaluate(child, record) for child in f.children)
    if isinstance(f, Or):
        return any(evaluate(child, record) for child in f.children)
    if isinstance(f, Not):
        return not evaluate(f.child, record)
    if isinstance(f, MatchAll):
        return True
    raise FilterError(f"not a filter node: {_type_name(f)}")
