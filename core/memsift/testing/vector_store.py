"""``VectorStoreConformance``: the contract every vector store must keep.

The central check: for every filter, the store returns exactly the records that
:func:`memsift.filters.evaluate` accepts (pre-filtering; a selective filter never yields
fewer hits than exist), ranked exactly by similarity.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from memsift.errors import EmbedderMismatchError, InvalidInputError
from memsift.filters import evaluate, parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord, VectorStore
from memsift.testing import strategies

DIMS = 8
IDENTITY = EmbedderIdentity(provider="conformance", model="random-unit", dims=DIMS)
StoreFactory = Callable[[], VectorStore]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    v = rng.normal(size=(n, DIMS)).astype(np.float32)
    out: np.ndarray[Any, np.dtype[np.float32]] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def make_records(n: int, seed: int = 0) -> list[MemoryRecord]:
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


class VectorStoreConformance:
    """Subclass it and provide ``make_store``: a fixture returning a factory that opens a
    new store object on the *same* underlying storage each time it is called (so the suite
    can check persistence). The suite calls ``open(IDENTITY)`` itself and closes stores.
    """

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError("provide a `make_store` fixture in your test class")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Iterator[VectorStore]:
        store = make_store()
        store.open(IDENTITY)
        yield store
        store.close()

    def _fill(self, store: VectorStore, n: int, seed: int = 0) -> tuple[list[MemoryRecord], Any]:
        records = make_records(n, seed)
        vectors = _unit(np.random.default_rng(seed + 1), n)
        store.insert(records, vectors)
        return records, vectors

    def test_insert_then_get_round_trips(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 5)
        for r in records:
            assert store.get(r.id) == r
        assert store.get("no-such-id") is None

    def test_search_is_exact_and_ranked(self, store: VectorStore) -> None:
        records, vectors = self._fill(store, 300)
        query = _unit(np.random.default_rng(99), 1)[0]
        hits = store.search(query, filters=parse_filter({"user_id": "u1"}), limit=10)
        allowed = [i for i, r in enumerate(records) if r.user_id == "u1"]
        sims = vectors[allowed] @ query
        expected = [records[allowed[i]].id for i in np.argsort(-sims)[:10]]
        assert [h.record.id for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(sorted(sims, reverse=True)[:10], abs=1e-5)

    def test_selective_filter_returns_every_match(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 400)
        query = _unit(np.random.default_rng(5), 1)[0]
        spec = {"user_id": "u2", "n": {"in": [1, 4, 7, 10]}}
        hits = store.search(query, filters=parse_filter(spec), limit=50)
        expected = {r.id for r in records if r.user_id == "u2" and r.metadata["n"] in (1, 4, 7, 10)}
        assert {h.record.id for h in hits} == expected

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(spec=strategies.filters)
    def test_filters_agree_with_the_reference_evaluator(
        self, make_store: StoreFactory, spec: dict[str, Any]
    ) -> None:
        store = self._shared_store(make_store)
        records = self._shared_records
        parsed = parse_filter(spec)
        expected = {r.id for r in records if evaluate(parsed, r)}
        query = _unit(np.random.default_rng(3), 1)[0]
        hits = store.search(query, filters=parsed, limit=len(records) + 5)
        assert {h.record.id for h in hits} == expected
        listed = store.list_records(filters=parsed, limit=len(records) + 5)
        assert {r.id for r in listed} == expected

    _shared: VectorStore | None = None
    _shared_records: list[MemoryRecord]
    _shared_factory: StoreFactory | None = None

    def _shared_store(self, make_store: StoreFactory) -> VectorStore:
        # One populated store serves every hypothesis example of a test: 150 records whose
        # metadata mixes every JSON type the filter language compares.
        cls = type(self)
        if cls._shared is None or cls._shared_factory is not make_store:
            if cls._shared is not None:
                cls._shared.close()
            store = make_store()
            store.open(IDENTITY)
            store.reset()
            store.open(IDENTITY)
            records = random_records(150, seed=11)
            store.insert(records, _unit(np.random.default_rng(11), len(records)))
            cls._shared, cls._shared_records, cls._shared_factory = store, records, make_store
        assert cls._shared is not None
        return cls._shared

    def test_update_text_metadata_and_vector(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 20)
        target = records[3]
        changed = MemoryRecord(
            **{**target.__dict__, "memory": "new text", "hash": "new", "metadata": {"k": True}}
        )
        store.update(changed, None)
        assert store.get(target.id) == changed
        query = _unit(np.random.default_rng(42), 1)[0]
        store.update(changed, query)
        hits = store.search(query, filters=parse_filter({"user_id": target.user_id}), limit=1)
        assert hits[0].record.id == target.id
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)

    def test_delete(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 30)
        gone = [records[0].id, records[1].id]
        assert store.delete([*gone, "no-such-id"]) == 2
        assert store.get(records[0].id) is None
        hits = store.search(
            _unit(np.random.default_rng(1), 1)[0], filters=parse_filter({"user_id": "*"}), limit=100
        )
        assert not set(gone) & {h.record.id for h in hits}
        assert len(hits) == 28

    def test_list_is_newest_first_and_limited(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 30)
        listed = store.list_records(filters=parse_filter({"user_id": "u1"}), limit=5)
        mine = sorted(
            (r for r in records if r.user_id == "u1"), key=lambda r: r.created_at, reverse=True
        )
        assert [r.created_at for r in listed] == [r.created_at for r in mine[:5]]

    def test_wrong_dimension_and_nan_are_rejected(self, store: VectorStore) -> None:
        records = make_records(2)
        with pytest.raises(InvalidInputError):
            store.insert(records, np.ones((2, DIMS + 1), dtype=np.float32))
        bad = np.ones((2, DIMS), dtype=np.float32)
        bad[1, 0] = np.nan
        with pytest.raises(InvalidInputError):
            store.insert(records, bad)
        assert store.get(records[0].id) is None  # nothing half-written
        with pytest.raises(InvalidInputError):
            store.search(np.ones(DIMS + 2, dtype=np.float32), filters=parse_filter(None), limit=3)

    def test_persists_across_reopen(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.open(IDENTITY)
        records, vectors = self._fill(store, 25)
        store.close()
        again = make_store()
        again.open(IDENTITY)
        try:
            for r in records:
                assert again.get(r.id) == r
            hits = again.search(
                vectors[4], filters=parse_filter({"user_id": records[4].user_id}), limit=1
            )
            assert hits[0].record.id == records[4].id
        finally:
            again.close()

    def test_refuses_another_embedder(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.open(IDENTITY)
        self._fill(store, 3)
        store.close()
        other = make_store()
        try:
            with pytest.raises(EmbedderMismatchError):
                other.open(EmbedderIdentity(provider="other", model="other", dims=DIMS))
        finally:
            other.close()

    def test_reset_empties_the_store(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 10)
        store.reset()
        store.open(IDENTITY)
        assert store.get(records[0].id) is None
        assert store.list_records(filters=parse_filter(None), limit=100) == []


def random_records(n: int, seed: int) -> list[MemoryRecord]:
    """Records with metadata drawn from the values of :mod:`memsift.testing.strategies`."""
    rng = random.Random(seed)
    scalars: list[Any] = [*strategies.WORDS, -3, -1, 0, 1, 2, 3, 0.5, 1.0, -2.5, True, False, None]
    out = []
    for i in range(n):
        meta: dict[str, Any] = {}
        for key in strategies.KEYS:
            roll = rng.random()
            if roll < 0.2:
                continue
            if roll < 0.35:
                meta[key] = [rng.choice(scalars) for _ in range(rng.randint(0, 3))]
            else:
                meta[key] = rng.choice(scalars)
        stamp = f"2026-02-{1 + i % 28:02d}T00:00:00.000000+00:00"
        out.append(
            MemoryRecord(
                id=f"m{i}",
                memory=f"memory {i}",
                hash=f"h{i}",
                metadata=meta,
                user_id=rng.choice(["u1", "u2", "u3", None]) if i % 5 else "u1",
                agent_id=rng.choice(["a1", None]),
                created_at=stamp,
                updated_at=stamp,
            )
        )
    return out
