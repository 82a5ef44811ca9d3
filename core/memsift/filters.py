"""The filter language: dicts parsed to a small immutable AST, evaluated in Python, run as SQL.

A filter is a dict. Its keys are field names or the logical operators ``AND``, ``OR`` and
``NOT``; several keys in one dict are an implicit AND. ``None`` and ``{}`` match everything.

Fields:

- ``user_id``, ``agent_id``, ``run_id`` (the scope fields): strings, absent when ``None``.
  Their operands must be strings (non-empty for ``eq``/``ne``/``in``/``nin``).
- ``created_at``, ``updated_at``: timestamps stored in the canonical form of
  :func:`canonical_timestamp` (UTC, microseconds), so comparing the strings compares the times.
  Operands are ``datetime`` objects or ISO-8601 strings (naive means UTC); an empty stored value
  counts as absent. Operators: ``eq ne gt gte lt lte in nin exists``.
- any other key names a metadata key (see :func:`check_metadata_key`). Metadata values are any
  JSON value.

A field's value is a literal (``eq``), a list (``in``), the string ``"*"`` (``exists``: the
field is present, with any value; write ``{"eq": "*"}`` to match the string itself) or an
operator dict ``{op: operand, ...}`` (several operators are an AND). Literals are strings,
integers (signed 64-bit), finite floats, booleans and ``None`` (present and JSON null).
``AND``, ``OR`` and ``NOT`` each take a non-empty list of filter dicts; ``NOT`` of a list
negates the AND of its items.

Semantics (the Python evaluator and the SQL agree exactly):

- Types are strict. A boolean equals only a boolean (``True != 1``); integers and floats compare
  numerically with each other; strings only with strings (by code point); ``None`` only with
  JSON null. A type mismatch makes a comparison false, never an error.
- A missing field makes ``eq gt gte lt lte in contains icontains`` and ``exists: true`` false.
  ``ne`` is exactly ``NOT eq`` and ``nin`` exactly ``NOT in``, so both are true on a missing
  field. ``NOT`` is plain negation.
- ``gt gte lt lte``: a number operand needs a number (not a boolean) in the field; a string
  operand needs a string, compared by code point.
- ``contains x``: the field is a string containing the string ``x`` (case-sensitive), or an
  array with an element equal to ``x`` under the strict equality above.
- ``icontains x``: the field is a string and ``x.lower() in field.lower()`` (Python's
  ``str.lower``, also in SQL through a registered function).
- ``exists``: ``true`` means present (JSON null counts as present), ``false`` means absent.

Scope: :func:`scope_ids` collects the ``eq`` conditions on scope fields that stand at the top
level or inside a top-level AND (nested ANDs included, since a conjunction of conjunctions is
one conjunction). Only a plain ``eq`` with a string scopes; ``ne``, ``in``, ``OR`` and ``NOT``
never do, even with a single branch. :func:`scope_pins` lists the scope keys of a filter dict in
those same positions; the memory API (``Memory.search``, ``get_all``, ``delete_all``) requires
each of them to be one exact id, so ``"*"``, a list or an operator dict there is a
:class:`ScopeError` (``{"eq": id}`` is allowed). Under ``OR`` and ``NOT``, and in filters given
to a store directly, scope fields take the whole language, ``"*"`` included.

Invalid Unicode: a string literal (or metadata key or value) holding a lone surrogate is a
:class:`FilterError` naming the place, the code point and its position.

SQL: :func:`compile_sql` returns a WHERE fragment and its parameters for a table whose scope
and timestamp columns are TEXT and whose metadata column holds a JSON object. Values and JSON
paths travel only as parameters. Every compiled condition evaluates to exactly 0 or 1, never
NULL, so negation is safe. Call :func:`register_sql_functions` on every connection that runs
the SQL. Store metadata with ``json.dumps`` after :func:`check_metadata`: SQLite cuts JSON
strings at a NUL character and reads integers beyond 64 bits as floats, so both are refused.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from memsift.errors import FilterError, ScopeError

if TYPE_CHECKING:
    from memsift.interfaces import MemoryRecord

SCOPE_FIELDS: Final = ("user_id", "agent_id", "run_id")
TIMESTAMP_FIELDS: Final = ("created_at", "updated_at")
LOGICAL_OPERATORS: Final = ("AND", "OR", "NOT")
OPERATORS: Final = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "nin",
    "contains",
    "icontains",
    "exists",
)
TIMESTAMP_OPERATORS: Final = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists")
RESERVED_NAMES: Final = frozenset(
    {"id", "memory", "hash", "metadata", *SCOPE_FIELDS, *TIMESTAMP_FIELDS, *LOGICAL_OPERATORS}
)
METADATA_KEY_MAX_LENGTH: Final = 64
MAX_DEPTH: Final = 32
MAX_NODES: Final = 1000
#: Name of the SQL function :func:`register_sql_functions` adds (used by ``icontains``).
ICONTAINS_SQL_FUNCTION: Final = "memsift_icontains"

_METADATA_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_COLUMN_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX_RE: Final = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)?")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_COMPARISONS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_JSON_EACH_COLUMNS: Final = frozenset(
    {"key", "value", "type", "atom", "id", "parent", "fullkey", "path", "json", "root"}
)
_EACH: Final = "_memsift_each"  # alias of json_each in the compiled SQL


class _Missing:
    """The value of an absent field (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


# --------------------------------------------------------------------------- AST


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


# --------------------------------------------------------------------------- validation


class _OperandError(Exception):
    """An invalid operand; ``suffix`` locates it below the operator (a list index)."""

    def __init__(self, detail: str, suffix: tuple[str | int, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.suffix = suffix


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return type(value).__name__


def _render_path(path: Sequence[str | int]) -> str:
    return "".join(
        f"[{json.dumps(part, ensure_ascii=False)}]" if isinstance(part, str) else f"[{part}]"
        for part in path
    )


def _loc(path: Sequence[str | int]) -> str:
    return "filters" + _render_path(path)


def check_metadata_key(key: str) -> str:
    """Return ``key`` if it may name a metadata field; raise :class:`FilterError` otherwise.

    A key is 1 to 64 characters of letters, digits, ``_`` and ``-``, not starting with a digit
    or ``-`` (no dots, no quotes), and not a reserved name (``id``, ``memory``, ``hash``,
    ``metadata``, the scope and timestamp fields, ``AND``, ``OR``, ``NOT``).
    """
    if not isinstance(key, str):
        raise FilterError(f"metadata keys must be strings, got {_type_name(key)}")
    if not key:
        raise FilterError("invalid metadata key '': keys must not be empty")
    if len(key) > METADATA_KEY_MAX_LENGTH:
        raise FilterError(
            f"invalid metadata key {key[:20]!r}...: keys are at most "
            f"{METADATA_KEY_MAX_LENGTH} characters, got {len(key)}"
        )
    if not _METADATA_KEY_RE.fullmatch(key):
        raise FilterError(
            f"invalid metadata key {key!r}: keys are letters, digits, '_' and '-', "
            "and start with a letter or '_'"
        )
    if key in RESERVED_NAMES:
        raise FilterError(f"invalid metadata key {key!r}: {key!r} is a reserved name")
    return key


def find_lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate (U+D800 to U+DFFF) in ``text``, or ``None``.

    Python strings can hold them (``surrogateescape`` decoding, JSON ``"\\ud800"`` escapes),
    but they are not valid Unicode: no UTF-8 store can hold them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


def lone_surrogate_problem(what: str, text: str) -> str | None:
    """A message for the first lone surrogate in ``text`` (``None`` when there is none), e.g.
    ``query contains a lone surrogate (U+D800) at position 3; text must be valid Unicode``.

    The message names the code point, never the character itself, so it can always be printed.
    """
    index = find_lone_surrogate(text)
    if index is None:
        return None
    return (
        f"{what} contains a lone surrogate (U+{ord(text[index]):04X}) at position {index}; "
        "text must be valid Unicode"
    )


def _check_string(value: str) -> str:
    if "\x00" in value:
        raise _OperandError("strings must not contain NUL characters")
    index = find_lone_surrogate(value)
    if index is not None:
        raise _OperandError(
            f"strings must be valid Unicode: a lone surrogate (U+{ord(value[index]):04X}) "
            f"at position {index}"
        )
    return str(value)


def _check_number(value: int | float) -> int | float:
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _OperandError(f"integers must fit in 64 bits, got {value}")
        return int(value)
    if not math.isfinite(value):
        raise _OperandError(f"numbers must be finite, got {value}")
    return float(value)


def _literal(value: Any) -> Any:
    """Validate a literal: a string, a 64-bit integer, a finite float, a boolean or None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _check_number(value)
    if isinstance(value, str):
        return _check_string(value)
    raise _OperandError(
        f"expected a string, number, boolean or null, got {_type_name(value)}"
        + (" (use the 'in' operator for a list of values)" if isinstance(value, list) else "")
    )


_FRACTION = re.compile(r"([T ]\d\d:\d\d:\d\d\.)(\d+)")


def canonical_timestamp(value: datetime | str) -> str:
    """The canonical stored form of a timestamp: UTC, ISO-8601 with microseconds.

    ``value`` is an aware or naive (taken as UTC) ``datetime``, or an ISO-8601 string that
    ``datetime.fromisoformat`` reads (a trailing ``Z`` is accepted). The result looks like
    ``2026-11-25T20:30:02.123456+00:00``; comparing two such strings compares the times.
    Raises :class:`FilterError` for anything else.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        # Fractions of a second as six digits: Python 3.10 reads only 3 or 6 (3.11+ any).
        text = _FRACTION.sub(lambda m: m.group(1) + (m.group(2) + "000000")[:6], text, count=1)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise FilterError(f"not an ISO-8601 timestamp: {value!r}") from None
    else:
        raise FilterError(f"timestamps are datetimes or ISO-8601 strings, got {_type_name(value)}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise FilterError(f"timestamp out of range: {value!r}") from None
    return moment.isoformat(timespec="microseconds")


def _operators_for(field: str) -> tuple[str, ...]:
    return TIMESTAMP_OPERATORS if field in TIMESTAMP_FIELDS else OPERATORS


def _operator_problem(field: str, op: Any) -> str:
    valid = _operators_for(field)
    if isinstance(op, str) and op in OPERATORS:
        return f"operator {op!r} is not supported on {field}; valid operators: {', '.join(valid)}"
    return f"unknown operator {op!r}; valid operators: {', '.join(valid)}"


def _normalise_value(field: str, op: str, value: Any) -> Any:
    """Validate and normalise one operand value (an ``in`` item or a scalar operand)."""
    if field in TIMESTAMP_FIELDS:
        if not isinstance(value, (datetime, str)):
            raise _OperandError(
                f"{field} takes datetimes or ISO-8601 strings, got {_type_name(value)}"
            )
        if isinstance(value, str):
            _check_string(value)
        try:
            return canonical_timestamp(value)
        except FilterError as exc:
            raise _OperandError(str(exc)) from None
    if field in SCOPE_FIELDS:
        if not isinstance(value, str):
            raise _OperandError(f"{field} takes string values, got {_type_name(value)}")
        if not value and op in ("eq", "ne", "in", "nin"):
            raise _OperandError(f"{field} values must be non-empty strings")
        return _check_string(value)
    if op in _COMPARISONS and (
        value is None or isinstance(value, bool) or not isinstance(value, (int, float, str))
    ):
        raise _OperandError(f"{op} takes a number or a string, got {_type_name(value)}")
    if op == "icontains" and not isinstance(value, str):
        raise _OperandError(f"icontains takes a string, got {_type_name(value)}")
    return _literal(value)


def _normalise_operand(field: str, op: str, value: Any) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise _OperandError(f"exists takes true or false, got {_type_name(value)}")
        return value
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)):
            raise _OperandError(f"{op} takes a non-empty list of values, got {_type_name(value)}")
        if not value:
            raise _OperandError(f"{op} takes a non-empty list of values, got an empty list")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_normalise_value(field, op, item))
            except _OperandError as exc:
                raise _OperandError(exc.detail, (index, *exc.suffix)) from None
        return tuple(items)
    return _normalise_value(field, op, value)


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Validate metadata for storage and return a plain JSON-ready copy (tuples become lists).

    Top-level keys must pass :func:`check_metadata_key`. Values are JSON: strings without NUL
    characters or lone surrogates, 64-bit integers, finite floats, booleans, None, lists and
    dicts with string keys (at most 32 levels deep). Raises :class:`FilterError` naming the
    offending place, e.g. ``metadata["tags"][2]: numbers must be finite, got nan``.
    """
    if not isinstance(metadata, Mapping):
        raise FilterError(f"metadata must be a dict, got {_type_name(metadata)}")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            check_metadata_key(key)
        except FilterError as exc:
            raise FilterError(f"metadata: {exc}") from None
        out[key] = _json_value(value, (key,), 1)
    return out


def _json_value(value: Any, path: tuple[str | int, ...], depth: int) -> Any:
    where = "metadata" + _render_path(path)
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FilterError(f"{where}: keys must be strings, got {_type_name(key)}")
            try:
                _check_string(key)
            except _OperandError as exc:
                raise FilterError(f"{where}: key {key!r}: {exc.detail}") from None
            result[key] = _json_value(item, (*path, key), depth + 1)
        return result
    if isinstance(value, (list, tuple)):
        return [_json_value(item, (*path, i), depth + 1) for i, item in enumerate(value)]
    try:
        return _literal(value)
    except _OperandError as exc:
        raise FilterError(f"{where}: {exc.detail}") from None


# --------------------------------------------------------------------------- parsing


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


# --------------------------------------------------------------------------- scope


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


# --------------------------------------------------------------------------- evaluation


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


# --------------------------------------------------------------------------- SQL
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


__all__ = [
    "ICONTAINS_SQL_FUNCTION",
    "LOGICAL_OPERATORS",
    "MAX_DEPTH",
    "MAX_NODES",
    "OPERATORS",
    "RESERVED_NAMES",
    "SCOPE_FIELDS",
    "TIMESTAMP_FIELDS",
    "TIMESTAMP_OPERATORS",
    "And",
    "Cond",
    "Filter",
    "MatchAll",
    "Not",
    "Or",
    "canonical_timestamp",
    "check_metadata",
    "check_metadata_key",
    "compile_sql",
    "evaluate",
    "find_lone_surrogate",
    "lone_surrogate_problem",
    "parse_filter",
    "register_sql_functions",
    "require_scope",
    "scope_ids",
    "scope_pins",
]
