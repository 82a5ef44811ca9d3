"""Seeded generators of records and filters, shared by the conformance suites.

Everything here is deterministic and needs nothing beyond the standard library: a suite
builds a :class:`random.Random` from a fixed seed, draws a corpus with :func:`corpus` and
filters with :class:`FilterGenerator`, and compares a store's answers with the brute-force
reference :func:`memsift.filters.evaluate`.

The value pools are chosen where stores tend to differ from the reference evaluator:

- strings holding ``%``, ``_``, quotes and backslashes (a store that compiles ``contains`` or
  ``icontains`` to SQL ``LIKE`` without escaping treats them as wildcards);
- non-ASCII case: ``icontains`` folds both sides with Python's ``str.lower``, not
  ``str.casefold``, so ``"ss"`` is *not* in ``"Straße"``, ``"fi"`` not in ``"ﬁle"`` and
  ``"\u03bf\u03c3"`` not in ``"ΟΔΟΣ"`` (whose lower case ends in a final sigma);
- integers beyond 2**53 (2**53 and 2**53 + 1 differ; a store reading JSON numbers as
  doubles cannot tell them apart) up to the 64-bit limits, floats, booleans (``True`` is not
  ``1``), JSON null (present, unlike a missing key), nested lists (``contains`` looks at the
  top-level elements only);
- timestamps that differ by one microsecond, one second, or only in the time of day.

The hypothesis strategies of earlier versions (``filters``, ``metadata``, ...) are still
available as attributes of this module, built on first access; they need ``hypothesis``,
which nothing else in :mod:`memsift.testing` imports.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from memsift.filters import canonical_timestamp
from memsift.interfaces import MemoryRecord

__all__ = [
    "FAMILIES",
    "KEYS",
    "NEEDLES",
    "NUMBERS",
    "SCOPE_VALUES",
    "TEXTS",
    "WORDS",
    "FilterGenerator",
    "corpus",
    "timestamp_operands",
]

#: Metadata keys of the generated corpus.
KEYS: Final = ("text", "num", "flag", "tags", "maybe", "n", "group", "bucket")

#: The scope ids of the generated corpus, per scope field.
SCOPE_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "user_id": ("u1", "u2", "u3", "u4"),
    "agent_id": ("a1", "a2", "a3"),
    "run_id": ("r1", "r2", "r3", "r4", "r5", "r6"),
}
#: Scope operands besides the ids themselves: near misses, prefixes, case.
SCOPE_NEAR: Final = ("u", "U1", "u10", "a", "A2", "r", "r7", "1", "z", "")

#: Stored strings (metadata ``text``).
TEXTS: Final = (
    "abc",
    "a_c",
    "a%c",
    "abbc",
    "100%",
    "100 percent",
    "50% off",
    "under_score",
    "underXscore",
    "it's",
    'say "hi"',
    "back\\slash",
    "Straße",
    "STRASSE",
    "ﬁle",
    "FILE",
    "ﬆop",
    "ΟΔΟΣ",
    "οδοσ",
    "ÄRGER",
    "ärger",
    "İstanbul",
    "istanbul",
    "ꭰ cherokee",
    "日本語のテキスト",
    "emoji 🎉 party",
    "",
    " ",
    "Red",
    "red",
)
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
#: Stored numbers (metadata ``num``): ints beyond 2**53, the 64-bit limits, floats.
NUMBERS: Final = (
    0,
    1,
    -1,
    2,
    3,
    7,
    1.0,
    0.5,
    -2.5,
    2.0,
    1e-9,
    2**53,
    2**53 + 1,
    2**53 + 2,
    -(2**53) - 1,
    2**62,
    2**63 - 1,
    -(2**63),
    10**18,
    10**18 + 1,
    9007199254740992.0,
    1e18,
)
#: Number operands besides :data:`NUMBERS`.
NUMBER_NEAR: Final = (2**53 - 1, 1.5, -3, 100, 2**63 - 2, -(2**63) + 1, 1e300, -1e-300)
#: Stored values of ``flag``: booleans next to the numbers and strings that look like them.
FLAGS: Final = (True, False, 1, 0, 1.0, 0.0, None, "true", "1", "")
#: Stored values of ``tags``: lists (nested ones included), and a few non-lists.
TAGS: Final[tuple[Any, ...]] = (
    ["a", "b"],
    ["a", ["b", "c"]],
    ["x", ["y"]],
    [["a"]],
    [1, 2],
    [2**53 + 1],
    [2**53],
    [1.0],
    [True],
    [False, None],
    [None],
    [],
    ["A"],
    ["Straße"],
    [{"k": "a"}],
    "a b",
    "b",
    3,
)
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
#: Stored values of ``maybe``: JSON null, falsy values, a nested object.
MAYBES: Final = (None, "x", 0, False, "", {"k": 1}, [None])

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

#: Words of the memory texts (so the corpus also serves keyword-capable stores).
WORDS: Final = (
    "alice",
    "bob",
    "lisbon",
    "tea",
    "report",
    "friday",
    "meeting",
    "nurse",
    "river",
    "cello",
    "Zoë",
    "Köln",
)

_BASE: Final = datetime(2026, 3, 2, tzinfo=timezone.utc)
#: An instant several records share up to a microsecond or a second.
PIVOT: Final = datetime(2026, 3, 3, 12, 0, 0, tzinfo=timezone.utc)
_PIVOT_OFFSETS: Final = (
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(microseconds=2),
    timedelta(microseconds=-1),
    timedelta(seconds=1),
    timedelta(seconds=-1),
    timedelta(hours=-12),  # midnight of the same day
    timedelta(hours=11, minutes=59, seconds=59, microseconds=999_999),  # its last instant
)
_UPDATE_OFFSETS: Final = (
    timedelta(0),
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(seconds=1),
    timedelta(hours=3),
    timedelta(days=2),
)


def _stamp(moment: datetime) -> str:
    return canonical_timestamp(moment)


def corpus(n: int, seed: int) -> list[MemoryRecord]:
    """``n`` records (``n`` >= 16) whose fields mix every kind the filter language compares.

    Deterministic for a given ``(n, seed)``. Every record has at least one scope id; its
    metadata holds ``n`` (its index: unique), ``group`` (index % 50), ``bucket`` (index % 6)
    and, each present or absent at random, ``text``, ``num``, ``flag``, ``tags``, ``maybe``.
    Several records share an instant up to a microsecond or a second, or share a day.
    """
    rng = random.Random(seed)
    out: list[MemoryRecord] = []
    for i in range(n):
        if i < len(_PIVOT_OFFSETS):
            created = PIVOT + _PIVOT_OFFSETS[i]
        else:
            created = _BASE + timedelta(
                days=rng.randrange(4),
                seconds=rng.randrange(86_400),
                microseconds=rng.randrange(1_000_000),
            )
        updated = created + rng.choice(_UPDATE_OFFSETS)
        meta: dict[str, Any] = {"n": i, "group": i % 50, "bucket": i % 6}
        for key, pool in (
            ("text", TEXTS),
            ("num", NUMBERS),
            ("flag", FLAGS),
            ("tags", TAGS),
            ("maybe", MAYBES),
        ):
            # each stored value appears at least once, then at random (or not at all)
            if i < len(pool):
                meta[key] = _copy(pool[(i * 7 + len(key)) % len(pool)])
            elif rng.random() < 0.8:
                meta[key] = _copy(rng.choice(pool))
        scope: dict[str, str | None] = {
            f: (rng.choice(values) if rng.random() < 0.8 else None)
            for f, values in SCOPE_VALUES.items()
        }
        if not any(scope.values()):
            scope["user_id"] = SCOPE_VALUES["user_id"][i % 4]
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        out.append(
            MemoryRecord(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                memory=f"memory {i}: {words}",
                hash=f"hash-{seed}-{i}",
                metadata=meta,
                user_id=scope["user_id"],
                agent_id=scope["agent_id"],
                run_id=scope["run_id"],
                created_at=_stamp(created),
                updated_at=_stamp(updated),
            )
        )
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def timestamp_operands(records: Sequence[MemoryRecord]) -> list[Any]:
    """Timestamp operands: stored instants and their neighbours (one microsecond, one
    second), midnights and noons, in several spellings (offsets, ``Z``, naive, datetimes)."""
    ops: list[Any] = []
    for offset in _PIVOT_OFFSETS:
        moment = PIVOT + offset
        ops.append(_stamp(moment))
        ops.append(_stamp(moment + timedelta(microseconds=1)))
        ops.append(_stamp(moment - timedelta(microseconds=1)))
    for day in range(5):
        midnight = _BASE + timedelta(days=day)
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


# --------------------------------------------------------------------------- hypothesis

_LEGACY = frozenset({"filters", "metadata", "json_values", "scalar_values", "scope_values"})
_legacy_cache: dict[str, Any] = {}


def hypothesis_strategies() -> dict[str, Any]:
    """The hypothesis strategies of earlier versions (``filters``, ``metadata``, ...).

    Imports ``hypothesis`` (install it yourself); nothing else in this module needs it.
    """
    if _legacy_cache:
        return _legacy_cache
    from hypothesis import strategies as st

    words = ("red", "Red", "blue", "BLUE", "grün", "ÄRGER", "a'b", 'x"y', "")
    keys = ("color", "size", "tags", "flag")
    scalar_values = st.one_of(
        st.sampled_from(words),
        st.integers(min_value=-3, max_value=3),
        st.sampled_from([0.5, 1.0, -2.5, 2.0]),
        st.booleans(),
        st.none(),
    )
    json_values = st.one_of(scalar_values, st.lists(scalar_values, max_size=3))
    metadata = st.dictionaries(st.sampled_from(keys), json_values, max_size=4)
    scope_values = st.sampled_from(["u1", "u2", "u3"])
    ops_any = st.sampled_from(["eq", "ne", "contains"])
    ops_order = st.sampled_from(["gt", "gte", "lt", "lte"])

    def condition() -> Any:
        return st.one_of(
            scalar_values,
            st.just("*"),
            st.lists(scalar_values, min_size=1, max_size=3),
            st.builds(lambda op, v: {op: v}, ops_any, scalar_values),
            st.builds(
                lambda op, v: {op: v},
                ops_order,
                st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -2.5]), st.sampled_from(words)),
            ),
            st.builds(lambda v: {"icontains": v}, st.sampled_from(words)),
            st.builds(
                lambda op, v: {op: v},
                st.sampled_from(["in", "nin"]),
                st.lists(scalar_values, min_size=1, max_size=3),
            ),
        )

    metadata_leaf = st.sampled_from(keys).flatmap(lambda k: condition().map(lambda c: {k: c}))
    scope_leaf = st.builds(
        lambda op, v: {"user_id": v if op == "eq" else {op: v}},
        st.sampled_from(["eq", "ne"]),
        scope_values,
    )
    leaf = st.one_of(metadata_leaf, metadata_leaf, scope_leaf)
    filters = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"AND": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"OR": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"NOT": xs}, st.lists(inner, min_size=1, max_size=2)),
        ),
        max_leaves=6,
    )
    _legacy_cache.update(
        filters=filters,
        metadata=metadata,
        json_values=json_values,
        scalar_values=scalar_values,
        scope_values=scope_values,
    )
    return _legacy_cache


def __getattr__(name: str) -> Any:
    if name in _LEGACY:
        return hypothesis_strategies()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
