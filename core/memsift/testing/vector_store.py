"""``VectorStoreConformance``: the contract every vector store must keep.

The central check: for every filter, the store returns exactly the records that
:func:`memsift.filters.evaluate` accepts (pre-filtering: a selective filter never yields
fewer hits than exist), the best ``limit`` of them by similarity, best first. The suite
compares the store with that brute-force reference (:mod:`memsift.testing.store_reference`)
over a corpus of a few hundred records (:func:`memsift.testing.store_corpus.corpus`) for
hand-written edge cases of every field kind and for several hundred filters drawn from a
seeded :class:`random.Random` (:mod:`memsift.testing.store_filters`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from memsift.errors import EmbedderMismatchError, InvalidInputError
from memsift.filters import SCOPE_FIELDS, evaluate, parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord, VectorHit, VectorStore
from memsift.testing import store_corpus, store_filters
from memsift.testing.store_corpus import make_records
from memsift.testing.store_filters import EDGE_CASES
from memsift.testing.store_reference import (
    SCORE_TOL,
    Corpus,
    Vectors,
    fail_on,
    list_problem,
    search_problem,
)

__all__ = [
    "CORPUS_SIZE",
    "DIMS",
    "EDGE_CASES",
    "IDENTITY",
    "SCORE_TOL",
    "Corpus",
    "StoreFactory",
    "VectorStoreConformance",
    "list_problem",
    "make_records",
    "search_problem",
]

DIMS = 8
IDENTITY = EmbedderIdentity(provider="conformance", model="random-unit", dims=DIMS)
StoreFactory = Callable[[], VectorStore]

#: Records of the corpus most tests fill the store with.
CORPUS_SIZE = 320


def _unit(rng: np.random.Generator, n: int) -> Vectors:
    v = rng.normal(size=(n, DIMS)).astype(np.float32)
    out: Vectors = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


class VectorStoreConformance:
    """The contract of :class:`memsift.VectorStore`, for store plugins.

    Subclass it and provide one fixture:

    ``make_store``
        a factory (a callable without arguments) that returns a **new, unopened** store
        object on the **same underlying storage** every time it is called: the same
        directory, the same collection on the same server, or the same shared in-process
        storage object. The suite calls ``open(IDENTITY)`` (8-dimensional vectors) on what
        it returns, fills it, closes it, and calls the factory again to check that the data
        persists. The storage must be empty when the test starts (build it under
        ``tmp_path``, or use a fresh collection name per test).

    Class attributes to set on the subclass:

    - ``persistent = False`` for a store whose data cannot outlive the store object (an
      in-process index that ``make_store`` cannot share between objects); the
      close-and-reopen checks then only check that closing is safe.
    - ``filter_cases`` (default 70): generated filters per family (six families).

    What is checked: exact round trips of every value kind (integers beyond 2**53, nested
    lists, unicode); scope isolation on ``user_id``, ``agent_id`` and ``run_id``; exact
    pre-filtered search with limits far smaller than the matching set and selective filters
    inside a large store; agreement with :func:`memsift.filters.evaluate` (``search`` and
    ``list_records``) on hand-written edge cases and generated filters over every field kind;
    update, delete, reset; refusing another embedder and bad vectors; the async twins;
    close and reopen; concurrent readers and a writer in threads.
    """

    persistent = True
    filter_cases = 70
    seed = 20260302

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError("provide a `make_store` fixture in your test class")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Iterator[VectorStore]:
        store = make_store()
        store.open(IDENTITY)
        yield store
        store.close()

    @pytest.fixture
    def corpus(self, store: VectorStore) -> Corpus:
        """The store filled with :data:`CORPUS_SIZE` generated records."""
        return self._fill_corpus(store)

    def _fill_corpus(self, store: VectorStore, n: int = CORPUS_SIZE) -> Corpus:
        records = store_corpus.corpus(n, seed=self.seed)
        vectors = _unit(np.random.default_rng(self.seed), n)
        # two batches: stores must keep the order of many inserts, not only of one
        half = n // 2
        store.insert(records[:half], vectors[:half])
        store.insert(records[half:], vectors[half:])
        return Corpus(records, vectors)

    def _fill(self, store: VectorStore, n: int, seed: int = 0) -> tuple[list[MemoryRecord], Any]:
        records = make_records(n, seed)
        vectors = _unit(np.random.default_rng(seed + 1), n)
        store.insert(records, vectors)
        return records, vectors

    def _check(
        self,
        store: VectorStore,
        corpus: Corpus,
        specs: Sequence[Mapping[str, Any]],
        *,
        limits: Sequence[int] = (3,),
        seed: int = 0,
    ) -> None:
        """Compare search (full and limited) and list_records with the reference."""
        rng = np.random.default_rng(seed)
        full = len(corpus.records) + 10
        problems: list[str] = []
        checks = 0
        for i, spec in enumerate(specs):
            parsed = parse_filter(spec)
            expected = corpus.matching(parsed)
            query = _unit(rng, 1)[0]
            for limit in (full, limits[i % len(limits)]):
                checks += 1
                hits = store.search(query, filters=parsed, limit=limit)
                problem = search_problem(corpus, hits, parsed, query, limit, expected)
                if problem:
                    problems.append(f"search(filters={spec!r}, limit={limit}): {problem}")
            for limit in (full, 1 + i % 7):
                checks += 1
                listed = store.list_records(filters=parsed, limit=limit)
                problem = list_problem(corpus, listed, parsed, limit, expected)
                if problem:
                    problems.append(f"list_records(filters={spec!r}, limit={limit}): {problem}")
        fail_on(problems, checks)

    # ------------------------------------------------------------------ basics

    def test_insert_then_get_round_trips(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 5)
        for r in records:
            assert store.get(r.id) == r
        assert store.get("no-such-id") is None

    def test_every_value_kind_round_trips_exactly(self, corpus: Corpus, store: VectorStore) -> None:
        """Big integers stay integers (2**53 + 1 is not 2**53), nested lists and unicode
        come back as they went in, timestamps to the microsecond."""
        for r in corpus.records:
            got = store.get(r.id)
            assert got == r, f"stored {r!r}, got back {got!r}"
            assert got is not None
            for key, value in r.metadata.items():
                assert type(got.metadata[key]) is type(value), (
                    f"metadata[{key!r}] of {r.id} went in as {type(value).__name__} "
                    f"{value!r} and came back as {type(got.metadata[key]).__name__}"
                )

    def test_search_is_exact_and_ranked(self, store: VectorStore) -> None:
        records, vectors = self._fill(store, 300)
        query = _unit(np.random.default_rng(99), 1)[0]
        hits = store.search(query, filters=parse_filter({"user_id": "u1"}), limit=10)
        allowed = [i for i, r in enumerate(records) if r.user_id == "u1"]
        sims = vectors[allowed] @ query
        expected = [records[allowed[i]].id for i in np.argsort(-sims)[:10]]
        assert [h.record.id for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(sorted(sims, reverse=True)[:10], abs=1e-5)

    def test_an_exact_vector_is_found_first_with_similarity_one(
        self, corpus: Corpus, store: VectorStore
    ) -> None:
        for i in (0, 17, 160, CORPUS_SIZE - 1):
            r = corpus.records[i]
            hits = store.search(corpus.vectors[i], filters=parse_filter(None), limit=3)
            assert hits and hits[0].record.id == r.id
            assert hits[0].score == pytest.approx(1.0, abs=1e-5)

    # ------------------------------------------------------------------ scope

    @pytest.mark.parametrize("field", SCOPE_FIELDS)
    def test_scope_isolation(self, corpus: Corpus, store: VectorStore, field: str) -> None:
        """A search scoped by one field sees exactly that tenant's records, alone or with
        the other scope fields."""
        specs: list[dict[str, Any]] = []
        for value in store_corpus.SCOPE_VALUES[field]:
            specs.append({field: value})
            for other in SCOPE_FIELDS:
                if other != field:
                    for o in store_corpus.SCOPE_VALUES[other][:2]:
                        specs.append({field: value, other: o})
            specs.append({"AND": [{field: value}, {"bucket": {"lt": 3}}]})
        specs.append({field: "no-such-tenant"})
        self._check(store, corpus, specs, limits=(1, 3, 5))
        for value in store_corpus.SCOPE_VALUES[field]:
            hits = store.search(
                corpus.vectors[0], filters=parse_filter({field: value}), limit=CORPUS_SIZE
            )
            leaked = [h.record.id for h in hits if getattr(h.record, field) != value]
            assert not leaked, f"a search scoped to {field}={value!r} returned {leaked[:3]}"

    # ------------------------------------------------------------------ pre-filtering

    def test_selective_filters_in_a_large_store_return_every_match(
        self, corpus: Corpus, store: VectorStore
    ) -> None:
        """1 to 3 matches among hundreds with limit 5: all of them. 50 matches with
        limit 3: exactly the best 3. A store that filters an oversampled ANN result
        afterwards fails this."""
        rng = np.random.default_rng(7)
        # (filter, limit, how many records it must match in the corpus)
        cases: list[tuple[dict[str, Any], int, range]] = [
            ({"n": 123}, 5, range(1, 2)),
            ({"n": {"in": [5, 250]}}, 5, range(2, 3)),
            ({"n": {"in": [3, 99, 301]}}, 5, range(3, 4)),
            ({"group": 17, "bucket": 5}, 5, range(1, 4)),
            ({"OR": [{"n": 42}, {"n": 84}]}, 5, range(2, 3)),
            ({"bucket": 1}, 3, range(40, CORPUS_SIZE)),
            ({"group": {"lt": 8}}, 3, range(40, CORPUS_SIZE)),
            ({"user_id": "u2", "bucket": {"in": [0, 3]}}, 3, range(12, CORPUS_SIZE)),
        ]
        # 1-3 matches through the scope fields alone
        triples: dict[tuple[Any, ...], int] = {}
        for r in corpus.records:
            key = (r.user_id, r.agent_id, r.run_id)
            triples[key] = triples.get(key, 0) + 1
        small = [k for k, c in sorted(triples.items(), key=str) if 1 <= c <= 3 and all(k)]
        for u, a, run in small[:4]:
            cases.append(({"user_id": u, "agent_id": a, "run_id": run}, 5, range(1, 4)))
        problems = []
        for spec, limit, count in cases:
            parsed = parse_filter(spec)
            assert len(corpus.matching(parsed)) in count, (spec, len(corpus.matching(parsed)))
            for _ in range(3):
                query = _unit(rng, 1)[0]
                hits = store.search(query, filters=parsed, limit=limit)
                problem = search_problem(corpus, hits, parsed, query, limit)
                if problem:
                    problems.append(f"search(filters={spec!r}, limit={limit}): {problem}")
        fail_on(problems, len(cases) * 3)

    def test_selective_filter_returns_every_match(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 400)
        query = _unit(np.random.default_rng(5), 1)[0]
        spec = {"user_id": "u2", "n": {"in": [1, 4, 7, 10]}}
        hits = store.search(query, filters=parse_filter(spec), limit=50)
        expected = {r.id for r in records if r.user_id == "u2" and r.metadata["n"] in (1, 4, 7, 10)}
        assert {h.record.id for h in hits} == expected

    # ------------------------------------------------------------------ async twins

    def test_async_twins_agree_with_sync(self, store: VectorStore) -> None:
        """``ainsert`` and ``asearch`` (and ``aget``, ``alist_records``, ``adelete`` where a
        store defines them) give the answers of their sync twins, also when awaited
        concurrently."""
        records = store_corpus.corpus(120, seed=self.seed + 1)
        vectors = _unit(np.random.default_rng(self.seed + 1), len(records))
        corpus = Corpus(records, vectors)
        specs = [*EDGE_CASES["scope-fields"][:8], *EDGE_CASES["big-integers"][:4]]
        rng = np.random.default_rng(3)
        queries = [_unit(rng, 1)[0] for _ in specs]

        async def run() -> list[list[VectorHit]]:
            await store.ainsert(records[:60], vectors[:60])
            await store.ainsert(records[60:], vectors[60:])
            return list(
                await asyncio.gather(
                    *(
                        store.asearch(q, filters=parse_filter(s), limit=5)
                        for q, s in zip(queries, specs)
                    )
                )
            )

        answers = asyncio.run(run())
        problems = []
        for spec, query, hits in zip(specs, queries, answers):
            parsed = parse_filter(spec)
            problem = search_problem(corpus, hits, parsed, query, 5)
            if problem:
                problems.append(f"asearch(filters={spec!r}, limit=5): {problem}")
            sync = store.search(query, filters=parsed, limit=5)
            if [h.record.id for h in sync] != [h.record.id for h in hits]:
                problems.append(f"asearch and search disagree on {spec!r}")
        fail_on(problems, len(specs))
        self._optional_async_twins(store, corpus)

    def _optional_async_twins(self, store: VectorStore, corpus: Corpus) -> None:
        def twin(name: str) -> Callable[..., Any] | None:
            method = getattr(store, name, None)
            return method if inspect.iscoroutinefunction(method) else None

        first = corpus.records[0]
        aget = twin("aget")
        if aget is not None:
            assert asyncio.run(aget(first.id)) == store.get(first.id) == first
        alist = twin("alist_records")
        if alist is not None:
            parsed = parse_filter({"user_id": "u1"})
            got = asyncio.run(alist(filters=parsed, limit=7))
            assert [r.id for r in got] == [
                r.id for r in store.list_records(filters=parsed, limit=7)
            ]
        adelete = twin("adelete")
        if adelete is not None:
            assert asyncio.run(adelete([first.id, "no-such-id"])) == 1
            assert store.get(first.id) is None

    # ------------------------------------------------------------------ lifecycle

    def test_persists_across_reopen(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.open(IDENTITY)
        records, vectors = self._fill(store, 25)
        store.close()
        again = make_store()
        again.open(IDENTITY)
        try:
            if not self.persistent:
                return
            for r in records:
                assert again.get(r.id) == r
            hits = again.search(
                vectors[4], filters=parse_filter({"user_id": records[4].user_id}), limit=1
            )
            assert hits[0].record.id == records[4].id
        finally:
            again.close()

    def test_close_and_reopen_keeps_every_answer(self, make_store: StoreFactory) -> None:
        """After close and reopen, the same records, the same ranked answers to filters of
        every field kind, and writes after reopening persist too. Closing twice is safe."""
        store = make_store()
        store.open(IDENTITY)
        corpus = self._fill_corpus(store)
        specs = [
            *EDGE_CASES["scope-fields"][:5],
            *EDGE_CASES["timestamps-sub-second"][:3],
            *EDGE_CASES["big-integers"][:3],
            *EDGE_CASES["icontains-case-folding"][:3],
        ]
        rng = np.random.default_rng(11)
        queries = [_unit(rng, 1)[0] for _ in specs]
        before = [
            [(h.record.id, h.score) for h in store.search(q, filters=parse_filter(s), limit=5)]
            for q, s in zip(queries, specs)
        ]
        store.close()
        store.close()  # idempotent
        again = make_store()
        again.open(IDENTITY)
        try:
            if not self.persistent:
                return
            for r in corpus.records:
                assert again.get(r.id) == r, f"{r.id} did not survive close and reopen"
            after = [
                [(h.record.id, h.score) for h in again.search(q, filters=parse_filter(s), limit=5)]
                for q, s in zip(queries, specs)
            ]
            for spec, b, a in zip(specs, before, after):
                assert [i for i, _ in a] == [i for i, _ in b], f"{spec!r} changed on reopen"
                assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)
            self._check(again, corpus, specs, limits=(2,))
            # writes after reopening persist too
            extra = store_corpus.corpus(20, seed=self.seed + 7)
            extra_vectors = _unit(np.random.default_rng(self.seed + 7), 20)
            again.insert(extra, extra_vectors)
            again.delete([corpus.records[0].id, extra[0].id])
            moved = dataclasses.replace(corpus.records[1], user_id="u-reopened")
            again.update(moved, None)
        finally:
            again.close()
        third = make_store()
        third.open(IDENTITY)
        try:
            assert third.get(corpus.records[0].id) is None
            assert third.get(extra[0].id) is None
            assert third.get(extra[5].id) == extra[5]
            assert third.get(moved.id) == moved
            hits = third.search(
                corpus.vectors[1], filters=parse_filter({"user_id": "u-reopened"}), limit=5
            )
            assert [h.record.id for h in hits] == [moved.id]
        finally:
            third.close()

    # ------------------------------------------------------------------ writes

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

    def test_updates_are_seen_by_filters(self, corpus: Corpus, store: VectorStore) -> None:
        """New metadata, a new scope and a new updated_at are what filters see next."""
        records = list(corpus.records)
        changes: dict[int, dict[str, Any]] = {
            5: {"metadata": {**records[5].metadata, "num": 2**53 + 1, "text": "Straße"}},
            9: {"user_id": "u-moved", "agent_id": None},
            12: {"updated_at": "2026-03-09T08:00:00.000001+00:00"},
            20: {"metadata": {"n": 20, "group": 20, "bucket": 2, "tags": ["a", ["b"]]}},
        }
        for i, change in changes.items():
            new = dataclasses.replace(records[i], **change)
            store.update(new, None)
            records[i] = new
        updated = Corpus(records, corpus.vectors)
        specs: list[dict[str, Any]] = [
            {"num": 2**53 + 1},
            {"text": {"icontains": "STRASSE"}},
            {"user_id": "u-moved"},
            {"user_id": corpus.records[9].user_id or "u1"},
            {"agent_id": {"exists": False}},
            {"updated_at": {"gt": "2026-03-09T08:00:00+00:00"}},
            {"tags": {"contains": "b"}},
            {"maybe": "*"},
        ]
        self._check(store, updated, specs, limits=(1, 5))

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

    def test_deleted_records_leave_every_answer(self, corpus: Corpus, store: VectorStore) -> None:
        gone = [r.id for r in corpus.records[::7]]
        assert store.delete(gone) == len(gone)
        assert store.delete(gone) == 0
        kept = [i for i, r in enumerate(corpus.records) if r.id not in set(gone)]
        rest = Corpus([corpus.records[i] for i in kept], corpus.vectors[kept])
        self._check(store, rest, EDGE_CASES["scope-fields"][:6], limits=(1, 5))
        assert all(store.get(i) is None for i in gone)

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

    def test_refuses_another_embedder(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.open(IDENTITY)
        self._fill(store, 3)
        if self.persistent:
            store.close()
            other = make_store()
        else:  # nothing outlives the object: it must refuse to be rebound itself
            other = store
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

    # ------------------------------------------------------------------ filter semantics

    @pytest.mark.parametrize("topic", list(EDGE_CASES))
    def test_edge_cases_agree_with_the_reference_evaluator(
        self, corpus: Corpus, store: VectorStore, topic: str
    ) -> None:
        self._check(store, corpus, EDGE_CASES[topic], limits=(1, 2, 5), seed=len(topic))

    @pytest.mark.parametrize("family", list(store_filters.FAMILIES))
    def test_generated_filters_agree_with_the_reference_evaluator(
        self, corpus: Corpus, store: VectorStore, family: str
    ) -> None:
        """Seeded random filters of one family, several limits, search and list_records."""
        rng = random.Random(f"{self.seed}-{family}")
        gen = store_filters.FilterGenerator(rng, corpus.records)
        specs = [gen.filter(family) for _ in range(self.filter_cases)]
        self._check(store, corpus, specs, limits=(1, 3, 5, 10, 40), seed=rng.randrange(1 << 30))

    def test_list_is_newest_first_and_limited(self, store: VectorStore) -> None:
        records, _ = self._fill(store, 30)
        listed = store.list_records(filters=parse_filter({"user_id": "u1"}), limit=5)
        mine = sorted(
            (r for r in records if r.user_id == "u1"), key=lambda r: r.created_at, reverse=True
        )
        assert [r.created_at for r in listed] == [r.created_at for r in mine[:5]]

    # ------------------------------------------------------------------ threads

    def test_concurrent_readers_and_a_writer(self, store: VectorStore) -> None:
        """Four reader threads search while one thread inserts, updates and deletes: no
        exception, every answer consistent, and the final state exact."""
        base = store_corpus.corpus(120, seed=self.seed + 3)
        base_vectors = _unit(np.random.default_rng(self.seed + 3), len(base))
        store.insert(base, base_vectors)
        new = [
            dataclasses.replace(
                r, id=str(uuid.UUID(int=(1 << 100) + i)), user_id="writer", hash=f"w{i}"
            )
            for i, r in enumerate(store_corpus.corpus(80, seed=self.seed + 4))
        ]
        new_vectors = _unit(np.random.default_rng(self.seed + 4), len(new))
        errors: list[BaseException] = []
        done = threading.Event()
        specs = [
            parse_filter(s)
            for s in (
                {"user_id": "u1"},
                {"user_id": "writer"},
                {"agent_id": "a2", "bucket": {"lt": 3}},
                {"user_id": "writer", "num": {"gt": 2**53}},
                {"run_id": "r3"},
            )
        ]

        def reader(k: int) -> None:
            rng = np.random.default_rng(100 + k)
            try:
                for i in range(400):
                    if done.is_set() and i > 20:
                        break
                    parsed = specs[(i + k) % len(specs)]
                    hits = store.search(_unit(rng, 1)[0], filters=parsed, limit=10)
                    ids = [h.record.id for h in hits]
                    assert len(ids) == len(set(ids)), f"duplicate hits {ids}"
                    assert all(evaluate(parsed, h.record) for h in hits), "filter violated"
                    scores = [h.score for h in hits]
                    assert all(b <= a + 1e-6 for a, b in pairwise(scores)), "unsorted"
            except BaseException as exc:
                errors.append(exc)

        def writer() -> None:
            try:
                for start in range(0, len(new), 10):
                    store.insert(new[start : start + 10], new_vectors[start : start + 10])
                for r in new[:10]:
                    store.update(dataclasses.replace(r, metadata={"n": -1, "edited": True}), None)
                store.delete([r.id for r in new[10:20]])
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(4)]
        threads.append(threading.Thread(target=writer, daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a thread did not finish in 120 s"
        if errors:
            raise errors[0]
        final = [
            *base,
            *(dataclasses.replace(r, metadata={"n": -1, "edited": True}) for r in new[:10]),
            *new[20:],
        ]
        final_vectors = np.vstack([base_vectors, new_vectors[:10], new_vectors[20:]])
        corpus = Corpus(final, final_vectors)
        listed = store.list_records(filters=parse_filter(None), limit=10_000)
        assert {r.id for r in listed} == {r.id for r in final}
        self._check(
            store,
            corpus,
            [{"user_id": "writer"}, {"edited": True}, {"user_id": "u2"}, {"n": {"lt": 0}}],
            limits=(3,),
        )
