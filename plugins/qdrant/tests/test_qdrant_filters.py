"""The push-down itself: what Qdrant answers on its own, before the store's check in Python.

For every filter, a part compiled as *exact* must make Qdrant return exactly the records
:func:`memsift.filters.evaluate` accepts, and a *superset* part at least those. This is what
lets the store trust an exact push-down for ``NOT`` and read a superset until it has enough.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from memsift.filters import evaluate as reference
from memsift.filters import parse_filter
from memsift.testing import strategies
from memsift.testing.vector_store import DIMS, EDGE_CASES, IDENTITY
from memsift_qdrant import QdrantStore, QdrantStoreConfig
from memsift_qdrant.filters import compile_filter

SEED = 20260302


def unit_vectors(rng: np.random.Generator, n: int, dims: int = DIMS) -> Any:
    """``n`` random unit vectors (float32)."""
    v = rng.normal(size=(n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[QdrantClient, list[Any]]]:
    client = QdrantClient(location=":memory:")
    store = QdrantStore(QdrantStoreConfig(client=client))
    store.open(IDENTITY)
    records = strategies.corpus(320, seed=SEED)
    store.insert(records, unit_vectors(np.random.default_rng(SEED), len(records)))
    yield client, records
    store.close()
    client.close()


def _qdrant_ids(client: QdrantClient, qfilter: models.Filter | None) -> set[str]:
    points, _ = client.scroll(
        "memsift", scroll_filter=qfilter, limit=10_000, with_payload=["memory_id"]
    )
    return {str((p.payload or {})["memory_id"]) for p in points}


def _specs() -> list[dict[str, Any]]:
    specs = [spec for topic in EDGE_CASES.values() for spec in topic]
    rng = random.Random(SEED)
    records = strategies.corpus(320, seed=SEED)
    gen = strategies.FilterGenerator(rng, records)
    for family in strategies.FAMILIES:
        specs.extend(gen.filter(family) for _ in range(60))
    return specs


def test_exact_push_downs_are_exact_and_the_rest_supersets(
    loaded: tuple[QdrantClient, list[Any]],
) -> None:
    client, records = loaded
    problems = []
    exact = 0
    for spec in _specs():
        parsed = parse_filter(spec)
        pushed = compile_filter(parsed)
        want = {r.id for r in records if reference(parsed, r)}
        if pushed.nothing:
            if want:
                problems.append(f"{spec!r}: compiled to nothing, but {len(want)} match")
            continue
        got = _qdrant_ids(client, pushed.filter)
        if pushed.exact:
            exact += 1
            if got != want:
                problems.append(
                    f"{spec!r}: exact push-down returns {len(got)}, {len(want)} match "
                    f"(extra {sorted(got - want)[:2]}, missing {sorted(want - got)[:2]})"
                )
        elif not want <= got:
            problems.append(f"{spec!r}: the superset misses {len(want - got)} matches")
    assert not problems, "\n".join(problems[:10])
    assert exact > 150  # most filters are decided by Qdrant alone


@pytest.mark.parametrize(
    ("spec", "exact"),
    [
        ({"user_id": "u1"}, True),
        ({"user_id": "u1", "agent_id": "a1", "run_id": "r1"}, True),
        ({"user_id": {"in": ["u1", "u2"]}}, True),
        ({"user_id": {"nin": ["u1"]}}, True),
        ({"agent_id": {"exists": False}}, True),
        ({"user_id": {"gt": "u1"}}, False),
        ({"run_id": {"icontains": "R"}}, False),
        ({"created_at": {"gt": "2026-03-03T12:00:00.000001Z"}}, True),
        ({"updated_at": {"nin": ["2026-03-03T12:00:00Z"]}}, True),
        ({"text": "abc"}, True),
        ({"text": {"ne": "abc"}}, True),
        ({"flag": True}, True),
        ({"maybe": None}, True),
        ({"num": 1}, True),
        ({"num": {"in": [1, "x", None, False]}}, True),
        ({"num": {"gt": 0.5, "lte": 3}}, True),
        ({"num": 2**53 + 1}, False),
        ({"num": {"gt": 2**53}}, False),
        ({"text": {"gt": "a"}}, False),
        ({"tags": {"contains": 1}}, True),
        ({"tags": {"contains": True}}, True),
        ({"tags": {"contains": "a"}}, False),
        ({"tags": {"contains": None}}, False),
        ({"text": {"icontains": "ss"}}, False),
        ({"text": "*"}, True),
        ({"NOT": [{"text": {"icontains": "a"}}]}, False),
        ({"OR": [{"user_id": "u1"}, {"text": {"contains": "a"}}]}, False),
        ({"user_id": "u1", "text": {"icontains": "a"}}, False),
    ],
)
def test_what_is_pushed_down_exactly(spec: dict[str, Any], exact: bool) -> None:
    assert compile_filter(parse_filter(spec)).exact is exact


def test_a_scope_is_always_in_the_pushed_filter() -> None:
    """Even beside a condition Qdrant cannot decide, the scope narrows the request."""
    pushed = compile_filter(parse_filter({"user_id": "rare", "text": {"icontains": "x"}}))
    assert pushed.filter is not None
    assert "rare" in pushed.filter.model_dump_json()


def test_a_filter_nothing_matches_makes_no_request() -> None:
    assert compile_filter(parse_filter({"created_at": {"exists": False}})).nothing
    assert compile_filter(parse_filter({"NOT": [{"created_at": "*"}], "user_id": "u"})).nothing
