"""The generated records of the store suite: :func:`corpus`, whose fields mix every kind the
filter language compares, and :func:`make_records`, a few simple ones.

Everything here is deterministic and needs nothing beyond the standard library (and numpy for
:func:`make_records`). The stored values are chosen where stores tend to differ from the
reference evaluator :func:`memsift.filters.evaluate`:

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
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import numpy as np

from memsift.filters import canonical_timestamp
from memsift.records import MemoryRecord

__all__ = [
    "BASE",
    "FLAGS",
    "KEYS",
    "MAYBES",
    "NUMBERS",
    "PIVOT",
    "PIVOT_OFFSETS",
    "SCOPE_VALUES",
    "TAGS",
    "TEXTS",
    "WORDS",
    "corpus",
    "make_records",
]

#: Metadata keys of the generated corpus.
KEYS: Final = ("text", "num", "flag", "tags", "maybe", "n", "group", "bucket")

#: The scope ids of the generated corpus, per scope field.
SCOPE_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "user_id": ("u1", "u2", "u3", "u4"),
    "agent_id": ("a1", "a2", "a3"),
    "run_id": ("r1", "r2", "r3", "r4", "r5", "r6"),
}
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
#: Stored values of ``maybe``: JSON null, falsy values, a nested object.
MAYBES: Final = (None, "x", 0, False, "", {"k": 1}, [None])

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

BASE: Final = datetime(2026, 3, 2, tzinfo=timezone.utc)
#: An instant several records share up to a microsecond or a second.
PIVOT: Final = datetime(2026, 3, 3, 12, 0, 0, tzinfo=timezone.utc)
PIVOT_OFFSETS: Final = (
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
        if i < len(PIVOT_OFFSETS):
            created = PIVOT + PIVOT_OFFSETS[i]
        else:
            created = BASE + timedelta(
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


def make_records(n: int, seed: int = 0) -> list[MemoryRecord]:
    """``n`` simple records over three users (kept for plugins' own tests)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        stamp = f"2026-01-{1 + i % 28:02d}T00:00:{i % 60:02d}.000000+00:00"
        records.append(
            MemoryRecord(
                id=str(uuid.UUID(int=int(rng.integers(1 << 62)) * 4 + i % 4)),
                memory=f"memory number {i}",
                hash=f"h{i}",
                metadata={"color": ["red", "blue", "Red"][i % 3], "size": i % 7, "n": i},
                user_id=f"u{1 + i % 3}",
                agent_id="agent" if i % 2 else None,
                created_at=stamp,
                updated_at=stamp,
            )
        )
    return records
