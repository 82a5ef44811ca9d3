"""``VectorStoreConformance``: the contract every vector store must keep.

The central check: for every filter, the store returns exactly the records that
:func:`memsift.filters.evaluate` accepts (pre-filtering: a selective filter never yields
fewer hits than exist), the best ``limit`` of them by similarity, best first. The suite
compares the store with that brute-force reference over a corpus of a few hundred records
(:func:`memsift.testing.strategies.corpus`) for hand-written edge cases of every field kind
and for several hundred filters drawn from a seeded :class:`random.Random`.
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
from memsift.filters import SCOPE_FIELDS, Filter, evaluate, parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord, VectorHit, VectorStore
from memsift.testing import strategies

DIMS = 8
IDENTITY = EmbedderIdentity(provider="conformance", model="random-unit", dims=DIMS)
StoreFactory = Callable[[], VectorStore]
Vectors = np.ndarray[Any, np.dtype[np.float32]]

#: Records of the corpus most tests fill the store with.
CORPUS_SIZE = 320
#: Similarities closer than this count as ties.
SCORE_TOL = 1e-5


def _unit(rng: np.random.Generator, n: int) -> Vectors:
    v = rng.normal(size=(n, DIMS)).astype(np.float32)
    out: Vectors = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


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


# --------------------------------------------------------------------------- the reference


@dataclasses.dataclass
class Corpus:
    """Records inserted into a store, their vectors, and the reference answers."""

    records: list[MemoryRecord]
    vectors: Vectors

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for r in self.records}
        self.index = {r.id: i for i, r in enumerate(self.records)}

    def matching(self, parsed: Filter) -> list[MemoryRecord]:
        return [r for r in self.records if evaluate(parsed, r)]

    def sims(self, query: Vectors) -> dict[str, float]:
        values = self.vectors.astype(np.float64) @ query.astype(np.float64)
        return {r.id: float(values[i]) for i, r in enumerate(self.records)}


def search_problem(
    corpus: Corpus,
    hits: Sequence[VectorHit],
    parsed: Filter,
    query: Vectors,
    limit: int,
    expected: list[MemoryRecord] | None = None,
) -> str | None:
    """What is wrong with ``hits`` as the answer to ``search(query, parsed, limit)``
    (``expected``: the records that match, when already known)."""
    if not isinstance(hits, list):
        return f"search returned {type(hits).__name__}, not a list"
    if expected is None:
        expected = corpus.matching(parsed)
    allowed = {r.id for r in expected}
    ids = [h.record.id for h in hits]
    if len(ids) != len(set(ids)):
        return f"duplicate hits: {ids}"
    unknown = [i for i in ids if i not in corpus.by_id]
    if unknown:
        return f"returned ids that were never stored (or were deleted): {unknown[:3]}"
    rejected = [i for i in ids if i not in allowed]
    if rejected:
        bad = corpus.by_id[rejected[0]]
        return f"returned {len(rejected)} record(s) the filter rejects, e.g. {_describe(bad)}"
    want = min(limit, len(expected))
    if len(ids) != want:
        return (
            f"returned {len(ids)} hits with limit={limit}, but {len(expected)} records match: "
            f"expected exactly {want} (pre-filtering: never fewer than exist)"
        )
    sims = corpus.sims(query)
    for h in hits:
        if not np.isfinite(h.score) or abs(h.score - sims[h.record.id]) > 1e-4:
            return (
                f"hit {h.record.id} scores {h.score}, its cosine similarity is "
                f"{sims[h.record.id]:.6f}"
            )
        if h.record != corpus.by_id[h.record.id]:
            return (
                f"hit {h.record.id} carries {h.record!r}, stored was {corpus.by_id[h.record.id]!r}"
            )
    scores = [h.score for h in hits]
    if any(b > a + 1e-6 for a, b in pairwise(scores)):
        return f"hits are not best first: scores {scores}"
    left_out = [sims[r.id] for r in expected if r.id not in set(ids)]
    if left_out and ids and max(left_out) > min(sims[i] for i in ids) + SCORE_TOL:
        return (
            f"missed a better match: a matching record of similarity {max(left_out):.6f} is "
            f"left out while one of {min(sims[i] for i in ids):.6f} is returned"
        )
    return None


def list_problem(
    corpus: Corpus,
    listed: Sequence[MemoryRecord],
    parsed: Filter,
    limit: int,
    expected: list[MemoryRecord] | None = None,
) -> str | None:
    """What is wrong with ``listed`` as the answer to ``list_records(parsed, limit)``."""
    if not isinstance(listed, list):
        return f"list_records returned {type(listed).__name__}, not a list"
    if expected is None:
        expected = corpus.matching(parsed)
    allowed = {r.id for r in expected}
    ids = [r.id for r in listed]
    if len(ids) != len(set(ids)):
        return f"list_records returned duplicates: {ids}"
    rejected = [i for i in ids if i not in allowed]
    if rejected:
        bad = corpus.by_id.get(rejected[0])
        return f"list_records returned a record the filter rejects: {_describe(bad)}"
    want = min(limit, len(expected))
    if len(ids) != want:
        return (
            f"list_records returned {len(ids)} records with limit={limit}, but "
            f"{len(expected)} match: expected exactly {want}"
        )
    for r in listed:
        if r != corpus.by_id[r.id]:
            return f"list_records returned {r!r}, stored was {corpus.by_id[r.id]!r}"
    stamps = [r.created_at for r in listed]
    if stamps != sorted(stamps, reverse=True):
        return f"list_records is not newest first: {stamps}"
    rest = [r.created_at for r in expected if r.id not in set(ids)]
    if rest and stamps and max(rest) > min(stamps):
        return f"list_records left out a newer record ({max(rest)} > {min(stamps)})"
    return None


def _describe(record: MemoryRecord | None) -> str:
    if record is None:
        return "<unknown record>"
    scope = {f: getattr(record, f) for f in SCOPE_FIELDS}
    return (
        f"{record.id} (scope {scope}, created_at {record.created_at}, updated_at "
        f"{record.updated_at}, metadata {record.metadata!r})"
    )


def _fail_on(problems: list[str], total: int) -> None:
    if problems:
        shown = "\n  - ".join(problems[:6])
        pytest.fail(
            f"{len(problems)} of {total} checks disagree with memsift.filters.evaluate:"
            f"\n  - {shown}",
            pytrace=False,
        )


# --------------------------------------------------------------------------- edge cases

_P = strategies.PIVOT.isoformat(timespec="microseconds")
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
        records = strategies.corpus(n, seed=self.seed)
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
        _fail_on(problems, checks)

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
        for value in strategies.SCOPE_VALUES[field]:
            specs.append({field: value})
            for other in SCOPE_FIELDS:
                if other != field:
                    for o in strategies.SCOPE_VALUES[other][:2]:
                        specs.append({field: value, other: o})
            specs.append({"AND": [{field: value}, {"bucket": {"lt": 3}}]})
        specs.append({field: "no-such-tenant"})
        self._check(store, corpus, specs, limits=(1, 3, 5))
        for value in strategies.SCOPE_VALUES[field]:
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
        _fail_on(problems, len(cases) * 3)

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
        records = strategies.corpus(120, seed=self.seed + 1)
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
        _fail_on(problems, len(specs))
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
            extra = strategies.corpus(20, seed=self.seed + 7)
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

    # ------------------------------------------------------------------ filter semantics

    @pytest.mark.parametrize("topic", list(EDGE_CASES))
    def test_edge_cases_agree_with_the_reference_evaluator(
        self, corpus: Corpus, store: VectorStore, topic: str
    ) -> None:
        self._check(store, corpus, EDGE_CASES[topic], limits=(1, 2, 5), seed=len(topic))

    @pytest.mark.parametrize("family", list(strategies.FAMILIES))
    def test_generated_filters_agree_with_the_reference_evaluator(
        self, corpus: Corpus, store: VectorStore, family: str
    ) -> None:
        """Seeded random filters of one family, several limits, search and list_records."""
        rng = random.Random(f"{self.seed}-{family}")
        gen = strategies.FilterGenerator(rng, corpus.records)
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
        base = strategies.corpus(120, seed=self.seed + 3)
        base_vectors = _unit(np.random.default_rng(self.seed + 3), len(base))
        store.insert(base, base_vectors)
        new = [
            dataclasses.replace(
                r, id=str(uuid.UUID(int=(1 << 100) + i)), user_id="writer", hash=f"w{i}"
            )
            for i, r in enumerate(strategies.corpus(80, seed=self.seed + 4))
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
