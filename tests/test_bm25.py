"""The built-in `bm25` reranker: lexical scores fused with vector scores within the pool."""

from __future__ import annotations

import pytest

from memsift.builtin.bm25 import BM25Config, BM25Reranker
from memsift.interfaces import Candidate, MemoryRecord


def cands(items: list[tuple[str, float]]) -> list[Candidate]:
    return [
        Candidate(text=t, vector_score=v, record=MemoryRecord(id=str(i), memory=t, hash=str(i)))
        for i, (t, v) in enumerate(items)
    ]


POOL = cands(
    [
        ("My manager had a birthday last week", 0.57),
        ("Priya Raman is my manager", 0.56),
        ("We met at the office on Monday", 0.50),
    ]
)


def test_a_rare_exact_name_lifts_a_close_candidate() -> None:
    scores = BM25Reranker(BM25Config()).score_candidates("Who is Priya Raman?", POOL)
    assert max(range(3), key=lambda i: scores[i]) == 1


def test_weight_zero_keeps_vector_order_and_one_is_pure_bm25() -> None:
    vector_only = BM25Reranker(BM25Config(weight=0.0)).score_candidates("Priya Raman", POOL)
    assert sorted(range(3), key=lambda i: -vector_only[i]) == [0, 1, 2]
    lexical = BM25Reranker(BM25Config(weight=1.0)).score_candidates("Priya Raman", POOL)
    assert lexical[1] == 1.0 and lexical[0] == lexical[2] == 0.0


def test_fused_score_is_the_documented_formula() -> None:
    reranker = BM25Reranker(BM25Config(weight=0.25))
    raw = reranker.bm25("Priya manager", [c.text for c in POOL])
    lo, hi = min(raw), max(raw)
    lex = [(r - lo) / (hi - lo) for r in raw]
    vs = [c.vector_score for c in POOL]
    vec = [(v - min(vs)) / (max(vs) - min(vs)) for v in vs]
    expected = [0.25 * a + 0.75 * b for a, b in zip(lex, vec)]
    assert reranker.score_candidates("Priya manager", POOL) == pytest.approx(expected)


def test_bm25_rewards_term_frequency_and_penalises_length() -> None:
    r = BM25Reranker(BM25Config())
    short, long_, twice = r.bm25(
        "tea", ["green tea", "green tea " + "and more words " * 10, "tea tea"]
    )
    assert twice > short > long_ > 0


def test_no_query_terms_in_common_scores_zero_lexically() -> None:
    assert BM25Reranker(BM25Config()).rerank("zebra", ["green tea", "black coffee"]) == [0, 0]


@pytest.mark.parametrize("bad", [{"weight": 1.5}, {"k1": -1}, {"b": 2}, {"wieght": 0.1}])
def test_bad_config_is_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BM25Config(**bad)


# --------------------------------------------------------------------- analyzer, statistics


def with_keyword_scores(pool: list[Candidate], scores: list[float]) -> list[Candidate]:
    return [
        Candidate(text=c.text, vector_score=c.vector_score, record=c.record, keyword_score=s)
        for c, s in zip(pool, scores)
    ]


def test_stemming_and_stop_words_apply_to_the_pool_statistics() -> None:
    pool = cands([("I went hiking with Kate", 0.5), ("the weather was nice", 0.5)])
    scores = BM25Reranker(BM25Config(weight=1.0)).score_candidates("Who hikes?", pool)
    assert scores == [1.0, 0.0]  # "hikes" meets "hiking"; "who" is a stop word
    raw = BM25Reranker(BM25Config(weight=1.0, stemming=False, stopwords=False))
    assert raw.score_candidates("Who hikes?", pool) == [0.0, 0.0]


def test_numbers_and_dates_match_whole() -> None:
    pool = cands([("paid on 2023-05-08", 0.5), ("paid on 2023-06-01", 0.5), ("no date", 0.5)])
    scores = BM25Reranker(BM25Config(weight=1.0)).score_candidates("what on 2023-05-08?", pool)
    assert scores[0] == 1.0 and scores[1] == scores[2] == 0.0


def test_collection_statistics_come_from_the_store_scores() -> None:
    reranker = BM25Reranker(BM25Config(weight=1.0))
    assert reranker.uses_keyword_scores
    pool = with_keyword_scores(POOL, [0.0, 2.0, 1.0])  # what the store's FTS5 bm25 said
    assert reranker.score_candidates("anything at all", pool) == [0.0, 1.0, 0.5]
    fused = BM25Reranker(BM25Config(weight=0.5)).score_candidates("x", pool)
    assert fused == pytest.approx([0.5 * 0.0 + 0.5 * 1.0, 0.5 * 1.0 + 0.5 * (6 / 7), 0.25])


def test_pool_statistics_ignore_store_scores_and_fill_in_when_they_are_missing() -> None:
    pool = with_keyword_scores(POOL, [0.0, 2.0, 1.0])
    by_pool = BM25Reranker(BM25Config(weight=1.0, statistics="pool"))
    assert not by_pool.uses_keyword_scores
    assert by_pool.score_candidates("Priya Raman", pool) == [0.0, 1.0, 0.0]
    # a store without a keyword index gives no keyword scores: pool statistics then
    mixed = [*pool[:2], POOL[2]]
    assert BM25Reranker(BM25Config(weight=1.0)).score_candidates("Priya Raman", mixed) == [
        0.0,
        1.0,
        0.0,
    ]


def test_defaults_are_the_ones_chosen_on_conversations() -> None:
    cfg = BM25Config()
    assert (cfg.weight, cfg.top_k, cfg.statistics, cfg.language) == (
        0.3,
        50,
        "collection",
        "english",
    )


@pytest.mark.parametrize("bad", [{"language": "klingon"}, {"statistics": "global"}])
def test_bad_tokenisation_config_is_rejected(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        BM25Config(**bad)
