"""``memsift bench``: the performance figures, side by side.

The core's sections measure add throughput against the embedder alone (``add``), scoped
search latency and the framework overhead of a search (``search``), the vector stage at 1M
memories, flat and HNSW (``scale``), and opening a store and its resident memory (``open``).
The ``local`` section runs the benchmarks installed plugins register in the
``memsift.benchmarks`` entry-point group (each a ``run(quick: bool)`` returning
:class:`~memsift.figures.Figure` objects); the core names no plugin.

Absolute times drift on shared machines, so every figure that is a ratio is measured by
interleaving its two sides in one run, and latencies are reported as medians (p50) and
p95 over many repetitions.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.cli.render import console
from memsift.figures import Figure
from memsift.filters import parse_filter
from memsift.memory import Memory
from memsift.records import Candidate, EmbedderIdentity, FloatArray, MemoryRecord

#: The entry-point group of plugin benchmarks: each entry point names a callable
#: ``run(quick: bool) -> list[Figure]`` (see :mod:`memsift.testing.benchkit`).
BENCHMARK_GROUP = "memsift.benchmarks"

TOPICS = [
    "the budget review",
    "my sister's wedding",
    "the billing migration",
    "a trip to Lisbon",
    "learning Spanish",
    "the marathon plan",
    "a new espresso machine",
    "the hiring pipeline",
    "the dentist appointment",
    "Ethiopian food",
    "the quarterly roadmap",
    "a camping weekend",
]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.choice(len(TOPICS), 2, replace=False)
        out.append(
            f"Note {i}: talked about {TOPICS[a]} and {TOPICS[b]}; follow up on day {i % 28 + 1}"
        )
    return out


def _unit(n: int, dims: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), dims), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def _records(n: int, users: int, start: int = 0) -> list[MemoryRecord]:
    stamp = "2026-01-01T00:00:00.000000+00:00"
    return [
        MemoryRecord(
            id=f"m{i}",
            memory=f"memory number {i}",
            hash=f"{i:032x}",
            metadata={"i": i},
            user_id=f"user{i % users}",
            created_at=stamp,
            updated_at=stamp,
        )
        for i in range(start, start + n)
    ]


def _fill(store: FaissStore, vectors: FloatArray, users: int, progress: Progress | None) -> None:
    n = len(vectors)
    task = progress.add_task("filling store", total=n) if progress else None
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)
        store.insert(_records(stop - start, users, start), vectors[start:stop])
        if progress and task is not None:
            progress.update(task, completed=stop)
    if progress and task is not None:
        progress.remove_task(task)


def _ms(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- figures


def bench_add(quick: bool, tmp: Path) -> list[Figure]:
    """Adding a list of texts in one call vs the embedder's own batched throughput."""
    n = 500 if quick else 2000
    texts = _texts(n)
    m = Memory.from_config(
        {"vector_store": {"provider": "faiss", "config": {"path": str(tmp / "add")}}}
    )
    m.embedder.embed(texts[:16])  # load the model outside the timing
    embed_s, add_s = [], []
    for rep in range(3):  # the same texts on both sides; each run in a scope of its own
        embed_s.append(_timed(lambda: m.embedder.embed(texts)))
        add_s.append(_timed(lambda: m.add(texts, user_id=f"u{rep}", infer=False)))
    m.close()
    e, a = statistics.median(embed_s), statistics.median(add_s)
    ratio = e / a
    return [
        Figure("embedder batched throughput", n / e, "texts/s", note=f"{n} texts, median of 3"),
        Figure("add(list) throughput", n / a, "texts/s"),
        Figure("add / embedder throughput", ratio, "ratio", ">= 0.90", ratio >= 0.90),
    ]


