"""Benchmark: memsift's rerank stage vs calling ``CrossEncoder.predict`` directly.

On the random-weight ms-marco-MiniLM-L-6 cross-encoder of :mod:`memsift.testing.benchkit`, the
30-candidate pool is scored, interleaved, by (a) ``CrossEncoder.predict`` on the (query,
memory) pairs and (b) the search pipeline's :class:`memsift.search.RerankStage` with the
``sentence_transformer`` reranker on the same model object.

:func:`bench_local_search` runs whole searches (the built-in ``minilm`` embedder, the vector
stage, this reranker) beside the cross-encoder alone, before and after the embedder's
thread fix, and the rerank time of every backend
(:func:`memsift.testing.benchkit.local_search_figures`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from memsift.testing.benchkit import (
    POOL,
    QUERY,
    Figure,
    Timed,
    build_minilm_cross_encoder,
    compare_with_stage,
    local_search_figures,
    rerank_overhead_figure,
)


def bench_rerank_overhead(repeats: int = 20) -> dict[str, float]:
    """Median ms of ``CrossEncoder.predict`` vs memsift's rerank stage on a 30-pair pool.

    (a) and (b) run back to back, alternating which goes first. Returns ``direct_ms`` (a),
    ``stage_ms`` (b, ``RerankOutcome.duration_ms``), ``ratio`` (median b / median a; the
    target is at most 1.05), ``paired_ratio`` (median of b/a per round, steadier on a noisy
    machine), ``overhead_ms`` (median of b minus the ``predict`` call inside it: what
    memsift adds), ``inner_ratio`` (median of b over that call, per round: the ratio with
    the machine's noise taken out), ``candidates``, ``repeats`` and ``threads`` (torch's
    intra-op threads).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    import torch

    from memsift.search import RerankStage
    from memsift_sentence_transformers.config import SentenceTransformerRerankerConfig
    from memsift_sentence_transformers.reranker import SentenceTransformerReranker
    from memsift_sentence_transformers.runtime import MODEL_CACHE

    pairs = [(QUERY, text) for text in POOL]
    with tempfile.TemporaryDirectory(prefix="memsift-bench-st-") as tmp:
        folder = build_minilm_cross_encoder(Path(tmp))
        config = SentenceTransformerRerankerConfig(
            model=str(folder), device="cpu", local_files_only=True
        )
        reranker = SentenceTransformerReranker(config)
        loaded = reranker._loaded
        model = loaded.model  # (a) calls the very same CrossEncoder object
        predict = model.predict
        timed = Timed(predict)
        model.predict = timed  # so (b) knows how long predict took inside the stage
        stage = RerankStage.build("sentence_transformer", reranker)
        try:
            out = compare_with_stage(
                stage,
                lambda: predict(pairs, batch_size=config.batch_size, show_progress_bar=False),
                lambda: timed.last_ms,
                repeats,
            )
        finally:
            del model.predict
            stage.close()
            MODEL_CACHE.discard(loaded)
    out["threads"] = float(torch.get_num_threads())
    return out


def bench_local_search(repeats: int = 15) -> list[Figure]:
    """Whole searches and per-backend rerank times on the MiniLM-L6-shaped cross-encoder
    (see :func:`memsift.testing.benchkit.local_search_figures`); nothing stays cached."""
    from memsift_sentence_transformers.runtime import MODEL_CACHE

    def forget(reranker: object) -> None:
        MODEL_CACHE.discard(getattr(reranker, "_loaded", None))

    with tempfile.TemporaryDirectory(prefix="memsift-bench-st-") as tmp:
        folder = build_minilm_cross_encoder(Path(tmp) / "model")
        return local_search_figures(
            "memsift_sentence_transformers",
            "sentence_transformer",
            folder,
            Path(tmp),
            repeats,
            forget=forget,
        )


def run(quick: bool) -> list[Figure]:
    """What ``memsift bench`` shows for this plugin (entry point ``memsift.benchmarks``)."""
    result = bench_rerank_overhead(repeats=10 if quick else 20)
    figures = [rerank_overhead_figure("memsift_sentence_transformers", result)]
    return figures + bench_local_search(repeats=5 if quick else 15)


__all__ = ["bench_local_search", "bench_rerank_overhead", "run"]
