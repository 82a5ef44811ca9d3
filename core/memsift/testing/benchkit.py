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

:func:`local_search_figures` measures a local reranker in whole searches (the built-in
``minilm`` query embedding, the vector stage, then the rerank, through ``Memory.search``)
beside the cross-encoder alone, with the embedder spinning (``allow_spinning``, the old
behaviour) and not, and the rerank time of each ``backend`` (torch, onnx fp32 and int8,
openvino) as a ratio to torch's.

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

from memsift.errors import MemsiftError
from memsift.figures import Figure
from memsift.kit.local import quiet_loading
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
    with quiet_loading():
        transformers.BertForSequenceClassification(config).save_pretrained(str(folder))
        save_wordpiece_tokenizer(folder, vocab)
    return folder


# --------------------------------------------------------------------------- whole searches

#: The reranker variants of :func:`local_search_figures`: label -> backend options.
BACKEND_VARIANTS: dict[str, dict[str, str]] = {
    "torch": {"backend": "torch"},
    "onnx fp32": {"backend": "onnx"},
    "onnx int8": {"backend": "onnx", "quantize": "int8"},
    "openvino": {"backend": "openvino"},
}


def interleaved(
    calls: dict[str, Callable[[], object]], repeats: int, *, warmup: int = 2
) -> dict[str, list[float]]:
    """ms of each call over ``repeats`` rounds, the calls run back to back in each round in
    an order that rotates (no call always follows the same one), after ``warmup`` rounds."""
    names = list(calls)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            if r >= warmup:
                samples[name].append((time.perf_counter() - start) * 1000)
    return samples


def local_search_figures(
    package: str,
    provider: str,
    model: Path,
    tmp: Path,
    repeats: int,
    *,
    forget: Callable[[Any], None] | None = None,
) -> list[Figure]:
    """Whole searches with the local reranker ``provider`` on the cross-encoder in ``model``.

    Rows: (a) search / cross-encoder alone on the same 30 pairs (target <= 1.05; torch and
    int8 ONNX), also with the embedder spinning (the old behaviour, "before"); (b) the
    rerank time of every backend that loads, as a ratio to torch's; (c) search p50 with
    torch after the thread fix and with int8 ONNX, as ratios to before (targets <= 0.8 and
    <= 0.5). Each of the three :data:`GROUPS` runs side by side (:func:`interleaved`), one
    group after the other. Exports go to ``tmp``. A variant that cannot be built (a
    backend's library missing, no ``allow_spinning`` option in the embedder) is left out
    and said so in a note.
    ``forget(reranker)`` is called on every reranker built, at the end (to drop its model
    from the plugin's cache).
    """
    from memsift.config import resolve_section
    from memsift.memory import Memory
    from memsift.registry import get_reranker

    base = {"model": str(model), "device": "cpu", "local_files_only": True, "top_k": len(POOL)}
    exports = {"export_dir": str(tmp / "exports")}
    missing: list[str] = []
    rerankers: dict[str, Any] = {}
    for label, options in BACKEND_VARIANTS.items():
        extra = exports if options["backend"] != "torch" else {}
        section = {"provider": provider, "config": {**base, **options, **extra}}
        try:
            config = resolve_section("reranker", section).config
            rerankers[label] = get_reranker(provider).build(config)
        except MemsiftError as exc:
            missing.append(f"{label}: {exc}")
    searches: dict[str, Memory] = {}
    embedders = {"before": {"allow_spinning": True}, "after": {}}
    for label, embedder in embedders.items():
        for backend in ("torch", "onnx int8"):
            if backend not in rerankers or (label == "before" and backend != "torch"):
                continue
            options = BACKEND_VARIANTS[backend]
            extra = exports if options["backend"] != "torch" else {}
            try:
                memory = Memory.from_config(
                    {
                        "vector_store": {
                            "provider": "faiss",
                            "config": {"path": str(tmp / f"s-{label}-{backend}")},
                        },
                        "embedder": {"provider": "minilm", "config": embedder},
                        "reranker": {"provider": provider, "config": {**base, **options, **extra}},
                    }
                )
            except MemsiftError as exc:
                missing.append(f"search {label}: {exc}")
                continue
            memory.add(POOL, user_id="bench", infer=False)
            searches[f"search {backend} {label}"] = memory
    try:
        calls: dict[str, Callable[[], object]] = {}
        for label, reranker in rerankers.items():
            calls[f"rerank {label}"] = _rerank_call(reranker)
        for label, memory in searches.items():
            calls[label] = _search_call(memory)
        # each group side by side, apart from the others: a backend's worker threads must
        # not slow the calls that follow them in another group's figures
        p50: list[dict[str, float]] = []
        for group in GROUPS:
            present = {name: calls[name] for name in group if name in calls}
            samples = interleaved(present, repeats) if present else {}
            p50.append({k: statistics.median(v) for k, v in samples.items()})
    finally:
        built = [*rerankers.values(), *(m.reranker for m in searches.values())]
        for memory in searches.values():
            memory.close()
        for reranker in built:
            reranker.close()
            if forget is not None:
                forget(reranker)
    return _search_rows(package, p50, missing)


