"""A kit for benchmarking a local reranker: memsift's rerank stage vs calling the model directly.

A plugin builds :func:`build_minilm_cross_encoder` (a cross-encoder of the real
ms-marco-MiniLM-L-6 architecture -- BERT, vocab 30522, hidden 384, 6 layers, 12 heads,
intermediate 1536, one label -- with random weights and a WordPiece tokenizer that knows
every word of the benchmark texts, so token counts are those of a real vocabulary), loads
it with its reranker, and hands :func:`compare_with_stage` (a) the direct call on the
(:data:`QUERY`, memory) pairs of the 30-text :data:`POOL` and (b) a
:class:`memsift.search.RerankStage` over that reranker. Random weights are fine: only time
is measured.

``memsift bench`` finds a plugin's benchmark through the ``memsift.benchmarks`` entry-point
group: the entry point names a ``run(quick: bool) -> list[Figure]`` callable, and
:func:`rerank_overhead_figure` turns what :func:`compare_with_stage` measured into the
figure the bench table shows::

    [project.entry-points."memsift.benchmarks"]
    mine = "memsift_mine.bench:run"

Importing this module imports neither torch nor transformers; the model builders do.
"""

from __future__ import annotations

import importlib
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memsift.figures import Figure
from memsift.records import MemoryRecord, VectorHit
from memsift.search import RerankStage
from memsift.testing.tiny_models import SPECIALS, save_wordpiece_tokenizer

QUERY = "which city did alice move to and what does she do for a living"
POOL = [
    "Alice moved to Lisbon in March and started working as a nurse at the city hospital.",
    "Bob prefers green tea over coffee in the morning, especially before long meetings.",
    "The quarterly report for the finance team is due on Friday at noon.",
    "Alice's sister lives in Porto and visits her every second weekend.",
    "Our team meeting moved from Monday to Tuesday at 10am because of the holiday.",
    "Carol is allergic to peanuts and always checks the menu before ordering.",
    "Alice said she misses the rainy weather of Amsterdam, where she grew up.",
    "The car broke down on the highway near Coimbra, and the repair took two days.",
    "Dan is training for a marathon in October and runs five times a week.",
    "Alice adopted a grey cat named Pixel shortly after she arrived in Lisbon.",
    "The project deadline was extended by two weeks after the client asked for changes.",
    "Eve recommended a small Italian restaurant near the river for Friday dinner.",
    "Alice works night shifts at the hospital on Wednesdays and Thursdays.",
    "Frank is learning Portuguese with an app and practises for twenty minutes a day.",
    "The office wifi password changes on the first day of every month.",
    "Alice plans to take a cooking class to learn how to make pastel de nata.",
    "Grace moved to Berlin last year to join a startup that builds bicycles.",
    "Henry's birthday is on the twelfth of June and he likes chocolate cake.",
    "Alice is saving money to buy a small flat with a balcony near the sea.",
    "The library closes at eight on weekdays and at five on Saturdays.",
    "Ivy prefers window seats on flights and always travels with a paper book.",
    "Alice's favourite band is playing in Lisbon in September and she bought tickets.",
    "Jack fixed the leaking kitchen tap himself after watching a video tutorial.",
    "The dentist appointment was rescheduled to next Thursday at 3pm.",
    "Alice volunteers at an animal shelter on Sunday mornings.",
    "Kate is writing a novel about a lighthouse keeper on a remote island.",
    "Leo needs to renew his passport before the trip to Brazil in December.",
    "Alice told Mia that the hospital offered her a permanent contract as a nurse.",
    "Mia is vegetarian and does not eat fish or seafood.",
    "The building's elevator will be under maintenance all of next week.",
]

_WORD = re.compile(r"\w+|[^\w\s]")


def pool_hits() -> list[VectorHit]:
    """The :data:`POOL` as vector-stage hits, in falling vector-score order."""
    return [
        VectorHit(
            record=MemoryRecord(id=f"m{i}", memory=text, hash=f"bench-{i}"),
            score=0.9 - i * 0.01,
        )
        for i, text in enumerate(POOL)
    ]


