"""The benchmark function runs and reports what the lead's ``memsift bench`` prints."""

from __future__ import annotations

from memsift_huggingface.bench import bench_rerank_overhead
from memsift_huggingface.runtime import MODEL_CACHE


def test_bench_rerank_overhead_reports_medians_and_ratios() -> None:
    cached = len(MODEL_CACHE)
    result = bench_rerank_overhead(repeats=1)
    assert {"direct_ms", "stage_ms", "ratio", "overhead_ms", "inner_ratio"} <= set(result)
    assert result["candidates"] == 30.0 and result["repeats"] == 1.0
    assert result["direct_ms"] > 0 and result["stage_ms"] > 0
    assert 0 <= result["overhead_ms"] < result["stage_ms"]
    assert result["inner_ratio"] >= 1.0
    assert len(MODEL_CACHE) == cached, "the benchmark model must not stay cached"