def _rerank_call(reranker: Any) -> Callable[[], object]:
    return lambda: reranker.rerank(QUERY, POOL)


def _search_call(memory: Any) -> Callable[[], object]:
    def search() -> object:
        out = memory.search(QUERY, user_id="bench", top_k=10, rerank=True)
        block = out["rerank"]
        if not block["applied"] or block["candidates"] != len(POOL):
            raise RuntimeError(f"the search did not rerank the pool of 30: {block}")
        return out

    return search


#: What :func:`local_search_figures` runs side by side: the thread fix (torch), the
#: backends' rerank times, and int8 ONNX in the search.
GROUPS = (
    ("rerank torch", "search torch after", "search torch before"),
    ("rerank torch", "rerank onnx fp32", "rerank onnx int8", "rerank openvino"),
    ("rerank onnx int8", "search onnx int8 after", "search torch before"),
)


def _search_rows(package: str, p50: list[dict[str, float]], missing: list[str]) -> list[Figure]:
    rows: list[Figure] = []

    def row(name: str, group: int, num: str, den: str, target: float | None) -> None:
        got = p50[group]
        if num not in got or den not in got:
            return
        value = round(got[num] / got[den], 4)
        ok = None if target is None else value <= target
        mark = "" if target is None else f"<= {target:g}"
        note = f"{num} {got[num]:.1f} ms, {den} {got[den]:.1f} ms"
        rows.append(Figure(f"{package}: {name}", value, "ratio", mark, ok, note=note))

    torch_alone = ("search torch after", "rerank torch")
    row("search / cross-encoder alone (pool 30, torch)", 0, *torch_alone, 1.05)
    before_alone = ("search torch before", "rerank torch")
    row("search / cross-encoder alone, embedder spinning (before)", 0, *before_alone, None)
    row("search p50 pool 30 torch after / before", 0, *torch_alone[:1], "search torch before", 0.8)
    for label in ("onnx fp32", "onnx int8", "openvino"):
        row(f"rerank pool 30 {label} / torch", 1, f"rerank {label}", "rerank torch", None)
    int8 = ("search onnx int8 after", "rerank onnx int8")
    row("search / cross-encoder alone (pool 30, onnx int8)", 2, *int8, 1.05)
    int8_before = ("search onnx int8 after", "search torch before")
    row("search p50 pool 30 onnx int8 / torch before", 2, *int8_before, 0.5)
    for group, name in ((0, "search torch before"), (0, "search torch after"), (2, int8[0])):
        if name in p50[group]:
            value = round(p50[group][name], 2)
            rows.append(Figure(f"{package}: {name} p50 (pool 30)", value, "ms"))
    if missing:
        note = "; ".join(missing)
        rows.append(Figure(f"{package}: variants left out", float(len(missing)), "", note=note))
    return rows


__all__ = [
    "BACKEND_VARIANTS",
    "GROUPS",
    "POOL",
    "QUERY",
    "SPECIALS",
    "Figure",
    "Timed",
    "build_minilm_cross_encoder",
    "compare_with_stage",
    "interleaved",
    "local_search_figures",
    "pool_hits",
    "rerank_overhead_figure",
    "save_wordpiece_tokenizer",
    "summarize",
]
