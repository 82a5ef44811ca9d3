"""The benchmark function runs and reports what the lead's ``memsift bench`` prints."""

from __future__ import annotations

from pathlib import Path

from memsift.testing.benchkit import local_search_figures
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


def test_local_search_figures_on_the_tiny_model(tmp_path: Path, cross_encoder_dir: Path) -> None:
    """The rows of bench_local_search (on the tiny model here: the MiniLM one is slow)."""
    MODEL_CACHE.clear()  # its models share keys with the other tests' ones
    forgotten: list[object] = []

    def forget(reranker: object) -> None:
        forgotten.append(reranker)
        MODEL_CACHE.discard(getattr(reranker, "_local", None))

    figures = local_search_figures(
        "st", "huggingface", cross_encoder_dir, tmp_path, repeats=1, forget=forget
    )
    rows = {f.name: f for f in figures}
    for name in (
        "st: search / cross-encoder alone (pool 30, torch)",
        "st: search / cross-encoder alone (pool 30, onnx int8)",
        "st: rerank pool 30 onnx fp32 / torch",
        "st: rerank pool 30 onnx int8 / torch",
        "st: rerank pool 30 openvino / torch",
        "st: search torch after p50 (pool 30)",
        "st: search onnx int8 after p50 (pool 30)",
    ):
        assert name in rows, sorted(rows)
        assert rows[name].value > 0
    assert rows["st: search / cross-encoder alone (pool 30, torch)"].target == "<= 1.05"
    before = "st: search p50 pool 30 torch after / before"
    if before in rows:  # the embedder has allow_spinning
        assert rows[before].target == "<= 0.8"
        assert rows["st: search p50 pool 30 onnx int8 / torch before"].target == "<= 0.5"
    else:
        assert "allow_spinning" in rows["st: variants left out"].note
    assert len(forgotten) >= 6
    assert len(MODEL_CACHE) == 0, "the benchmark models must not stay cached"
