"""The filters of the store suite, over the fields of :func:`memsift.testing.store_corpus.corpus`:
seeded random ones (:class:`FilterGenerator`, by family) and hand-written edge cases per topic
(:data:`EDGE_CASES`). Each must give the answer of :func:`memsift.filters.evaluate`.

The operands are drawn from the stored values of :mod:`memsift.testing.store_corpus` and from
pools of near misses beside them (prefixes, other cases, neighbouring numbers and instants),
so that they hit stored values, and miss them narrowly. Everything here is deterministic and
needs nothing beyond the standard library.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from memsift.filters import canonical_timestamp
from memsift.records import MemoryRecord
from memsift.testing.store_corpus import (
    BASE,
    FLAGS,
    MAYBES,
    NUMBERS,
    PIVOT,
    PIVOT_OFFSETS,
    SCOPE_VALUES,
    TEXTS,
)

__all__ = [
    "EDGE_CASES",
    "FAMILIES",
    "NEEDLES",
    "NUMBER_NEAR",
    "SCOPE_NEAR",
    "TAG_NEEDLES",
    "FilterGenerator",
    "timestamp_operands",
]

#: Scope operands besides the ids themselves: near misses, prefixes, case.
SCOPE_NEAR: Final = ("u", "U1", "u10", "a", "A2", "r", "r7", "1", "z", "")

#: ``contains`` / ``icontains`` operands (and string comparison operands).
NEEDLES: Final = (
    "a",
    "A",
    "%",
    "_",
    "a_c",
    "a%c",
    "0%",
    "%c",
    "_c",
    "'",
    '"',
    "\\",
    "'s",
    "ss",
    "SS",
    "STRASSE",
    "straße",
    "ß",
    "fi",
    "FI",
    "ﬁ",
    "st",
    "ST",
    "\u03bf\u03c3",  # omicron, sigma
    "ος",
    "ς",
    "Σ",
    "ä",
    "Ä",
    "ärger",
    "i̇",
    "İ",
    "ist",
    "\u13a0",  # CHEROKEE LETTER A (its lower case is U+AB70)
    "ꭰ",
    "日本",
    "🎉",
    "",
    " ",
    "red",
    "RED",
    "e",
)
#: Number operands besides :data:`NUMBERS`.
NUMBER_NEAR: Final = (2**53 - 1, 1.5, -3, 100, 2**63 - 2, -(2**63) + 1, 1e300, -1e-300)
#: ``contains`` operands on ``tags``.
TAG_NEEDLES: Final = (
    "a",
    "b",
    "c",
    "y",
    "A",
    1,
    2,
    1.0,
    2**53,
    2**53 + 1,
    True,
    False,
    None,
    "Straße",
    "ss",
    "k",
)
#: Filter families of :class:`FilterGenerator`: the fields each one draws conditions on.
FAMILIES: Final[dict[str, tuple[str, ...]]] = {
    "scope": ("user_id", "agent_id", "run_id"),
    "timestamps": ("created_at", "updated_at"),
    "strings": ("text",),
    "numbers": ("num", "n", "group", "bucket"),
    "null-bool-lists": ("flag", "maybe", "tags"),
    "mixed": (
        "user_id",
        "agent_id",
        "run_id",
        "created_at",
        "updated_at",
        "text",
        "num",
        "flag",
        "tags",
        "maybe",
        "group",
    ),
}


def timestamp_operands(records: Sequence[MemoryRecord]) -> list[Any]:
    """Timestamp operands: stored instants and their neighbours (one microsecond, one
    second), midnights and noons, in several spellings (offsets, ``Z``, naive, datetimes)."""
    ops: list[Any] = []
    for offset in PIVOT_OFFSETS:
        moment = PIVOT + offset
        ops.append(canonical_timestamp(moment))
        ops.append(canonical_timestamp(moment + timedelta(microseconds=1)))
        ops.append(canonical_timestamp(moment - timedelta(microseconds=1)))
    for day in range(5):
        midnight = BASE + timedelta(days=day)
        ops.append(midnight.date().isoformat())  # a date alone means its midnight (UTC)
        ops.append((midnight + timedelta(hours=12)).isoformat())
        ops.append(midnight + timedelta(hours=6, microseconds=500))  # a datetime object
    ops.append("2026-03-03T14:00:00.000001+02:00")  # PIVOT + 1 µs, at another offset
    ops.append("2026-03-03T12:00:00Z")
    ops.append("2026-03-03T12:00:00.000001")  # naive: UTC
    ops.append(datetime(2026, 3, 3, 12, 0, 0, 2))  # naive datetime: UTC
    for r in records[8:40]:
        ops.append(r.created_at)
        ops.append(r.updated_at)
    return ops


class FilterGenerator:
    """Random filter dicts over the fields of :func:`corpus`, drawn from ``rng``.

    ``filter(family)`` returns one filter dict of that family (a key of :data:`FAMILIES`):
    a condition or a small tree of ``AND`` / ``OR`` / ``NOT`` over conditions on the family's
    fields, every operator that is valid on the field appearing, with operands drawn from
    the pools of this module (so they hit stored values, and miss them narrowly).
    """

    def __init__(self, rng: random.Random, records: Sequence[MemoryRecord]) -> None:
        self.rng = rng
        self.stamps = timestamp_operands(records)

    # ------------------------------------------------------------------ operands

    def _operand(self, field: str) -> Any:
        rng = self.rng
        if field in SCOPE_VALUES:
            return rng.choice(SCOPE_VALUES[field] if rng.random() < 0.75 else SCOPE_NEAR)
        if field in ("created_at", "updated_at"):
            return rng.choice(self.stamps)
        if field == "text":
            return rng.choice([*TEXTS, *NEEDLES])
        if field == "num":
            return rng.choice([*NUMBERS, *NUMBER_NEAR, True, False, None, "1"])
        if field in ("n", "group", "bucket"):
            return rng.choice([rng.randrange(-2, 330), rng.randrange(50), rng.randrange(7), 1.0])
        if field == "flag":
            return rng.choice([*FLAGS, 2, "false"])
        if field == "tags":
            return rng.choice([*TAG_NEEDLES, "a b"])
        return rng.choice([*MAYBES[:5], 1, True, "y"])

    def _ordered_operand(self, field: str) -> Any:
        """An operand of gt/gte/lt/lte: a number or a string (never a boolean or null)."""
        for _ in range(20):
            value = self._operand(field)
            if isinstance(value, (int, float, str, datetime)) and not isinstance(value, bool):
                return value
        return 0

    def _nonempty(self, field: str) -> Any:
        for _ in range(20):
            value = self._operand(field)
            if value != "":
                return value
        return "x"

    # ------------------------------------------------------------------ conditions

    def condition(self, field: str) -> dict[str, Any]:
        """One condition on ``field`` in one of the filter language's spellings."""
        rng = self.rng
        stamp = field in ("created_at", "updated_at")
        scope = field in SCOPE_VALUES
        ops = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "literal", "star"]
        if not stamp:
            ops += ["contains", "icontains"]
        op = rng.choice(ops)
        pick = self._nonempty if scope else self._operand
        if op == "literal":
            value = pick(field)
            if isinstance(value, str) and value == "*":
                value = {"eq": "*"}
            return {field: value}
        if op == "star":
            return {field: "*"}
        if op == "exists":
            return {field: {"exists": rng.random() < 0.6}}
        if op in ("in", "nin"):
            items = [pick(field) for _ in range(rng.randint(1, 3))]
            return {field: items if op == "in" and rng.random() < 0.5 else {op: items}}
        if op in ("gt", "gte", "lt", "lte"):
            cond: dict[str, Any] = {op: self._ordered_operand(field)}
            if rng.random() < 0.3:  # a range: two bounds in one operator dict
                other = rng.choice(["lt", "lte"] if op in ("gt", "gte") else ["gt", "gte"])
                bound = self._ordered_operand(field)
                if type(bound) is type(cond[op]) or (_numeric(bound) and _numeric(cond[op])):
                    cond[other] = bound
            return {field: cond}
        if op == "icontains":
            value = pick(field)
            return {field: {"icontains": value if isinstance(value, str) else str(value)}}
        if op == "contains":
            value = pick(field)
            if scope or field == "text":
                value = value if isinstance(value, str) else str(value)
            return {field: {"contains": value}}
        return {field: {op: pick(field)}}

    def tree(self, fields: Sequence[str], depth: int) -> dict[str, Any]:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.4:
            return self.condition(rng.choice(list(fields)))
        op = rng.choice(["AND", "OR", "NOT", "implicit"])
        children = [self.tree(fields, depth - 1) for _ in range(rng.randint(1, 3))]
        if op == "implicit":  # several keys in one dict: an implicit AND
            merged: dict[str, Any] = {}
            for child in children:
                for key, value in child.items():
                    if key in merged:
                        return {"AND": children}
                    merged[key] = value
            return merged
        return {op: children}

    def filter(self, family: str) -> dict[str, Any]:
        """One filter of ``family``; a third of them pinned to a user, as searches are."""
        spec = self.tree(FAMILIES[family], depth=3)
        if self.rng.random() < 0.33:
            pin = {"user_id": self.rng.choice(SCOPE_VALUES["user_id"])}
            return {"AND": [pin, spec]}
        return spec


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- edge cases