def bench_search(quick: bool, tmp: Path) -> list[Figure]:
    """End-to-end scoped search at 10k memories over 100 users, and the framework overhead."""
    n = 2000 if quick else 10_000
    m = Memory.from_config(
        {
            "vector_store": {"provider": "faiss", "config": {"path": str(tmp / "search")}},
            "reranker": {"provider": "bm25", "config": {}},
        }
    )
    texts = _texts(n, seed=1)
    with Progress(transient=True, console=console) as progress:
        task = progress.add_task(f"embedding {n} memories", total=n)
        for start in range(0, n, 500):
            chunk = texts[start : start + 500]
            for u in range(100):
                part = [t for j, t in enumerate(chunk) if (start + j) % 100 == u]
                if part:
                    m.add(part, user_id=f"user{u}", infer=False)
            progress.update(task, completed=min(n, start + 500))
    queries = [f"what did I say about {t}?" for t in TOPICS] * (2 if quick else 5)
    for q in queries[:5]:
        m.search(q, user_id="user1", rerank=False)
    plain: list[float] = []
    totals: list[float] = []
    overhead: list[float] = []
    stage_overhead: list[float] = []
    parts: dict[str, list[float]] = {"embed": [], "vector": [], "rerank": []}
    store = m.vector_store
    rr = m.reranker_stage
    assert rr is not None
    for i, q in enumerate(queries):
        user = f"user{i % 100}"
        plain.append(_timed(lambda: m.search(q, user_id=user, top_k=10, rerank=False)))
        # each part measured alone ...
        t0 = time.perf_counter()
        vec = m.embedder.embed([q], purpose="query")[0]
        t1 = time.perf_counter()
        hits = store.search(vec, filters=parse_filter({"user_id": user}), limit=30)
        t2 = time.perf_counter()
        rr.reranker.score_candidates(q, [Candidate.from_hit(h) for h in hits])
        t3 = time.perf_counter()
        parts["embed"].append(t1 - t0)
        parts["vector"].append(t2 - t1)
        parts["rerank"].append(t3 - t2)
        # ... and the whole search with the same parts inside
        r = m.search(q, user_id=user, top_k=10, rerank=True)
        t = r["timings"]
        totals.append(t["total_ms"] / 1000)
        inner = t["embed_ms"] + t["vector_ms"] + t["rerank_provider_ms"]
        overhead.append((t["total_ms"] - inner) / 1000)
        stage_overhead.append((t["rerank_ms"] - t["rerank_provider_ms"]) / 1000)
    m.close()
    p50, p95 = _ms(plain)
    e50, _ = _ms(parts["embed"])
    v50, _ = _ms(parts["vector"])
    r50, _ = _ms(parts["rerank"])
    t50, _ = _ms(totals)
    o50, o95 = _ms(overhead)
    s50, _ = _ms(stage_overhead)
    alone = e50 + v50 + r50
    label = f"{n // 1000}k memories / 100 users"
    return [
        Figure(f"search p50, no rerank ({label})", p50, "ms", "<= 8", p50 <= 8),
        Figure(f"search p95, no rerank ({label})", p95, "ms"),
        Figure("  query embedding alone p50", e50, "ms"),
        Figure("  vector stage alone p50", v50, "ms"),
        Figure("  bm25 on a 30-pool alone p50", r50, "ms"),
        Figure("search p50 with bm25 rerank", t50, "ms"),
        Figure(
            "framework overhead p50 (total - own parts)",
            o50,
            "ms",
            "<= 0.5",
            o50 <= 0.5,
            note=f"p95 {o95:.3f} ms; medians: total {t50:.2f} - parts alone {alone:.2f}",
        ),
        Figure("rerank-stage overhead p50 (stage - provider)", s50, "ms", "<= 0.5", s50 <= 0.5),
    ]


def bench_scale(quick: bool, tmp: Path) -> list[Figure]:
    """The vector stage alone at 1M memories (random unit vectors, 384-d)."""
    dims = 384
    n = 100_000 if quick else 1_000_000
    users = 1000
    ident = EmbedderIdentity("bench", "random", dims)
    vectors = _unit(n, dims, seed=7)
    queries = _unit(50, dims, seed=8)
    figures: list[Figure] = []
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    with Progress(transient=True, console=console) as progress:
        store = FaissStore(FaissStoreConfig(path=str(tmp / "scale")))
        store.open(ident)
        _fill(store, vectors, users, progress)
    samples = []
    for i, q in enumerate(queries):
        f = parse_filter({"user_id": f"user{i % users}"})
        samples.append(_timed(lambda: store.search(q, filters=f, limit=10)))
    p50, p95 = _ms(samples)
    figures.append(
        Figure(
            f"scoped vector stage p50 ({label} / {users} users)",
            p50,
            "ms",
            "<= 5",
            p50 <= 5,
            note=f"p95 {p95:.2f} ms, exact",
        )
    )
    store.close()
    # one scope holding everything: flat (exact) and HNSW, on random unit vectors (the
    # worst case for a graph index: no structure) and on clustered vectors (like real
    # embeddings: topics, paraphrases)
    hn = 20_000 if quick else 100_000
    for kind, data, qs in (
        ("random", vectors[:hn], queries),
        ("clustered", *_clustered(hn, dims, seed=5)),
    ):
        figures.extend(_single_scope(tmp / f"single-{kind}", kind, data, qs, ident))
    return figures


