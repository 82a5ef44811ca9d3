"""The filter AST: small immutable nodes (``MatchAll``, ``And``, ``Or``, ``Not``, ``Cond``).

Nodes validate themselves on construction (a ``Cond`` checks its field, operator and
operand), so any tree a store receives is valid; :func:`memsift.filters.parse_filter` builds
them from filter dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsift.errors import FilterError
from memsift.filters.values import (
    SCOPE_FIELDS,
    TIMESTAMP_FIELDS,
    _normalise_operand,
    _OperandError,
    _operator_problem,
    _operators_for,
    _render_path,
    _type_name,
    check_metadata_key,
)


@dataclass(frozen=True, slots=True)
class Filter:
    """Base class of the filter AST nodes."""


@dataclass(frozen=True, slots=True)
class MatchAll(Filter):
    """Matches every record (the empty filter)."""


@dataclass(frozen=True, slots=True)
class And(Filter):
    """True when every child is true."""

    children: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", _check_children("And", self.children))


@dataclass(frozen=True, slots=True)
class Or(Filter):
    """True when at least one child is true."""

    children: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", _check_children("Or", self.children))


@dataclass(frozen=True, slots=True)
class Not(Filter):
    """True when the child is false."""

    child: Filter

    def __post_init__(self) -> None:
        if not isinstance(self.child, Filter):
            raise FilterError(f"Not: child must be a Filter, got {_type_name(self.child)}")


@dataclass(frozen=True, slots=True, eq=False)
class Cond(Filter):
    """One condition: ``field op value``.

    The value is validated and normalised on construction: ``in``/``nin`` hold a tuple,
    timestamps their canonical string. Equality is type-strict (``Cond(k, "eq", True)`` differs
    from ``Cond(k, "eq", 1)``), matching the filter semantics.
    """

    field: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        where = f"Cond({self.field!r}, {self.op!r})"
        if not isinstance(self.field, str):
            raise FilterError(f"{where}: field must be a string, got {_type_name(self.field)}")
        if self.field not in SCOPE_FIELDS and self.field not in TIMESTAMP_FIELDS:
            check_metadata_key(self.field)
        valid = _operators_for(self.field)
        if self.op not in valid:
            raise FilterError(f"{where}: {_operator_problem(self.field, self.op)}")
        try:
            value = _normalise_operand(self.field, self.op, self.value)
        except _OperandError as exc:
            raise FilterError(f"{where}{_render_path(exc.suffix)}: {exc.detail}") from None
        object.__setattr__(self, "value", value)

    def _key(self) -> tuple[str, str, Any]:
        return (self.field, self.op, _typed(self.value))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cond):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _check_children(kind: str, children: Any) -> tuple[Filter, ...]:
    if not isinstance(children, (tuple, list)) or not children:
        raise FilterError(f"{kind}: children must be a non-empty tuple of filters")
    for child in children:
        if not isinstance(child, Filter):
            raise FilterError(f"{kind}: children must be Filters, got {_type_name(child)}")
    return tuple(children)


def _typed(value: Any) -> Any:
    """A key under which equal values are exactly the values the filter semantics equate."""
    if isinstance(value, tuple):
        return ("tuple", tuple(_typed(item) for item in value))
    if isinstance(value, bool):
        return ("bool", value)
    if value is None:
        return ("null",)
    if isinstance(value, (int, float)):
        return ("number", value)
    return ("string", value)
