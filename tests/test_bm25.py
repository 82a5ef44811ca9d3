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