def _clustered(n: int, dims: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Unit vectors around 500 topic centres, and 50 queries near stored vectors."""
    rng = np.random.default_rng(seed)
    centres = _unit(500, dims, seed + 1)
    noise = _unit(n, dims, seed + 2)
    data = centres[rng.integers(500, size=n)] + 0.35 * noise
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[rng.integers(n, size=50)] + 0.3 * _unit(50, dims, seed + 3)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data.astype(np.float32), queries.astype(np.float32)


def _single_scope(
    path: Path, kind: str, data: FloatArray, queries: FloatArray, ident: EmbedderIdentity
) -> list[Figure]:
    n = len(data)
    label = f"{n // 1000}k {kind}"
    with Progress(transient=True, console=console) as progress:
        flat = FaissStore(FaissStoreConfig(path=str(path / "flat")))
        flat.open(ident)
        _fill(flat, data, 1, progress)
    f_all = parse_filter({"user_id": "user0"})
    exact_ids, flat_s = [], []
    for q in queries:
        flat_s.append(_timed(lambda: flat.search(q, filters=f_all, limit=10)))
        exact_ids.append({h.record.id for h in flat.search(q, filters=f_all, limit=10)})
    flat.close()
    fl50, _ = _ms(flat_s)
    figures = [
        Figure(
            f"single-scope exact (flat) p50 ({label})",
            fl50,
            "ms",
            note=f"{n * data.shape[1] * 4 / fl50 / 1e6:.1f} GB/s effective",
        )
    ]
    t0 = time.perf_counter()
    hnsw = FaissStore(FaissStoreConfig(path=str(path / "hnsw"), index="hnsw"))
    hnsw.open(ident)
    with Progress(transient=True, console=console) as progress:
        _fill(hnsw, data, 1, progress)
    build_s = time.perf_counter() - t0
    h_s, found = [], 0
    for q, exact in zip(queries, exact_ids):
        h_s.append(_timed(lambda: hnsw.search(q, filters=f_all, limit=10)))
        found += len({h.record.id for h in hnsw.search(q, filters=f_all, limit=10)} & exact)
    hnsw.close()
    h50, _ = _ms(h_s)
    recall = found / (10 * len(queries))
    figures.append(
        Figure(
            f"single-scope HNSW p50 ({label})",
            h50,
            "ms",
            "<= 3",
            h50 <= 3,
            note=f"build {build_s:.0f} s incl. SQLite; ef_search 128",
        )
    )
    figures.append(
        Figure(f"HNSW recall@10 vs exact ({label})", recall, "ratio", ">= 0.95", recall >= 0.95)
    )
    return figures


_OPEN_SCRIPT = """
import json, resource, sys, time
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.interfaces import EmbedderIdentity
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()
base = rss()
t = time.perf_counter()
s = FaissStore(FaissStoreConfig(path=sys.argv[1]))
s.open(EmbedderIdentity('bench', 'random', int(sys.argv[2])))
took = time.perf_counter() - t
print(json.dumps({"open_s": took, "rss": rss() - base, "live": s.stats()["live"]}))
"""


def bench_open(quick: bool, tmp: Path) -> list[Figure]:
    """Opening a store of 100k memories, and its resident memory."""
    dims = 384
    n = 20_000 if quick else 100_000
    ident = EmbedderIdentity("bench", "random", dims)
    path = tmp / "open"
    store = FaissStore(FaissStoreConfig(path=str(path)))
    store.open(ident)
    with Progress(transient=True, console=console) as progress:
        _fill(store, _unit(n, dims, seed=3), 100, progress)
    store.close()
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _OPEN_SCRIPT, str(path), str(dims)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    open_s = statistics.median(r["open_s"] for r in runs)
    rss = statistics.median(r["rss"] for r in runs)
    raw = n * dims * 4 + sum(len(r.memory) for r in _records(n, 100))
    ratio = rss / raw
    label = f"{n // 1000}k"
    return [
        Figure(f"open a store of {label}", open_s * 1000, "ms", "<= 1000", open_s <= 1.0),
        Figure(
            "resident memory / (raw vectors + text)",
            ratio,
            "ratio",
            "<= 1.3",
            ratio <= 1.3,
            note=f"{rss / 1e6:.0f} MB for {raw / 1e6:.0f} MB raw",
        ),
    ]


def bench_plugins(quick: bool) -> list[Figure]:
    """The figures of the installed plugins' benchmarks (entry-point group
    :data:`BENCHMARK_GROUP`), in the order of their distributions.

    A benchmark that cannot be loaded, that raises, or that returns something other than
    figures is reported (as plain text) and skipped; the others still run.
    """
    figures: list[Figure] = []
    for ep in sorted(entry_points(group=BENCHMARK_GROUP), key=_benchmark_order):
        where = f"{ep.name} = {ep.value}"
        try:
            got = list(ep.load()(quick))
        except Exception as exc:
            _skipped(where, f"{type(exc).__name__}: {exc}")
            continue
        wrong = [type(f).__name__ for f in got if not isinstance(f, Figure)]
        if wrong:
            _skipped(where, f"returned {', '.join(wrong)} instead of memsift Figure objects")
            continue
        figures.extend(got)
    return figures


def _benchmark_order(ep: EntryPoint) -> tuple[str, str]:
    return (ep.dist.name if ep.dist is not None else "", ep.name)


def _skipped(where: str, why: str) -> None:
    console.print(
        Text.assemble(("skipped benchmark ", "yellow"), f"{where}: {why}"), soft_wrap=True
    )


SECTIONS = {
    "add": bench_add,
    "search": bench_search,
    "scale": bench_scale,
    "open": bench_open,
}


def run_bench(*, quick: bool, json_path: str | None, only: set[str]) -> list[Figure]:
    figures: list[Figure] = []
    wanted = only or {*SECTIONS, "local"}
    unknown = wanted - {*SECTIONS, "local", "overhead", "rerank"}
    if unknown:
        raise SystemExit(f"unknown --only value(s): {', '.join(sorted(unknown))}")
    if wanted & {"overhead", "rerank"}:
        wanted = (wanted - {"overhead", "rerank"}) | {"search"}
    console.print(
        f"memsift bench ({'quick' if quick else 'full'}), {os.cpu_count()} CPUs, "
        f"python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="memsift-bench-") as tmp:
        for name, fn in SECTIONS.items():
            if name not in wanted:
                continue
            console.print(f"[bold]{name}[/] ...")
            gc.collect()
            start = time.perf_counter()
            section = fn(quick, Path(tmp))
            console.print(f"  done in {time.perf_counter() - start:.0f} s")
            figures.extend(section)
    if "local" in wanted:
        figures.extend(bench_plugins(quick))
    print_figures(figures)
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(f) for f in figures], indent=2))
        console.print(f"wrote {json_path}")
    return figures


def print_figures(figures: Sequence[Figure]) -> None:
    """The bench table: one row per figure, ``ok`` in green or red (the figures' texts, which
    plugins provide too, are printed as plain text)."""
    table = Table(title="memsift bench")
    for col in ("figure", "value", "unit", "target", "ok", "note"):
        table.add_column(col)
    for f in figures:
        ok = "" if f.ok is None else ("[green]yes[/]" if f.ok else "[red]no[/]")
        table.add_row(
            escape(f.name), f"{f.value:.3f}", escape(f.unit), escape(f.target), ok, escape(f.note)
        )
    console.print(table)


@click.command()
@click.option("--quick", is_flag=True, help="smaller sizes, for a fast look")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write JSON here")
@click.option(
    "--only",
    multiple=True,
    help="run only these figures (add, search, scale, open, overhead, rerank, local)",
)
def bench(quick: bool, json_path: str | None, only: Sequence[str]) -> None:
    """Measure the performance figures (the core's, then installed plugins').

    Sections: add (add throughput vs the embedder alone), search (scoped search latency and
    the framework overhead), scale (the vector stage at 1M memories, flat and HNSW), open
    (opening a store, its resident memory), local (the benchmarks plugins register).
    """
    run_bench(quick=quick, json_path=json_path, only=set(only))