_P = PIVOT.isoformat(timespec="microseconds")
#: Hand-written filters per topic; each must give the reference evaluator's answer.
EDGE_CASES: dict[str, list[dict[str, Any]]] = {
    "scope-fields": [
        {"user_id": "u2"},
        {"agent_id": "a1"},
        {"run_id": "r3"},
        {"user_id": "u1", "agent_id": "a2"},
        {"user_id": "u3", "run_id": "r5"},
        {"agent_id": "a3", "run_id": "r1"},
        {"user_id": "u4", "agent_id": "a1", "run_id": "r2"},
        {"user_id": "u1", "agent_id": {"ne": "a1"}},
        {"user_id": "u2", "run_id": {"nin": ["r1", "r2"]}},
        {"user_id": "u2", "agent_id": {"exists": False}},
        {"user_id": "u3", "run_id": "*"},
        {"agent_id": {"in": ["a1", "a3"]}, "run_id": {"gte": "r4"}},
        {"OR": [{"agent_id": "a2"}, {"run_id": "r6"}]},
        {"NOT": [{"agent_id": "a1"}]},
        {"run_id": {"icontains": "R1"}},
    ],
    "timestamps-time-of-day": [
        {"created_at": {"gt": "2026-03-03T06:00:00+00:00"}},
        {"created_at": {"gte": "2026-03-03T12:00:00+00:00", "lt": "2026-03-03T18:00:00+00:00"}},
        {"created_at": {"lt": "2026-03-04T09:30:00+00:00"}},
        {"updated_at": {"gt": "2026-03-03T23:59:59.999999+00:00"}},
        {"updated_at": {"lte": "2026-03-02T12:00:00Z"}},
        {"created_at": {"gt": "2026-03-03T14:00:00+02:00"}},
        {"created_at": {"gte": "2026-03-03"}},
        {"created_at": "2026-03-03T00:00:00+00:00"},
    ],
    "timestamps-sub-second": [
        {"created_at": _P},
        {"created_at": {"gt": _P}},
        {"created_at": {"gte": _P}},
        {"created_at": {"lt": _P}},
        {"created_at": {"ne": _P}},
        {"created_at": {"gt": "2026-03-03T12:00:00.000001+00:00"}},
        {"created_at": {"lte": "2026-03-03T12:00:00.000001+00:00"}},
        {"created_at": {"in": ["2026-03-03T12:00:00.000002+00:00", "2026-03-03T12:00:01"]}},
        {"created_at": {"gt": "2026-03-03T11:59:59.999999Z", "lt": "2026-03-03T12:00:00.000002Z"}},
        {"updated_at": {"gt": _P, "lt": "2026-03-03T12:00:01+00:00"}},
        {"updated_at": {"nin": [_P]}},
    ],
    "icontains-wildcards-and-quotes": [
        {"text": {"icontains": "%"}},
        {"text": {"icontains": "_"}},
        {"text": {"icontains": "a_c"}},
        {"text": {"icontains": "A%C"}},
        {"text": {"icontains": "0%"}},
        {"text": {"contains": "_"}},
        {"text": {"contains": "a%c"}},
        {"text": {"icontains": "'"}},
        {"text": {"icontains": '"HI"'}},
        {"text": {"icontains": "\\"}},
        {"text": {"contains": "it's"}},
        {"text": "a_c"},
        {"text": {"gt": "a_c"}},
    ],
    "icontains-case-folding": [
        {"text": {"icontains": "ss"}},
        {"text": {"icontains": "STRASSE"}},
        {"text": {"icontains": "straße"}},
        {"text": {"icontains": "ß"}},
        {"text": {"icontains": "fi"}},
        {"text": {"icontains": "ﬁ"}},
        {"text": {"icontains": "ST"}},
        {"text": {"icontains": "\u03bf\u03c3"}},  # omicron, sigma
        {"text": {"icontains": "ος"}},
        {"text": {"icontains": "Σ"}},
        {"text": {"icontains": "ärger"}},
        {"text": {"icontains": "Ä"}},
        {"text": {"icontains": "i̇"}},
        {"text": {"icontains": "ist"}},
        {"text": {"icontains": "\u13a0"}},  # CHEROKEE LETTER A
        {"text": {"icontains": "RED"}},
        {"text": {"contains": "red"}},
    ],
    "big-integers": [
        {"num": 2**53},
        {"num": 2**53 + 1},
        {"num": {"gt": 2**53}},
        {"num": {"gte": 2**53 + 1}},
        {"num": {"lt": 2**53 + 1}},
        {"num": {"in": [2**53 + 2, 10**18 + 1]}},
        {"num": {"ne": 2**53}},
        {"num": 10**18},
        {"num": 10**18 + 1},
        {"num": {"gt": 10**18}},
        {"num": 2**63 - 1},
        {"num": {"lt": -(2**63) + 1}},
        {"num": 9007199254740992.0},
        {"num": {"gt": 9007199254740992.0}},
        {"tags": {"contains": 2**53 + 1}},
        {"tags": {"contains": 2**53}},
    ],
    "numbers-and-booleans": [
        {"num": 1},
        {"num": 1.0},
        {"num": {"gt": 0.5, "lt": 3}},
        {"num": {"lte": -1}},
        {"num": {"in": [0, 2.0, -2.5]}},
        {"flag": True},
        {"flag": 1},
        {"flag": False},
        {"flag": 0},
        {"flag": {"in": [True, 0]}},
        {"flag": {"ne": True}},
        {"flag": {"gt": 0}},
        {"flag": {"gte": 0.5}},
        {"flag": "true"},
        {"tags": {"contains": True}},
        {"tags": {"contains": 1}},
    ],
    "null-and-missing": [
        {"maybe": None},
        {"maybe": {"ne": None}},
        {"maybe": "*"},
        {"maybe": {"exists": False}},
        {"maybe": {"in": [None, "x"]}},
        {"maybe": {"nin": [None]}},
        {"flag": None},
        {"tags": {"contains": None}},
        {"NOT": [{"maybe": None}]},
        {"text": {"ne": "abc"}},
    ],
    "nested-lists": [
        {"tags": {"contains": "a"}},
        {"tags": {"contains": "b"}},
        {"tags": {"contains": "c"}},
        {"tags": {"contains": "y"}},
        {"tags": {"contains": "k"}},
        {"tags": {"icontains": "A"}},
        {"tags": "b"},
        {"tags": {"in": ["a", "b"]}},
        {"tags": {"contains": "Straße"}},
    ],
    "logic": [
        {"OR": [{"num": {"gt": 2**53}}, {"text": {"icontains": "ss"}}]},
        {"AND": [{"user_id": "u1"}, {"NOT": [{"tags": {"contains": "a"}}]}]},
        {"NOT": [{"OR": [{"flag": True}, {"maybe": None}]}]},
        {"user_id": "u2", "OR": [{"created_at": {"gt": _P}}, {"group": {"lt": 3}}]},
        {"AND": [{"OR": [{"agent_id": "a1"}, {"run_id": "r2"}]}, {"bucket": {"ne": 3}}]},
    ],
}
