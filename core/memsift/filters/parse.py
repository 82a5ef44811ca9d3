"""The parser: filter dicts to AST nodes, every problem a :class:`FilterError` that says where.

Several keys in one dict are an implicit AND; nested ANDs and ORs are merged; an OR is kept
even with one branch (an OR never scopes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from memsift.errors import FilterError
from memsift.filters.ast import And, Cond, Filter, MatchAll, Not, Or
from memsift.filters.values import (
    LOGICAL_OPERATORS,
    MAX_DEPTH,
    MAX_NODES,
    SCOPE_FIELDS,
    TIMESTAMP_FIELDS,
    _loc,
    _normalise_operand,
    _OperandError,
    _operator_problem,
    _operators_for,
    _type_name,
    check_metadata_key,
)


def _and(children: Sequence[Filter]) -> Filter:
    flat: list[Filter] = []
    for child in children:
        if isinstance(child, And):
            flat.extend(child.children)
        elif not isinstance(child, MatchAll):
            flat.append(child)
    if not flat:
        return MatchAll()
    if len(flat) == 1:
        return flat[0]
    return And(tuple(flat))


def _or(children: Sequence[Filter]) -> Filter:
    flat: list[Filter] = []
    for child in children:
        if isinstance(child, MatchAll):
            return MatchAll()
        if isinstance(child, Or):
            flat.extend(child.children)
        else:
            flat.append(child)
    return Or(tuple(flat))  # kept even with one branch: an OR never scopes


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def count(self, path: tuple[str | int, ...], n: int = 1) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise FilterError(
                f"{_loc(path)}: filter too large: more than {MAX_NODES} conditions and values"
            )

    def parse_dict(self, spec: Any, path: tuple[str | int, ...], depth: int) -> Filter:
        if not isinstance(spec, Mapping):
            raise FilterError(f"{_loc(path)}: expected a filter dict, got {_type_name(spec)}")
        if depth > MAX_DEPTH:
            raise FilterError(f"{_loc(path)}: filter nested too deeply (limit {MAX_DEPTH} levels)")
        parts: list[Filter] = []
        for key, value in spec.items():
            if not isinstance(key, str):
                raise FilterError(
                    f"{_loc(path)}: filter keys must be strings, got {_type_name(key)} {key!r}"
                )
            if key in LOGICAL_OPERATORS:
                parts.append(self.parse_logical(key, value, (*path, key), depth))
            else:
                parts.extend(self.parse_field(key, value, (*path, key)))
        return _and(parts)

    def parse_logical(self, op: str, value: Any, path: tuple[str | int, ...], depth: int) -> Filter:
        if not isinstance(value, (list, tuple)):
            raise FilterError(
                f"{_loc(path)}: {op} takes a non-empty list of filter dicts, "
                f"got {_type_name(value)}"
            )
        if not value:
            raise FilterError(
                f"{_loc(path)}: {op} takes a non-empty list of filter dicts, got an empty list"
            )
        self.count(path)
        children = [self.parse_dict(item, (*path, i), depth + 1) for i, item in enumerate(value)]
        if op == "AND":
            return _and(children)
        if op == "OR":
            return _or(children)
        return Not(_and(children))

    def parse_field(self, key: str, value: Any, path: tuple[str | int, ...]) -> list[Filter]:
        if key not in SCOPE_FIELDS and key not in TIMESTAMP_FIELDS:
            if (
                key.upper() in LOGICAL_OPERATORS
                and isinstance(value, (list, tuple))
                and any(isinstance(item, Mapping) for item in value)
            ):
                raise FilterError(
                    f"{_loc(path)}: logical operators are upper case: use {key.upper()!r}"
                )
            try:
                check_metadata_key(key)
            except FilterError as exc:
                raise FilterError(f"{_loc(path)}: {exc}") from None
        if isinstance(value, Mapping):
            if not value:
                raise FilterError(
                    f"{_loc(path)}: empty operator dict; valid operators: "
                    + ", ".join(_operators_for(key))
                )
            conds: list[Filter] = []
            for op, operand in value.items():
                if not isinstance(op, str) or op not in _operators_for(key):
                    raise FilterError(f"{_loc(path)}: {_operator_problem(key, op)}")
                conds.append(self.cond(key, op, operand, (*path, op)))
            return conds
        if isinstance(value, str) and value == "*":
            return [self.cond(key, "exists", True, path)]
        if isinstance(value, (list, tuple)):
            return [self.cond(key, "in", value, path)]
        return [self.cond(key, "eq", value, path)]

    def cond(self, field: str, op: str, value: Any, path: tuple[str | int, ...]) -> Cond:
        self.count(path, 1 + (len(value) if isinstance(value, (list, tuple)) else 0))
        try:
            normalised = _normalise_operand(field, op, value)
        except _OperandError as exc:
            raise FilterError(f"{_loc((*path, *exc.suffix))}: {exc.detail}") from None
        return Cond(field, op, normalised)


def parse_filter(spec: Mapping[str, Any] | Filter | None) -> Filter:
    """Parse and validate a filter dict; ``None`` and ``{}`` give :class:`MatchAll`.

    A :class:`Filter` is returned as it is (nodes validate themselves on construction).

    Raises :class:`FilterError` whose message starts with the location of the problem, e.g.
    ``filters["AND"][1]["priority"]: unknown operator 'gtt'; valid operators: eq, ne, ...``.
    """
    if spec is None:
        return MatchAll()
    if isinstance(spec, Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise FilterError(f"filters: expected a dict or None, got {_type_name(spec)}")
    return _Parser().parse_dict(spec, (), 1)