class Timed:
    """Wraps a callable and keeps the duration of its last call, in ms."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.last_ms = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.last_ms = (time.perf_counter() - start) * 1000


def summarize(direct: list[float], stage: list[float], inner: list[float]) -> dict[str, float]:
    """Medians and ratios of interleaved samples (``inner``: the model call inside ``stage``).

    ``direct_ms`` and ``stage_ms`` (medians), ``ratio`` (median stage / median direct),
    ``paired_ratio`` (median of stage/direct per round, steadier on a noisy machine),
    ``overhead_ms`` (median of stage minus inner: what memsift adds) and ``inner_ratio``
    (median of stage over inner per round: the ratio with the machine's noise taken out).
    """
    a = statistics.median(direct)
    b = statistics.median(stage)
    return {
        "direct_ms": round(a, 3),
        "stage_ms": round(b, 3),
        "ratio": round(b / a, 4),
        "paired_ratio": round(statistics.median(y / x for x, y in zip(direct, stage)), 4),
        "overhead_ms": round(statistics.median(y - z for y, z in zip(stage, inner)), 4),
        "inner_ratio": round(statistics.median(y / z for y, z in zip(stage, inner)), 5),
    }


def compare_with_stage(
    stage: RerankStage,
    direct: Callable[[], object],
    inner_ms: Callable[[], float],
    repeats: int,
    *,
    warmup: int = 2,
) -> dict[str, float]:
    """Time ``direct()`` against ``stage.run(QUERY, pool_hits())``, interleaved.

    After ``warmup`` rounds of both (allocator, kernels, tokenizer caches), each of
    ``repeats`` rounds runs the two back to back, alternating which goes first. The stage's
    time is its ``RerankOutcome.duration_ms``; ``inner_ms()``, read right after each stage
    run, is how long the model work took inside it. Returns :func:`summarize` of the
    samples plus ``candidates`` and ``repeats``.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    hits = pool_hits()

    def timed_direct() -> float:
        start = time.perf_counter()
        direct()
        return (time.perf_counter() - start) * 1000

    def via_stage() -> tuple[float, float]:
        outcome = stage.run(QUERY, hits)
        if not outcome.applied:
            raise RuntimeError(f"the rerank stage failed: {outcome.error}")
        return outcome.duration_ms, inner_ms()

    for _ in range(warmup):
        timed_direct()
        via_stage()
    direct_ms: list[float] = []
    stage_ms: list[float] = []
    model_ms: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            direct_ms.append(timed_direct())
            total, inner = via_stage()
        else:
            total, inner = via_stage()
            direct_ms.append(timed_direct())
        stage_ms.append(total)
        model_ms.append(inner)
    out = summarize(direct_ms, stage_ms, model_ms)
    out.update(candidates=float(len(POOL)), repeats=float(repeats))
    return out


def rerank_overhead_figure(package: str, result: dict[str, float]) -> Figure:
    """The bench table's row for :func:`compare_with_stage`'s ``result`` of ``package``: the
    ratio of the rerank stage to the direct call, held to at most 1.05."""
    ratio = float(result.get("ratio", float("nan")))
    return Figure(
        f"{package}: rerank stage / direct call (30 pool)",
        ratio,
        "ratio",
        "<= 1.05",
        ratio <= 1.05,
        note=", ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "ratio"),
    )


def build_minilm_cross_encoder(folder: Path) -> Path:
    """Save a random-weight cross-encoder of the ms-marco-MiniLM-L-6 shape into ``folder``.

    Imports torch and transformers.
    """
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")
    words = sorted({w.lower() for text in [QUERY, *POOL] for w in _WORD.findall(text)})
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = SPECIALS + [w for w in words if w not in SPECIALS]
    vocab += [c for c in letters if c not in vocab] + [f"##{c}" for c in letters]
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(str(folder))
    save_wordpiece_tokenizer(folder, vocab)
    return folder


__all__ = [
    "POOL",
    "QUERY",
    "SPECIALS",
    "Figure",
    "Timed",
    "build_minilm_cross_encoder",
    "compare_with_stage",
    "pool_hits",
    "rerank_overhead_figure",
    "save_wordpiece_tokenizer",
    "summarize",
]
