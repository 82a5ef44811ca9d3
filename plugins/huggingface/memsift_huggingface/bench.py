"""Benchmark: memsift's rerank stage vs the plain transformers forward pass (local mode).

On the random-weight ms-marco-MiniLM-L-6 cross-encoder of :mod:`memsift.testing.benchkit`, the
30-candidate pool is scored, interleaved, by (a) what one would write with transformers
alone -- tokenise the (query, memory) pairs, one forward pass under
``torch.inference_mode()`` -- and (b) the search pipeline's
:class:`memsift.search.RerankStage` with the ``huggingface`` reranker in the local mode, on
the same tokenizer and model objects.

:func:`bench_local_search` runs whole searches (the built-in ``minilm`` embedder, the vector
stage, this reranker) beside the cross-encoder alone, before and after the embedder's
thread fix, and the rerank time of every backend
(:func:`memsift.testing.benchkit.local_search_figures`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

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
    """Median ms of a plain transformers forward pass vs memsift's rerank stage, 30 pairs.

    (a) and (b) run back to back, alternating which goes first. Returns ``direct_ms`` (a:
    tokenise + forward), ``stage_ms`` (b, ``RerankOutcome.duration_ms``), ``ratio`` (median
    b / median a; the target is at most 1.05), ``paired_ratio`` (median of b/a per round,
    steadier on a noisy machine), ``overhead_ms`` (median of b minus the same tokenise +
    forward work timed inside it: what memsift adds), ``inner_ratio`` (median of b over that
    work, per round: the ratio with the machine's noise taken out), ``candidates``, ``repeats`` and
    ``threads`` (torch's intra-op threads).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    import torch

    from memsift.search import RerankStage
    from memsift_huggingface.config import HuggingFaceRerankerConfig
    from memsift_huggingface.reranker import HuggingFaceReranker
    from memsift_huggingface.runtime import MODEL_CACHE

    with tempfile.TemporaryDirectory(prefix="memsift-bench-hf-") as tmp:
        folder = build_minilm_cross_encoder(Path(tmp))
        config = HuggingFaceRerankerConfig(model=str(folder), device="cpu", local_files_only=True)
        reranker = HuggingFaceReranker(config)
        loaded = reranker._local
        assert loaded is not None
        tokenizer, model = loaded.tokenizer, loaded.model  # (a) uses the very same objects
        # (b)'s model work is the tokenizer call plus the forward pass: time both inside it
        tokenize, forward = Timed(tokenizer.__call__), Timed(model.forward)
        loaded.tokenizer = _TokenizerProxy(tokenizer, tokenize)
        model.forward = forward
        stage = RerankStage.build("huggingface", reranker)

        def direct() -> None:
            with torch.inference_mode():
                batch = tokenizer(
                    [QUERY] * len(POOL),
                    POOL,
                    padding=True,
                    truncation=True,
                    max_length=config.max_length,
                    return_tensors="pt",
                )
                model(**batch).logits[:, 0].tolist()

        try:
            out = compare_with_stage(
                stage, direct, lambda: tokenize.last_ms + forward.last_ms, repeats
            )
        finally:
            loaded.tokenizer = tokenizer
            del model.forward
            stage.close()
            MODEL_CACHE.discard(loaded)
    out["threads"] = float(torch.get_num_threads())
    return out


class _TokenizerProxy:
    """Calls go through ``call`` (timed); everything else reaches the tokenizer."""

    def __init__(self, tokenizer: Any, call: Timed) -> None:
        self._tokenizer = tokenizer
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def bench_local_search(repeats: int = 15) -> list[Figure]:
    """Whole searches and per-backend rerank times on the MiniLM-L6-shaped cross-encoder
    (see :func:`memsift.testing.benchkit.local_search_figures`); nothing stays cached."""
    from memsift_huggingface.runtime import MODEL_CACHE

    def forget(reranker: object) -> None:
        MODEL_CACHE.discard(getattr(reranker, "_local", None))

    with tempfile.TemporaryDirectory(prefix="memsift-bench-hf-") as tmp:
        folder = build_minilm_cross_encoder(Path(tmp) / "model")
        return local_search_figures(
            "memsift_huggingface", "huggingface", folder, Path(tmp), repeats, forget=forget
        )


def run(quick: bool) -> list[Figure]:
    """What ``memsift bench`` shows for this plugin (entry point ``memsift.benchmarks``)."""
    result = bench_rerank_overhead(repeats=10 if quick else 20)
    figures = [rerank_overhead_figure("memsift_huggingface", result)]
    return figures + bench_local_search(repeats=5 if quick else 15)


__all__ = ["bench_local_search", "bench_rerank_overhead", "run"]
