"""Scope: which ``user_id``/``agent_id``/``run_id`` a filter pins (:func:`scope_ids`), where
a filter dict pins them (:func:`scope_pins`), and the rule that a search is scoped
(:func:`require_scope`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memsift.errors import ScopeError
from memsift.filters.ast import And, Cond, Filter
from memsift.filters.values import MAX_DEPTH, SCOPE_FIELDS, _loc


def scope_ids(f: Filter) -> dict[str, str]:
    """The scope ids a filter pins with ``eq``, at the top level or inside a top-level AND.

    Nested ANDs count; ``OR``, ``NOT``, ``ne`` and ``in`` never do. When one field is pinned
    twice, the first value wins (the filter then matches nothing if they differ).
    """
    found: dict[str, str] = {}

    def visit(node: Filter) -> None:
        if isinstance(node, And):
            for child in node.children:
                visit(child)
        elif (
            isinstance(node, Cond)
            and node.field in SCOPE_FIELDS
            and node.op == "eq"
            and isinstance(node.value, str)
        ):
            found.setdefault(node.field, node.value)

    visit(f)
    return found


def scope_pins(spec: Mapping[str, Any] | None) -> list[tuple[str, str, Any]]:
    """The scope keys of a filter dict that stand where they pin a scope, with raw values.

    A pin position is the top level of the dict or inside a top-level ``AND`` (nested ANDs
    included): the places where :func:`scope_ids` looks. Returns ``(location, field, value)``
    triples, e.g. ``('filters["AND"][1]["user_id"]', "user_id", "*")``, in the order they
    appear; scope keys under ``OR`` or ``NOT`` are not pins and are not listed. Call it on a
    dict that :func:`parse_filter` accepted. The memory API requires every pin to be one
    exact id (see :func:`memsift.search.scoped_filter`); the filter language itself keeps
    ``"*"`` and the operators on scope fields.
    """
    found: list[tuple[str, str, Any]] = []

    def visit(node: Any, path: tuple[str | int, ...], depth: int) -> None:
        if not isinstance(node, Mapping) or depth > MAX_DEPTH:
            return
        for key, value in node.items():
            if key in SCOPE_FIELDS:
                found.append((_loc((*path, key)), key, value))
            elif key == "AND" and isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    visit(item, (*path, key, index), depth + 1)

    visit(spec, (), 1)
    return found


def require_scope(f: Filter, what: str = "search") -> None:
    """Raise :class:`ScopeError` unless ``f`` is scoped by user_id, agent_id or run_id."""
    if not scope_ids(f):
        raise ScopeError(
            f"{what} must be scoped by user_id, agent_id or run_id: put one of them, e.g. "
            "{'user_id': 'alice'}, at the top level of filters or inside a top-level AND "
            "(conditions under OR or NOT, and ne/in, do not scope)"
        )
