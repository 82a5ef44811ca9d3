"""The keyword index of the `faiss` store: an FTS5 table kept in the same transaction as every
write, rebuilt when missing, BM25 with statistics from the scope, and answers
under exactly the filters of the vector stage."""

from __future__ import annotations

import math
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.builtin.faiss import keyword as fts
from memsift.errors import InvalidInputError, StoreError
from memsift.filters import evaluate, parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord
from memsift.lexical import Analyzer
from memsift.testing.store_corpus import corpus
from memsift.testing.store_filters import FAMILIES, FilterGenerator

IDENT = EmbedderIdentity("test", "unit", 16)
STAMP = "2026-01-01T00:00:00.000000+00:00"
TEXTS = [
    "Kate went hiking in Miami on 2023-05-08",
    "I cooked pasta for Kate",
    "hiking boots are on sale",
    "the weather in Lisbon is nice",
    "Miami beach at sunset",
    "a meeting on Friday about the report",
]


def unit(n: int, seed: int = 0) -> Any:
    v = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def rec(i: int, text: str, user: str | None = "u1", **meta: Any) -> MemoryRecord:
    return MemoryRecord(
        id=f"id{i}",
        memory=text,
        hash=f"h{i}-{text}",
        metadata={"i": i, **meta},
        user_id=user,
        created_at=STAMP,
        updated_at=STAMP,
    )


def open_store(path: Path, **cfg: Any) -> FaissStore:
    store = FaissStore(FaissStoreConfig(path=str(path), **cfg))
    store.open(IDENT)
    return store


def filled(path: Path, **cfg: Any) -> FaissStore:
    store = open_store(path, **cfg)
    store.insert([rec(i, t, "u1" if i % 2 == 0 else "u2") for i, t in enumerate(TEXTS)], unit(6))
    return store


ALL = parse_filter({"OR": [{"user_id": "u1"}, {"user_id": "u2"}]})


def ids(hits: Any) -> list[str]:
    return [h.record.id for h in hits]


def check_index(store: FaissStore) -> None:
    with store._lock:
        fts.check(store._conn)  # FTS5's own check of the index against memories.terms


def test_bm25_ranks_matches_and_leaves_out_non_matches(tmp_path: Path) -> None:
    store = filled(tmp_path)
    hits = store.keyword_search("Where did Kate hike?", filters=ALL, limit=10)
    assert ids(hits)[0] == "id0" and set(ids(hits)) == {"id0", "id1", "id2"}  # both, or one
    assert all(h.score > 0 for h in hits) and hits[0].score > hits[1].score
    assert store.keyword_search("what is it?", filters=ALL, limit=10) == []  # stop words only
    assert ids(store.keyword_search("Where did Kate hike?", filters=ALL, limit=1)) == ["id0"]
    with pytest.raises(InvalidInputError):
        store.keyword_search("kate", filters=ALL, limit=0)
    store.close()


def test_keyword_hits_carry_the_true_vector_score(tmp_path: Path) -> None:
    store = filled(tmp_path)
    query = unit(1, seed=9)[0]
    by_vector = {h.record.id: h.score for h in store.search(query, filters=ALL, limit=10)}
    hits = store.keyword_search("miami", filters=ALL, limit=10, vector=query)
    assert ids(hits) and all(h.vector_score == pytest.approx(by_vector[h.record.id]) for h in hits)
    assert all(h.vector_score is None for h in store.keyword_search("miami", filters=ALL, limit=5))
    store.close()


def bm25_reference(texts: list[str], query: str) -> dict[int, float]:
    """Okapi BM25 (k1 1.2, b 0.75, FTS5's idf ln((N - n + 0.5) / (n + 0.5))) of each text
    that holds a query term, every statistic taken from ``texts``."""
    analyzer = Analyzer()
    docs = [analyzer.terms(t) for t in texts]
    n, avg = len(docs), sum(len(d) for d in docs) / len(docs)
    out: dict[int, float] = {}
    for term in analyzer.query_terms(query):
        df = sum(term in d for d in docs)
        idf = max(1e-6, math.log((n - df + 0.5) / (df + 0.5)))
        for i, d in enumerate(docs):
            tf = Counter(d)[term]
            if tf:
                norm = 1.2 * (1 - 0.75 + 0.75 * len(d) / avg)
                out[i] = out.get(i, 0.0) + idf * tf * 2.2 / (tf + norm)
    return out


