"""The core's helpers for local-model plugins: memsift.testing.benchkit, check_embed_input.

(memsift.kit.local, the local-model runtime, is tested in test_kit_local.py.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from memsift import InvalidInputError, Reranker, RerankerConfig
from memsift.interfaces import check_embed_input, check_rerank_input
from memsift.search import RerankStage
from memsift.testing.benchkit import (
    POOL,
    QUERY,
    SPECIALS,
    Timed,
    compare_with_stage,
    pool_hits,
    summarize,
)

# --------------------------------------------------------------------------- check_embed_input


def test_check_embed_input_returns_a_list() -> None:
    assert check_embed_input(["a", "b"]) == ["a", "b"]
    assert check_embed_input(("a", "")) == ["a", ""]
    assert check_embed_input(t for t in ["x"]) == ["x"]
    assert check_embed_input([]) == []


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("one text", "not a single string; wrap it in a list"),
        (b"bytes", "not a single string; wrap it in a list"),
        (42, "texts must be a sequence of strings, got int"),
        (None, "texts must be a sequence of strings, got NoneType"),
        (["ok", 3], r"texts\[1\] must be a string, got int"),
        ([None], r"texts\[0\] must be a string, got NoneType"),
    ],
)
def test_check_embed_input_refuses(texts: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_embed_input(texts)


# --------------------------------------------------------------------------- benchkit


def test_pool_and_hits() -> None:
    hits = pool_hits()
    assert len(POOL) == 30 and QUERY.strip()
    assert [h.record.memory for h in hits] == POOL
    assert len({h.record.id for h in hits}) == 30
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert SPECIALS[:2] == ["[PAD]", "[UNK]"]


def test_timed_keeps_the_last_duration_even_on_error() -> None:
    def work(x: int, *, sleep: float = 0.0) -> int:
        time.sleep(sleep)
        if x < 0:
            raise ValueError("negative")
        return x * 2

    timed = Timed(work)
    assert timed.last_ms == 0.0
    assert timed(3, sleep=0.01) == 6
    assert timed.last_ms >= 10
    with pytest.raises(ValueError):
        timed(-1)
    assert 0 <= timed.last_ms < 10


def test_summarize_medians_and_ratios() -> None:
    out = summarize(direct=[10.0, 20.0, 30.0], stage=[11.0, 22.0, 30.0], inner=[10.0, 21.0, 29.0])
    assert out == {
        "direct_ms": 20.0,
        "stage_ms": 22.0,
        "ratio": 1.1,
        "paired_ratio": 1.1,
        "overhead_ms": 1.0,
        "inner_ratio": round(22 / 21, 5),
    }


class SleepyReranker(Reranker):
    """A pure-Python reranker whose work takes a known time, timed from inside."""

    def __init__(self) -> None:
        super().__init__(RerankerConfig())
        self.score = Timed(self._score)

    def _score(self, documents: Sequence[str]) -> list[float]:
        time.sleep(0.002)
        return [1.0 / (1 + i) for i in range(len(documents))]

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores: list[float] = self.score(check_rerank_input(query, documents))
        return scores


def test_compare_with_stage_interleaves_and_reports() -> None:
    reranker = SleepyReranker()
    stage = RerankStage.build("sleepy", reranker)
    order: list[str] = []

    def direct() -> None:
        order.append("direct")
        reranker._score(POOL)

    def inner() -> float:
        order.append("stage")
        return reranker.score.last_ms

    try:
        out = compare_with_stage(stage, direct, inner, repeats=4, warmup=1)
    finally:
        stage.close()
    assert list(out) == [
        "direct_ms",
        "stage_ms",
        "ratio",
        "paired_ratio",
        "overhead_ms",
        "inner_ratio",
        "candidates",
        "repeats",
    ]
    assert out["candidates"] == 30.0 and out["repeats"] == 4.0
    assert out["direct_ms"] >= 2 and out["stage_ms"] >= 2
    assert 0 <= out["overhead_ms"] < out["stage_ms"] and out["inner_ratio"] >= 1.0
    # one warm-up round, then the order alternates so neither side always goes first
    assert order == ["direct", "stage"] + ["direct", "stage", "stage", "direct"] * 2


def test_compare_with_stage_needs_a_repeat_and_a_working_stage() -> None:
    class Broken(SleepyReranker):
        def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
            raise RuntimeError("boom")

    with pytest.raises(ValueError, match="repeats must be at least 1"):
        compare_with_stage(RerankStage.build("x", SleepyReranker()), lambda: None, float, 0)
    stage = RerankStage.build("broken", Broken())
    try:
        with pytest.raises(RuntimeError, match="the rerank stage failed"):
            compare_with_stage(stage, lambda: None, float, 1)
    finally:
        stage.close()
