"""How the built-in embedder runs onnxruntime: the session's thread settings, and how one
``embed`` call's texts are cut into runs (length-bucketed batches).

A run pads every text to the longest one in it, so texts of similar length belong together:
:func:`plan_batches` sorts them by token count and fills each run up to a token budget, and
the caller puts the vectors back in the texts' order. Padding is masked out of the mean
pooling, so the vectors do not depend on how the texts were grouped (up to float rounding).

Why small runs: a run's activations grow with texts x tokens (x tokens again in attention),
and once they outgrow the CPU's caches every layer waits on memory. Measured on 2 cores
(``memsift bench --only embed``), runs of at most 32 texts and 1024 tokens embed about twice
as many mixed-length texts per second as 0.2.0's runs of 64 texts sorted by characters, and
short texts gain as much; larger budgets (2048, 4096) were slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

#: The default token budget of one run: texts in it x its longest text, padding included.
BATCH_TOKENS = 1024

Bucketing = Literal["tokens", "chars", "none"]


def session_options(ort: Any, *, threads: int | None, allow_spinning: bool) -> Any:
    """onnxruntime session options: all graph optimisations, quiet logs, and these threads.

    Threads: intra-op ``threads`` (default: onnxruntime's, one per physical core: a batch
    of documents uses every core), one inter-op thread (the graph runs sequentially). Neither
    pool spins after a call unless ``allow_spinning``: by default onnxruntime's workers
    busy-wait for more work for a while after each run, and a local cross-encoder started
    right after the query embedding (a search's rerank stage) then shares the cores with
    them -- measured on 2 cores, 10 pairs took 117 ms right after a default embedding
    and 60 ms after one with spinning off. Spinning off costs little here: a query is one
    short run, a batch few long ones.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    spin = "1" if allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


def plan_batches(
    texts: Sequence[str],
    lengths: Sequence[int],
    bucketing: Bucketing = "tokens",
    batch_size: int = 32,
    batch_tokens: int = BATCH_TOKENS,
) -> list[npt.NDArray[np.int64]]:
    """The runs of one ``embed`` call: the indices of the texts each run embeds.

    ``bucketing="tokens"``: texts sorted by token count (``lengths``, stable), each run filled
    while ``texts in it x its longest`` stays within ``batch_tokens`` and it holds at most
    ``batch_size`` texts -- every run pads its texts to its longest, so sorting keeps the
    padding small, and the budget keeps a run of long texts small enough for the CPU's
    caches. ``"chars"``: sorted by characters, ``batch_size`` per run. ``"none"``: in order.
    Each index appears exactly once; the caller puts the vectors back in the texts' order.
    """
    n = len(texts)
    size = batch_size
    if bucketing == "none":
        order = np.arange(n, dtype=np.int64)
    else:
        keys = lengths if bucketing == "tokens" else [len(t) for t in texts]
        order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable").astype(np.int64)
    if bucketing != "tokens":
        return [order[start : start + size] for start in range(0, n, size)]
    runs: list[npt.NDArray[np.int64]] = []
    start = 0
    budget = batch_tokens
    for position in range(n):
        count = position - start + 1
        if count > 1 and (count > size or count * lengths[order[position]] > budget):
            runs.append(order[start:position])
            start = position
    if start < n:
        runs.append(order[start:])
    return runs


__all__ = ["BATCH_TOKENS", "Bucketing", "plan_batches", "session_options"]
