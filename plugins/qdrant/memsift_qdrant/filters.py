"""The filter AST compiled to Qdrant's filter language, exactly where the semantics agree.

:func:`compile_filter` turns a :mod:`memsift.filters` tree into a Qdrant ``Filter`` and says
whether it is **exact** (Qdrant accepts exactly the records :func:`memsift.filters.evaluate`
accepts) or a **superset** (Qdrant accepts every record the evaluator accepts, and maybe
more). The store always checks what Qdrant returns with the evaluator and pages on until it
has ``limit`` exact matches or Qdrant has no more, so results are exact either way; a superset
only costs reading more points. A condition that cannot be narrowed at all compiles to no
condition (a superset of everything).

The rules that make this safe:

- ``AND`` of parts is exact when every part is; a superset otherwise (the conjunction of
  supersets is a superset).
- ``OR`` likewise; a part that cannot be narrowed makes the whole ``OR`` unnarrowed.
- ``NOT`` (and so ``ne`` / ``nin``, which are ``NOT eq`` / ``NOT in``) is pushed down only
  over an exact part (the negation of a superset is not a superset); otherwise it compiles
  to no condition.

What is pushed down, operator by operator (``exact`` = Qdrant's answer is the evaluator's;
``superset`` = narrowed in Qdrant, decided in Python; ``python`` = not narrowed at all):

=================  ===============================  =====================================
field, operator    Qdrant condition                 result
=================  ===============================  =====================================
scope eq           match value (keyword)            exact
scope in           match any                        exact
scope ne / nin     must_not match value / any       exact
scope exists       is_empty / must_not is_empty     exact
scope gt..lte      must_not is_empty                superset (no string order in Qdrant)
scope contains,    must_not is_empty                superset (no substring / case folding
icontains                                           with the evaluator's semantics)
time eq / in       datetime range [t, t]            exact (microsecond timestamps)
time gt..lte       datetime range                   exact
time ne / nin      must_not datetime range          exact
time exists        (always present)                 exact
meta eq string,    match value, and the key not in  exact (Qdrant would also match a list
bool               metadata_lists                   holding the value; the evaluator not)
meta eq null       is_null, key not a list          exact
meta eq number     range [v, v], key not a list     exact for abs(v) < 2**53 (1 equals 1.0,
                                                    never True); beyond, match value or
                                                    range: superset (float64 rounding)
meta in            the eq of each item (strings in  exact when every item is
                   one match any)
meta ne / nin      must_not of the above            exact when the eq / in is
meta gt..lte       range, key not a list            exact for abs(v) < 2**53; widened
number                                              (gt -> gte) beyond: superset
meta gt..lte       metadata_keys has the key        superset (no string order in Qdrant)
string
meta contains      key in metadata_lists and match  exact (lists are looked into one level,
bool / number      value / range [v, v]             like the evaluator); big ints superset
meta contains      key in metadata_lists and match  superset (the string case needs a
string             value, or a present non-list     substring test)
meta contains      key in metadata_lists            superset
null
meta icontains     key present and not a list       superset (no str.lower folding)
meta exists        metadata_keys has the key        exact
=================  ===============================  =====================================

Scope ``eq`` is always exact, so a search scoped to a rare user reads only that user's points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from qdrant_client import models

from memsift.filters import SCOPE_FIELDS, TIMESTAMP_FIELDS, And, Cond, Filter, MatchAll, Not, Or
from memsift_qdrant.payload import METADATA_KEYS, METADATA_LISTS, metadata_path

#: Numbers whose magnitude is below this compare the same as float64 and exactly.
EXACT_NUMBER: Final = 2**53


class _All:
    """No condition: every point."""

    def __repr__(self) -> str:
        return "ALL"


class _Nothing:
    """A condition no point satisfies."""

    def __repr__(self) -> str:
        return "NOTHING"


ALL: Final = _All()
NOTHING: Final = _Nothing()
Part = Any  # a models.Condition (FieldCondition, IsEmpty, IsNull, Filter), ALL or NOTHING


@dataclass(frozen=True)
class Pushed:
    """A compiled filter: ``filter`` for Qdrant (None: every point), whether it is exact, and
    whether it matches nothing at all (then no request is needed)."""

    filter: models.Filter | None
    exact: bool
    nothing: bool = False


def compile_filter(f: Filter) -> Pushed:
    """Compile ``f`` (see the module docstring for what is exact)."""
    part, exact = _compile(f)
    if part is NOTHING:
        return Pushed(filter=None, exact=True, nothing=True)
    if part is ALL:
        return Pushed(filter=None, exact=exact)
    if isinstance(part, models.Filter):
        return Pushed(filter=part, exact=exact)
    return Pushed(filter=models.Filter(must=[part]), exact=exact)


def with_condition(pushed: models.Filter | None, condition: models.Condition) -> models.Filter:
    """``pushed`` AND ``condition``."""
    if pushed is None:
        return models.Filter(must=[condition])
    return models.Filter(must=[pushed, condition])


# --------------------------------------------------------------------------- the tree


def _compile(f: Filter) -> tuple[Part, bool]:
    if isinstance(f, Cond):
        return _cond(f)
    if isinstance(f, MatchAll):
        return ALL, True
    if isinstance(f, And):
        return _and([_compile(c) for c in f.children])
    if isinstance(f, Or):
        return _or([_compile(c) for c in f.children])
    if isinstance(f, Not):
        return _not(_compile(f.child))
    raise TypeError(f"not a filter node: {type(f).__name__}")


def _and(parts: list[tuple[Part, bool]]) -> tuple[Part, bool]:
    if any(p is NOTHING for p, _ in parts):
        return NOTHING, True
    exact = all(e for _, e in parts)
    conds = [p for p, _ in parts if p is not ALL]
    if not conds:
        return ALL, exact
    if len(conds) == 1:
        return conds[0], exact
    return models.Filter(must=conds), exact


def _or(parts: list[tuple[Part, bool]]) -> tuple[Part, bool]:
    if any(p is ALL and e for p, e in parts):
        return ALL, True
    if any(p is ALL for p, _ in parts):
        return ALL, False
    rest = [(p, e) for p, e in parts if p is not NOTHING]
    if not rest:
        return NOTHING, True
    exact = all(e for _, e in rest)
    if len(rest) == 1:
        return rest[0][0], exact
    return models.Filter(should=[p for p, _ in rest]), exact


def _not(part: tuple[Part, bool]) -> tuple[Part, bool]:
    inner, exact = part
    if not exact:
        return ALL, False
    if inner is ALL:
        return NOTHING, True
    if inner is NOTHING:
        return ALL, True
    return models.Filter(must_not=[inner]), True


# --------------------------------------------------------------------------- conditions


def _match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _range(key: str, **bounds: float) -> models.FieldCondition:
    return models.FieldCondition(key=key, range=models.Range(**bounds))


def _empty(key: str) -> models.IsEmptyCondition:
    return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))


def _present(key: str) -> models.Filter:
    return models.Filter(must_not=[_empty(key)])


def _cond(c: Cond) -> tuple[Part, bool]:
    if c.op == "ne":
        return _not(_cond(Cond(c.field, "eq", c.value)))
    if c.op == "nin":
        return _not(_cond(Cond(c.field, "in", c.value)))
    if c.field in SCOPE_FIELDS:
        return _scope(c)
    if c.field in TIMESTAMP_FIELDS:
        return _timestamp(c)
    return _metadata(c)


def _scope(c: Cond) -> tuple[Part, bool]:
    """Scope fields hold a string, or are absent."""
    if c.op == "eq":
        return _match(c.field, c.value), True
    if c.op == "in":
        return models.FieldCondition(key=c.field, match=models.MatchAny(any=list(c.value))), True
    if c.op == "exists":
        return (_present(c.field) if c.value else _empty(c.field)), True
    # gt gte lt lte contains icontains: true only on a present string
    return _present(c.field), False


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _timestamp(c: Cond) -> tuple[Part, bool]:
    """Timestamps are always present, canonical (the store refuses others), compared as
    instants by a datetime range (microseconds, like the canonical strings)."""
    key = c.field
    if c.op == "exists":
        return (ALL if c.value else NOTHING), True
    if c.op == "eq":
        moment = _instant(c.value)
        return models.FieldCondition(
            key=key, range=models.DatetimeRange(gte=moment, lte=moment)
        ), True
    if c.op == "in":
        return _or([_timestamp(Cond(key, "eq", v)) for v in c.value])
    bounds = {c.op: _instant(c.value)}
    return models.FieldCondition(key=key, range=models.DatetimeRange(**bounds)), True


def _is_list(key: str) -> models.FieldCondition:
    return _match(METADATA_LISTS, key)


def _has(key: str) -> models.FieldCondition:
    return _match(METADATA_KEYS, key)


def _scalar(key: str, condition: Part) -> models.Filter:
    """``condition``, on a value that is not a list."""
    return models.Filter(must=[condition], must_not=[_is_list(key)])


def _in_list(key: str, condition: Part) -> models.Filter:
    """``condition`` on the elements of a value that is a list."""
    return models.Filter(must=[_is_list(key), condition])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _small(value: int | float) -> bool:
    return abs(value) < EXACT_NUMBER


def _below(value: int | float) -> float:
    """The largest float64 at most ``value`` (a bound that never excludes ``value``)."""
    f = float(value)
    return math.nextafter(f, -math.inf) if f > value else f


def _above(value: int | float) -> float:
    """The smallest float64 at least ``value``."""
    f = float(value)
    return math.nextafter(f, math.inf) if f < value else f


def _equals(path: str, value: Any) -> tuple[Part, bool]:
    """Values equal to ``value`` under the evaluator's strict equality (lists included: a
    match looks into them; the callers decide)."""
    if value is None:
        return models.IsNullCondition(is_null=models.PayloadField(key=path)), True
    if isinstance(value, (bool, str)):
        return _match(path, value), True
    if _small(value):
        number = float(value)
        return _range(path, gte=number, lte=number), True
    # beyond 2**53 a server compares ranges in float64: the range is widened to the floats
    # around the value (it then also takes some neighbours: checked in Python), and an
    # integer match finds the integer itself
    around = _range(path, gte=_below(value), lte=_above(value))
    if isinstance(value, int):
        return models.Filter(should=[_match(path, value), around]), False
    return around, False


def _metadata(c: Cond) -> tuple[Part, bool]:
    key, op, value = c.field, c.op, c.value
    path = metadata_path(key)
    if op == "exists":
        return (_has(key) if value else models.Filter(must_not=[_has(key)])), True
    if op == "eq":
        part, exact = _equals(path, value)
        return _scalar(key, part), exact
    if op == "in":
        strings = [v for v in value if isinstance(v, str)]
        parts: list[tuple[Part, bool]] = []
        if strings:
            any_of = models.FieldCondition(key=path, match=models.MatchAny(any=strings))
            parts.append((any_of, True))
        parts.extend(_equals(path, v) for v in value if not isinstance(v, str))
        part, exact = _or(parts)
        return _scalar(key, part), exact
    if op in ("gt", "gte", "lt", "lte"):
        if not _number(value):
            return _has(key), False  # a string comparison: not in Qdrant
        if _small(value):
            return _scalar(key, _range(path, **{op: float(value)})), True
        # widened to a float64 bound on the safe side (gt -> gte, lt -> lte)
        if op in ("gt", "gte"):
            return _scalar(key, _range(path, gte=_below(value))), False
        return _scalar(key, _range(path, lte=_above(value))), False
    if op == "contains":
        if isinstance(value, str):
            in_list = _in_list(key, _match(path, value))
            a_string = models.Filter(must=[_has(key)], must_not=[_is_list(key)])
            return models.Filter(should=[in_list, a_string]), False
        if value is None:
            return _is_list(key), False
        part, exact = _equals(path, value)
        return _in_list(key, part), exact
    if op == "icontains":
        return models.Filter(must=[_has(key)], must_not=[_is_list(key)]), False
    raise ValueError(f"unknown operator {op!r}")


__all__ = ["ALL", "EXACT_NUMBER", "NOTHING", "Pushed", "compile_filter", "with_condition"]
