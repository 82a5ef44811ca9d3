"""The filter language's vocabulary (fields, operators, limits) and the checks of its values.

Everything here is plain validation: metadata keys (:func:`check_metadata_key`), metadata
values for storage (:func:`check_metadata`), operands of conditions, literals, timestamps in
their canonical stored form (:func:`canonical_timestamp`), and text that is not valid Unicode
(:func:`find_lone_surrogate`). The AST nodes validate themselves with these checks on
construction, so this module sits below them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from memsift.errors import FilterError

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

_METADATA_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_COMPARISONS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