def test_statistics_come_from_the_scope(tmp_path: Path) -> None:
    """N, n and the average length count the memories of the scope the filter pins (the
    whole collection when it pins none), whatever the filter's other conditions."""
    store = filled(tmp_path)
    scores = store.keyword_scores("miami", ["id0", "id4", "id1"])  # no scope: the store
    assert set(scores) == {"id0", "id4"}  # id1 has no query term
    whole = bm25_reference(TEXTS, "miami")
    assert scores == pytest.approx({f"id{i}": s for i, s in whole.items()}, rel=1e-9)
    u1 = parse_filter({"user_id": "u1"})
    own = [t for i, t in enumerate(TEXTS) if i % 2 == 0]  # u1 holds the even ones
    expected = {f"id{2 * i}": s for i, s in bm25_reference(own, "miami kate").items()}
    scoped = store.keyword_search("miami kate", filters=u1, limit=5)
    assert {h.record.id: h.score for h in scoped} == pytest.approx(expected, rel=1e-9)
    assert store.keyword_scores("miami kate", list(expected), filters=u1) == pytest.approx(
        expected, rel=1e-9
    )
    narrower = parse_filter({"AND": [{"user_id": "u1"}, {"i": {"gte": 4}}]})
    hits = store.keyword_search("miami kate", filters=narrower, limit=5)
    assert {h.record.id: h.score for h in hits} == pytest.approx({"id4": expected["id4"]})
    store.close()


def test_scope_statistics_follow_every_write(tmp_path: Path) -> None:
    """The store keeps each scope's statistics between searches; a write through it, or
    through another store object on the same path, makes the next search count anew."""
    store = filled(tmp_path)
    u1 = parse_filter({"user_id": "u1"})
    texts = [t for i, t in enumerate(TEXTS) if i % 2 == 0]

    def expected() -> dict[str, float]:
        ref = bm25_reference(texts, "miami kate")
        return {f"id{2 * i}": s for i, s in ref.items()}

    def scored() -> dict[str, float]:
        return {
            h.record.id: h.score for h in store.keyword_search("miami kate", filters=u1, limit=9)
        }

    assert scored() == pytest.approx(expected(), rel=1e-9)
    store.insert([rec(6, "Kate again", "u1")], unit(1, seed=5))  # through this store
    texts.append("Kate again")
    assert scored() == pytest.approx(expected(), rel=1e-9)
    other = open_store(tmp_path)  # another connection, as another process would be
    other.insert([rec(8, "a note with no names", "u1")], unit(1, seed=6))
    other.close()
    texts.append("a note with no names")
    assert scored() == pytest.approx(expected(), rel=1e-9)
    store.close()


def test_long_memories_count_every_term(tmp_path: Path) -> None:
    """Lengths of 128 terms and more (a multi-byte size in FTS5's document sizes) count."""
    texts = [" ".join(f"word{j}" for j in range(n)) + " kite" for n in (5, 130, 400, 20000)]
    texts += [f"filler number {j}" for j in range(8)]  # kite in 4 of 12: a positive idf
    store = open_store(tmp_path)
    store.insert([rec(i, t) for i, t in enumerate(texts)], unit(len(texts)))
    scores = store.keyword_scores("kite", [f"id{i}" for i in range(len(texts))])
    expected = bm25_reference(texts, "kite")
    assert len(expected) == 4 and len(set(expected.values())) == 4
    assert scores == pytest.approx({f"id{i}": s for i, s in expected.items()}, rel=1e-9)
    store.close()


