"""``memsift bench``: the performance figures, side by side.

The core's sections measure the built-in embedder's batched throughput on short, mixed and
long texts, length-bucketed against 0.2.0's batching and against none (``embed``), add
throughput against the embedder alone, ``add(list)`` and ``add_many`` with per-memory scopes
and metadata (``add``), scoped search latency and the framework overhead of a search
(``search``), the vector stage at 1M memories, flat and HNSW -- HNSW recall on clustered
vectors as the headline, on random ones as the worst case, and at several ``ef_search``
(``scale``) -- and opening a store and its resident memory (``open``).
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
from collections.abc import Sequence
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
from memsift.builtin.faiss.index import faiss
from memsift.builtin.faiss.search import BRUTE_FORCE_MAX
from memsift.cli.bench_data import fill, ms, records, timed, unit_vectors
from memsift.cli.bench_memory import bench_add, bench_embed, bench_search
from memsift.cli.render import console
from memsift.figures import Figure
from memsift.filters import parse_filter
from memsift.records import EmbedderIdentity, FloatArray

#: The entry-point group of plugin benchmarks: each entry point names a callable
#: ``run(quick: bool) -> list[Figure]`` (see :mod:`memsift.testing.benchkit`).
BENCHMARK_GROUP = "memsift.benchmarks"

# ----------------------------------------------------------------------------- figures


def bench_scale(quick: bool, tmp: Path) -> list[Figure]:
    """The vector stage alone at 1M memories (random unit vectors, 384-d)."""
    dims = 384
    n = 100_000 if quick else 1_000_000
    users = 1000
    ident = EmbedderIdentity("bench", "random", dims)
    vectors = unit_vectors(n, dims, seed=7)
    queries = unit_vectors(50, dims, seed=8)
    figures: list[Figure] = []
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    with Progress(transient=True, console=console) as progress:
        store = FaissStore(FaissStoreConfig(path=str(tmp / "scale")))
        store.open(ident)
        fill(store, vectors, users, progress)
    samples = []
    for i, q in enumerate(queries):
        f = parse_filter({"user_id": f"user{i % users}"})
        samples.append(timed(lambda: store.search(q, filters=f, limit=10)))
    p50, p95 = ms(samples)
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
    # one scope holding everything: flat (exact) and HNSW, on clustered vectors (like real
    # embeddings: topics, paraphrases; the headline) and on random unit vectors (the worst
    # case for a graph index: no structure at all)
    # (above BRUTE_FORCE_MAX: a smaller scope is scored exactly, whatever the index)
    hn = BRUTE_FORCE_MAX + 5_000 if quick else 100_000
    for kind, data, qs, headline in (
        ("clustered", *_clustered(hn, dims, seed=5), True),
        ("random", vectors[:hn], queries, False),
    ):
        figures.extend(_single_scope(tmp / f"single-{kind}", kind, data, qs, ident, headline))
    return figures


#: The ``hnsw_ef_search`` values whose recall the bench reports (the default is 128).
EF_SWEEP = (64, 128, 256, 512)


def _clustered(n: int, dims: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Unit vectors around 500 topic centres, and 50 queries near stored vectors."""
    rng = np.random.default_rng(seed)
    centres = unit_vectors(500, dims, seed + 1)
    noise = unit_vectors(n, dims, seed + 2)
    data = centres[rng.integers(500, size=n)] + 0.35 * noise
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[rng.integers(n, size=50)] + 0.3 * unit_vectors(50, dims, seed + 3)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data.astype(np.float32), queries.astype(np.float32)


