"""The SQLite compiler: a filter as a parameterised WHERE fragment, and the SQL functions it
needs (:func:`register_sql_functions`).

:func:`compile_sql` returns a WHERE fragment and its parameters for a table whose scope and
timestamp columns are TEXT and whose metadata column holds a JSON object. Values and JSON
paths travel only as parameters. Every compiled condition evaluates to exactly 0 or 1, never
NULL, so negation is safe. Call :func:`register_sql_functions` on every connection that runs
the SQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from memsift.errors import FilterError
from memsift.filters.ast import And, Cond, Filter, MatchAll, Not, Or
from memsift.filters.values import (
    _COMPARISONS,
    SCOPE_FIELDS,
    TIMESTAMP_FIELDS,
    _is_number,
    _type_name,
)

#: Name of the SQL function :func:`register_sql_functions` adds (used by ``icontains``).
ICONTAINS_SQL_FUNCTION: Final = "memsift_icontains"

_COLUMN_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX_RE: Final = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)?")
_JSON_EACH_COLUMNS: Final = frozenset(
    {"key", "value", "type", "atom", "id", "parent", "fullkey", "path", "json", "root"}
)
_EACH: Final = "_memsift_each"  # alias of json_each in the compiled SQL
#
# SQLite limits how filters may be shaped as SQL: its parser stack holds about 90 open
# constructs (each unclosed "(" or "x AND" costs one or two) and an expression tree is at most
# 1000 deep (a flat chain "a AND b AND ..." is a left-deep tree as deep as it is long). So the
# compiler first rewrites the AST to negation normal form (NOT only on conditions, nested
# ANDs/ORs merged), puts the deepest child of each AND/OR first (it is parsed before anything
# of that level is left pending), parenthesises only an OR inside an AND, and groups long
# chains in chunks of _CHUNK.

_CHUNK: Final = 16


@dataclass(frozen=True, slots=True)
class _Leaf:
    cond: Cond
    negate: bool


@dataclass(frozen=True, slots=True)
class _Junction:
    op: str  # "AND" or "OR"
    children: tuple[_Leaf | _Junction, ...]
    height: int


def _height(node: _Leaf | _Junction) -> int:
    return node.height if isinstance(node, _Junction) else 0


def _normal_form(f: Filter, negate: bool) -> _Leaf | _Junction | bool:
    """``f`` (negated when ``negate``) in negation normal form; a bool for a constant."""
    if isinstance(f, Cond):
        return _Leaf(f, negate)
    if isinstance(f, Not):
        return _normal_form(f.child, not negate)
    if isinstance(f, MatchAll):
        return not negate
    if isinstance(f, (And, Or)):
        conjunction = isinstance(f, And) != negate
        op = "AND" if conjunction else "OR"
        items: list[_Leaf | _Junction] = []
        for child in f.children:
            node = _normal_form(child, negate)
            if isinstance(node, bool):
                if node is not conjunction:  # false in an AND, true in an OR
                    return node
                continue
            if isinstance(node, _Junction) and node.op == op:
                items.extend(node.children)
            else:
                items.append(node)
        if not items:
            return conjunction
        if len(items) == 1:
            return items[0]
        items.sort(key=_height, reverse=True)
        return _Junction(op, tuple(items), 1 + _height(items[0]))
    raise FilterError(f"not a filter node: {_type_name(f)}")


def _chain(parts: list[str], op: str) -> str:
    while len(parts) > _CHUNK:
        parts = [
            "(" + f" {op} ".join(parts[i : i + _CHUNK]) + ")" for i in range(0, len(parts), _CHUNK)
        ]
    return f" {op} ".join(parts)


def _icontains(haystack: Any, needle: Any) -> int:
    if isinstance(haystack, str) and isinstance(needle, str):
        return int(needle.lower() in haystack.lower())
    return 0


def register_sql_functions(conn: sqlite3.Connection) -> None:
    """Register the functions compiled filters use; call it on every connection."""
    conn.create_function(ICONTAINS_SQL_FUNCTION, 2, _icontains, deterministic=True)


class _SqlCompiler:
    """Renders conditions; each rendering is atomic or parenthesised and is exactly 0 or 1."""

    def __init__(self, metadata_column: str, column_prefix: str) -> None:
        self.metadata = column_prefix + metadata_column
        self.prefix = column_prefix
        self.params: list[Any] = []

    def render(self, node: _Leaf | _Junction | bool) -> str:
        if isinstance(node, bool):
            return "1" if node else "0"
        if isinstance(node, _Leaf):
            return self.leaf(node.cond, node.negate)
        parts = []
        for child in node.children:
            sql = self.render(child)
            needs_parens = node.op == "AND" and isinstance(child, _Junction)
            parts.append(f"({sql})" if needs_parens else sql)
        return _chain(parts, node.op)

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def placeholders(self, values: Sequence[Any]) -> str:
        self.params.extend(values)
        return ", ".join("?" for _ in values)

    def leaf(self, cond: Cond, negate: bool) -> str:
        # ne, nin and exists-false are the negations of eq, in and exists-true.
        op, operand = cond.op, cond.value
        if op in ("ne", "nin"):
            op, negate = ("eq" if op == "ne" else "in"), not negate
        elif op == "exists" and not operand:
            operand, negate = True, not negate
        if cond.field in SCOPE_FIELDS or cond.field in TIMESTAMP_FIELDS:
            sql = self.column(cond.field, op, operand)
        else:
            sql = self.meta(cond.field, op, operand)
        return f"NOT {sql}" if negate else sql

    # Scope and timestamp columns: NULL (and, for timestamps, '') means absent.
    def column(self, field: str, op: str, operand: Any) -> str:
        col = self.prefix + field
        present = (
            f"{col} IS NOT NULL"
            if field in SCOPE_FIELDS
            else f"({col} IS NOT NULL AND {col} <> '')"
        )
        if op == "eq":
            return f"({col} IS {self.bind(operand)})"
        if op in _COMPARISONS:
            return f"({present} AND {col} {_COMPARISONS[op]} {self.bind(operand)})"
        if op == "in":
            return f"({present} AND {col} IN ({self.placeholders(operand)}))"
        if op == "contains":
            return f"({present} AND instr({col}, {self.bind(operand)}) > 0)"
        if op == "icontains":
            return f"({present} AND {ICONTAINS_SQL_FUNCTION}({col}, {self.bind(operand)}))"
        if op == "exists":
            return f"({present})"
        raise FilterError(f"unknown operator {op!r}")

    # Metadata: json_type() is SQL NULL when the key is absent, 'null' for JSON null, and
    # json_extract() gives 1/0 for true/false, so every value test checks the type first.
    def meta(self, key: str, op: str, operand: Any) -> str:
        path = f'$."{key}"'

        def jtype() -> str:
            self.params.append(path)
            return f"json_type({self.metadata}, ?)"

        def type_is(kind: str) -> str:
            return f"{jtype()} IS '{kind}'"

        def is_number() -> str:
            return f"IFNULL({jtype()}, '') IN ('integer', 'real')"

        def jvalue() -> str:
            self.params.append(path)
            return f"json_extract({self.metadata}, ?)"

        def compare(sql_op: str, literal: Any) -> str:
            if isinstance(literal, bool):
                return f"({type_is('true' if literal else 'false')})"
            if literal is None:
                return f"({type_is('null')})"
            check = type_is("text") if isinstance(literal, str) else is_number()
            return f"({check} AND {jvalue()} {sql_op} {self.bind(literal)})"

        if op == "eq":
            return compare("=", operand)
        if op in _COMPARISONS:
            return compare(_COMPARISONS[op], operand)
        if op == "exists":
            return f"({jtype()} IS NOT NULL)"
        if op == "icontains":
            check = type_is("text")
            return f"({check} AND {ICONTAINS_SQL_FUNCTION}({jvalue()}, {self.bind(operand)}))"
        parts: list[str] = []
        if op == "in":
            strings = [v for v in operand if isinstance(v, str)]
            numbers = [v for v in operand if _is_number(v)]
            kinds = sorted(
                {"true" if v else "false" for v in operand if isinstance(v, bool)}
                | {"null" for v in operand if v is None}
            )
            if strings:
                check = type_is("text")
                parts.append(f"{check} AND {jvalue()} IN ({self.placeholders(strings)})")
            if numbers:
                check = is_number()
                parts.append(f"{check} AND {jvalue()} IN ({self.placeholders(numbers)})")
            if kinds:
                listed = ", ".join(f"'{kind}'" for kind in kinds)
                parts.append(f"IFNULL({jtype()}, '') IN ({listed})")
            return "(" + " OR ".join(parts) + ")"
        if op == "contains":
            if isinstance(operand, str):
                check = type_is("text")
                parts.append(f"{check} AND instr({jvalue()}, {self.bind(operand)}) > 0")
            check = type_is("array")
            source = f"json_each({self.metadata}, {self.bind(path)}) AS {_EACH}"
            if isinstance(operand, bool):
                element = f"{_EACH}.type = '{'true' if operand else 'false'}'"
            elif operand is None:
                element = f"{_EACH}.type = 'null'"
            elif isinstance(operand, str):
                element = f"{_EACH}.type = 'text' AND {_EACH}.value = {self.bind(operand)}"
            else:
                number = f"{_EACH}.type IN ('integer', 'real')"
                element = f"{number} AND {_EACH}.value = {self.bind(operand)}"
            parts.append(f"{check} AND EXISTS (SELECT 1 FROM {source} WHERE {element})")
            return "(" + " OR ".join(parts) + ")"
        raise FilterError(f"unknown operator {op!r}")


def compile_sql(
    f: Filter, *, metadata_column: str = "metadata", column_prefix: str = ""
) -> tuple[str, list[Any]]:
    """Compile ``f`` to a SQLite WHERE fragment (without ``WHERE``) and its parameters.

    The table has TEXT columns ``user_id``, ``agent_id``, ``run_id``, ``created_at`` and
    ``updated_at`` (canonical timestamps) and a JSON-object column ``metadata_column``;
    ``column_prefix`` (e.g. ``"m."``) qualifies them. The fragment evaluates to 0 or 1 for
    every row and needs :func:`register_sql_functions` on the connection.
    """
    if not _COLUMN_RE.fullmatch(metadata_column):
        raise ValueError(f"metadata_column must be a plain identifier, got {metadata_column!r}")
    if not _PREFIX_RE.fullmatch(column_prefix):
        raise ValueError(f"column_prefix must be empty or 'name.', got {column_prefix!r}")
    if not column_prefix and metadata_column.lower() in _JSON_EACH_COLUMNS:
        raise ValueError(
            f"metadata_column {metadata_column!r} clashes with a json_each column: "
            "give a column_prefix"
        )
    compiler = _SqlCompiler(metadata_column, column_prefix)
    node = _normal_form(f, False)
    sql = compiler.render(node)
    return (f"({sql})" if isinstance(node, _Junction) else sql), compiler.params