def test_numbers_and_dates_match_whole(tmp_path: Path) -> None:
    store = filled(tmp_path)
    assert ids(store.keyword_search("what happened on 2023-05-08?", filters=ALL, limit=5)) == [
        "id0"
    ]
    assert store.keyword_search("2023", filters=ALL, limit=5) == []
    store.close()


def test_the_index_follows_every_write_in_its_transaction(tmp_path: Path) -> None:
    store = filled(tmp_path)
    u1 = parse_filter({"user_id": "u1"})
    store.update(rec(0, "Kate went swimming", "u1"), unit(1, seed=3)[0])  # new text, new slot
    assert "id0" not in ids(store.keyword_search("hiking", filters=ALL, limit=10))
    assert ids(store.keyword_search("swimming", filters=ALL, limit=10)) == ["id0"]
    store.update(rec(0, "Kate went swimming", "u2"), None)  # re-scoped, same slot
    assert store.keyword_search("swimming", filters=u1, limit=10) == []
    assert ids(store.keyword_search("swim", filters=parse_filter({"user_id": "u2"}), limit=9)) == [
        "id0"
    ]
    store.update(rec(0, "Kate went sailing", "u2"), None)  # new text, same slot
    assert ids(store.keyword_search("sail", filters=ALL, limit=10)) == ["id0"]
    store.delete(["id4"])
    assert "id4" not in ids(store.keyword_search("miami beach", filters=ALL, limit=10))
    check_index(store)
    store.compact()  # renumbers the slots: the index is rebuilt from memories.terms
    assert ids(store.keyword_search("sailing", filters=ALL, limit=10)) == ["id0"]
    assert ids(store.keyword_search("boots", filters=ALL, limit=10)) == ["id2"]
    check_index(store)
    store.reset()
    assert (
        store.supports_keyword_search and store.keyword_search("kate", filters=ALL, limit=5) == []
    )
    store.insert([rec(9, "kate again")], unit(1))
    assert ids(store.keyword_search("kate", filters=ALL, limit=5)) == ["id9"]
    check_index(store)
    store.close()


def test_a_failed_write_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    store = filled(tmp_path)
    with pytest.raises(InvalidInputError, match="already exists"):
        store.insert([rec(50, "zebra crossing"), rec(0, "duplicate id")], unit(2))
    assert store.keyword_search("zebra", filters=ALL, limit=5) == []
    check_index(store)
    store.close()


def test_other_connections_see_committed_writes(tmp_path: Path) -> None:
    first = filled(tmp_path)
    second = open_store(tmp_path)
    second.insert([rec(20, "a zebra in Lisbon", "u1")], unit(1, seed=5))
    assert ids(first.keyword_search("zebra", filters=ALL, limit=5)) == ["id20"]
    second.delete(["id20"])
    assert first.keyword_search("zebra", filters=ALL, limit=5) == []
    first.close()
    second.close()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_keyword_search_gives_the_answer_of_the_reference_evaluator(
    tmp_path: Path, family: str
) -> None:
    records = corpus(240, seed=3)
    store = open_store(tmp_path)
    store.insert(records, unit(len(records), seed=4))
    analyzer = Analyzer()
    terms = {r.id: set(analyzer.terms(r.memory)) for r in records}
    gen = FilterGenerator(random.Random(family), records)
    for query in ("alice tea", "lisbon report friday", "nurse"):
        wanted = set(analyzer.query_terms(query))
        for _ in range(15):
            spec = gen.filter(family)
            parsed = parse_filter(spec)
            expected = {r.id for r in records if evaluate(parsed, r) and wanted & terms[r.id]}
            hits = store.keyword_search(query, filters=parsed, limit=1000)
            assert {h.record.id for h in hits} == expected, spec
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    store.close()


def test_the_scope_prefilter_never_changes_the_answer(tmp_path: Path) -> None:
    """Scope ids are phrases in the index (a superset); the exact SQL filter decides."""
    store = open_store(tmp_path)
    users = ["alice", "Alice", "alice smith", "alice-smith", "!!!", 'say "hi"', "ünï"]
    store.insert([rec(i, f"tea number {i}", u) for i, u in enumerate(users)], unit(len(users)))
    for i, user in enumerate(users):
        hits = store.keyword_search("tea", filters=parse_filter({"user_id": user}), limit=10)
        assert ids(hits) == [f"id{i}"], user
    store.close()