def _single_scope(
    path: Path,
    kind: str,
    data: FloatArray,
    queries: FloatArray,
    ident: EmbedderIdentity,
    headline: bool,
) -> list[Figure]:
    n = len(data)
    label = f"{n // 1000}k {kind}"
    with Progress(transient=True, console=console) as progress:
        flat = FaissStore(FaissStoreConfig(path=str(path / "flat")))
        flat.open(ident)
        fill(flat, data, 1, progress)
    f_all = parse_filter({"user_id": "user0"})
    exact_ids, flat_s = [], []
    for q in queries:
        flat_s.append(timed(lambda: flat.search(q, filters=f_all, limit=10)))
        exact_ids.append({h.record.id for h in flat.search(q, filters=f_all, limit=10)})
    flat.close()
    fl50, _ = ms(flat_s)
    figures = [
        Figure(
            f"single-scope exact (flat) p50 ({label})",
            fl50,
            "ms",
            note=f"{n * data.shape[1] * 4 / fl50 / 1e6:.1f} GB/s effective",
        )
    ]
    t0 = time.perf_counter()
    config = FaissStoreConfig(path=str(path / "hnsw"), index="hnsw")
    hnsw = FaissStore(config)
    hnsw.open(ident)
    with Progress(transient=True, console=console) as progress:
        fill(hnsw, data, 1, progress)
    build_s = time.perf_counter() - t0
    h_s, found = [], 0
    for q, exact in zip(queries, exact_ids):
        h_s.append(timed(lambda: hnsw.search(q, filters=f_all, limit=10)))
        found += len({h.record.id for h in hnsw.search(q, filters=f_all, limit=10)} & exact)
    sweep = _ef_sweep(hnsw._index, queries, exact_ids)
    hnsw.close()
    h50, _ = ms(h_s)
    recall = found / (10 * len(queries))
    ef = config.hnsw_ef_search
    figures.append(
        Figure(
            f"single-scope HNSW p50 ({label})",
            h50,
            "ms",
            "<= 3" if headline else "",
            h50 <= 3 if headline else None,
            note=f"build {build_s:.0f} s incl. SQLite; ef_search {ef}",
        )
    )
    if headline:
        figures.append(
            Figure(
                f"HNSW recall@10 vs exact ({label}, the headline)",
                recall,
                "ratio",
                ">= 0.95",
                recall >= 0.95,
                note=f"ef_search {ef}; vectors with structure, as embeddings have",
            )
        )
    else:
        figures.append(
            Figure(
                f"HNSW recall@10 vs exact ({label}, the worst case)",
                recall,
                "ratio",
                note=f"ef_search {ef}; no structure at all: use flat, or raise ef_search",
            )
        )
    for ef_value, (ef_recall, ef_p50) in sweep.items():
        figures.append(
            Figure(
                f"  HNSW recall@10 at ef_search {ef_value} ({label})",
                ef_recall,
                "ratio",
                note=f"index search p50 {ef_p50:.2f} ms",
            )
        )
    return figures


def _ef_sweep(
    index: Any, queries: FloatArray, exact_ids: list[set[str]]
) -> dict[int, tuple[float, float]]:
    """Recall@10 and index-search p50 of the store's HNSW index at each ef of EF_SWEEP (the
    scope holds everything, so the store searches the index without a selector, as here)."""
    out: dict[int, tuple[float, float]] = {}
    for ef in EF_SWEEP:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        found, took = 0, []
        for q, exact in zip(queries, exact_ids):
            row = q.reshape(1, -1)
            took.append(timed(lambda: index.search(row, 10, params=params)))
            _, labels = index.search(row, 10, params=params)
            found += len({f"m{int(s)}" for s in labels[0] if s >= 0} & exact)
        out[ef] = (found / (10 * len(queries)), ms(took)[0])
    return out


_OPEN_SCRIPT = """
import json, resource, sys, time
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.builtin.faiss.index import faiss
from memsift.builtin.faiss.search import BRUTE_FORCE_MAX
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
        fill(store, unit_vectors(n, dims, seed=3), 100, progress)
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
    raw = n * dims * 4 + sum(len(r.memory) for r in records(n, 100))
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
    "embed": bench_embed,
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
    help="run only these figures (embed, add, search, scale, open, overhead, rerank, local)",
)
def bench(quick: bool, json_path: str | None, only: Sequence[str]) -> None:
    """Measure the performance figures (the core's, then installed plugins').

    Sections: embed (the embedder's batched throughput, bucketed vs not), add (add and
    add_many throughput vs the embedder alone), search (scoped search latency and
    the framework overhead), scale (the vector stage at 1M memories, flat and HNSW), open
    (opening a store, its resident memory), local (the benchmarks plugins register).
    """
    run_bench(quick=quick, json_path=json_path, only=set(only))