def test_a_store_of_schema_2_is_upgraded_and_backfilled(tmp_path: Path) -> None:
    store = filled(tmp_path)
    store.close()
    conn = sqlite3.connect(store.db_path, isolation_level=None)
    conn.execute(f"DROP TABLE {fts.FTS_TABLE}")
    conn.execute("ALTER TABLE memories DROP COLUMN terms")
    conn.execute("DELETE FROM meta WHERE key = 'keyword_analyzer'")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    again = open_store(tmp_path)
    assert again.supports_keyword_search
    hits = again.keyword_search("Kate hiking", filters=ALL, limit=3)
    assert ids(hits)[0] == "id0" and set(ids(hits)) == {"id0", "id1", "id2"}
    check_index(again)
    meta = dict(again._conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == "3" and meta["keyword_analyzer"] == Analyzer().signature
    again.close()


def test_keyword_index_off_drops_it_and_on_builds_it_again(tmp_path: Path) -> None:
    filled(tmp_path).close()
    off = open_store(tmp_path, keyword_index=False)
    assert not off.supports_keyword_search
    assert not fts.has_table(off._conn)
    with pytest.raises(StoreError, match="no keyword index"):
        off.keyword_search("kate", filters=ALL, limit=5)
    off.insert([rec(30, "kate without an index")], unit(1))  # not indexed: cheaper writes
    off.close()
    on = open_store(tmp_path)
    assert ids(on.keyword_search("without index", filters=ALL, limit=5)) == ["id30"]
    check_index(on)
    on.close()


def test_another_analyzer_rebuilds_the_index_and_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filled(tmp_path).close()
    raw = open_store(tmp_path, keyword_stemming=False, keyword_stopwords=False)
    assert ids(raw.keyword_search("hike", filters=ALL, limit=5)) == []  # "hiking" is not stemmed
    assert ids(raw.keyword_search("the", filters=ALL, limit=9)) == ["id3", "id5"]
    assert fts.recorded(raw._conn) == Analyzer(stemming=False, stopwords=False).signature
    # a second object on the same store writes with the analyzer SQLite records
    other = FaissStore(FaissStoreConfig(path=str(tmp_path)))
    other._wanted_analyzer = None  # as if it did not rebuild: it still follows SQLite
    raw.insert([rec(40, "The hikers")], unit(1))
    assert ids(raw.keyword_search("hikers", filters=ALL, limit=5)) == ["id40"]
    other.close()
    raw.close()


def test_a_store_without_any_memory_has_an_empty_index(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.supports_keyword_search
    assert store.keyword_search("anything", filters=ALL, limit=5) == []
    assert store.keyword_scores("anything", ["nope"]) == {}
    store.close()


def test_pool_scores_reuse_the_last_match_only_while_it_is_current(tmp_path: Path) -> None:
    store = filled(tmp_path)
    u1 = parse_filter({"user_id": "u1"})
    pool = ["id0", "id2", "id4"]
    fresh = store.keyword_scores("kate miami", pool, filters=u1)  # by SQL
    store.keyword_search("kate miami", filters=u1, limit=1)  # remembers the scope's matches
    assert store.keyword_scores("kate miami", pool, filters=u1) == fresh
    store.insert([rec(60, "kate kate kate", "u1")], unit(1, seed=8))  # statistics change
    after = store.keyword_scores("kate miami", pool, filters=u1)
    own = [t for i, t in enumerate(TEXTS) if i % 2 == 0] + ["kate kate kate"]
    reference = bm25_reference(own, "kate miami")
    assert after == pytest.approx({f"id{2 * i}": reference[i] for i in (0, 2)}, rel=1e-9)
    assert after["id0"] != fresh["id0"]
    store.close()
