"""``memsift eval``: retrieval quality with reranking off and on, on a dataset.

Two dataset layouts are read (:mod:`memsift.cli.datasets`): BEIR folders, whose graded
judgements give nDCG@k, recall@k and MRR, and LoCoMo-style conversation files (REALTALK is
one), whose evidence turns give turn-level recall@k, per category.

Both runs (off, on) use the same store and the same queries; latencies are per search. With
``--sweep`` (:mod:`memsift.cli.sweep`), every setting of each sweep is measured instead, on the
same store, each table led by the vector order.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from memsift.changes import memory_hash, now_timestamp
from memsift.cli.datasets import (
    LOCOMO_CATEGORIES,
    Dataset,
    Query,
    load_dataset,
    normalize_evidence,
)
from memsift.cli.options import config_option, json_option, load_config
from memsift.cli.render import console, fail, print_eval, print_sweep
from memsift.cli.sweep import (
    Bench,
    Sweep,
    headline_metrics,
    parse_sweep,
    plot_sweep,
    require_matplotlib,
    run_sweeps,
    settings,
    sweep_json,
)
from memsift.cli.sweep import plot_path as plot_path_of
from memsift.errors import InvalidInputError, MemsiftError
from memsift.memory import Memory
from memsift.records import MemoryRecord


@dataclass
class RunMetrics:
    """Metrics of one run (reranking off or on)."""

    values: dict[str, float] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    rerank_failures: int = 0


# ----------------------------------------------------------------------------- metrics


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if d in relevant:
            return 1.0 / (i + 1)
    return 0.0


# ----------------------------------------------------------------------------- running


def fill_store(memory: Memory, dataset: Dataset, batch: int = 256, progress: Any = None) -> None:
    """Embed and store every document (batched), each with its own metadata."""
    task = (
        progress.add_task("embedding memories", total=len(dataset.documents)) if progress else None
    )
    stamp = now_timestamp()
    for start in range(0, len(dataset.documents), batch):
        chunk = dataset.documents[start : start + batch]
        records = [
            MemoryRecord(
                id=str(uuid.uuid4()),
                memory=text,
                hash=memory_hash(text),
                metadata={**meta, "eval_key": key},
                user_id=scope,
                created_at=stamp,
                updated_at=stamp,
            )
            for scope, key, text, meta in chunk
        ]
        vectors = memory.embedder.embed([r.memory for r in records], purpose="document")
        memory.vector_store.insert(records, vectors)
        if progress is not None:
            progress.update(task, advance=len(chunk))


def evaluate(
    memory: Memory,
    dataset: Dataset,
    *,
    ks: Sequence[int] = (1, 5, 10),
    max_queries: int | None = None,
    progress: Any = None,
) -> dict[str, RunMetrics]:
    """Run every query with reranking off and on; return the metrics of each run."""
    if memory.reranker_stage is None:
        raise InvalidInputError("memsift eval needs a reranker: configure one or pass --reranker")
    queries = eval_queries(dataset, max_queries)
    task = progress.add_task("searching", total=2 * len(queries)) if progress else None
    return {
        label: run_queries(
            memory, dataset, queries, ks=ks, rerank=rerank, progress=(progress, task)
        )
        for label, rerank in (("off", False), ("on", True))
    }


def eval_queries(dataset: Dataset, max_queries: int | None) -> list[Query]:
    """The queries an evaluation runs (the first ``max_queries``); an error if none."""
    queries = dataset.queries[:max_queries] if max_queries else dataset.queries
    if not queries:
        raise InvalidInputError(f"{dataset.name}: no query has a relevant judgement")
    return queries


def run_queries(
    memory: Memory,
    dataset: Dataset,
    queries: Sequence[Query],
    *,
    ks: Sequence[int],
    rerank: bool,
    progress: tuple[Any, Any] = (None, None),
) -> RunMetrics:
    """Search every query (reranking on or off, the memory's search options) and measure."""
    top = max(ks)
    bar, task = progress
    sums: dict[str, dict[str, list[float]]] = {}
    latencies: list[float] = []
    metrics = RunMetrics()
    for q in queries:
        t = time.perf_counter()
        response = memory.search(q.text, user_id=q.scope, top_k=top, rerank=rerank)
        latencies.append((time.perf_counter() - t) * 1000)
        if rerank and not response["rerank"]["applied"]:
            metrics.rerank_failures += 1
        ranked = [h["metadata"].get("eval_key", "") for h in response["results"]]
        values: dict[str, float] = {}
        for k in ks:
            values[f"recall@{k}"] = recall_at(ranked, q.relevant, k)
            if dataset.kind == "beir":
                values[f"ndcg@{k}"] = ndcg_at(ranked, q.relevant, k)
        values[f"mrr@{top}"] = mrr_at(ranked, q.relevant, top)
        for cat in {"all", q.category}:
            bucket = sums.setdefault(cat, {})
            for name, v in values.items():
                bucket.setdefault(name, []).append(v)
        if bar is not None:
            bar.update(task, advance=1)
    metrics.values = {n: statistics.fmean(v) for n, v in sums["all"].items()}
    metrics.per_category = {
        cat: {n: statistics.fmean(v) for n, v in b.items()} | {"queries": len(b[f"mrr@{top}"])}
        for cat, b in sums.items()
        if cat != "all"
    }
    arr = sorted(latencies)
    metrics.latency_ms = {
        "p50": _percentile(arr, 50),
        "p95": _percentile(arr, 95),
        "p99": _percentile(arr, 99),
    }
    return metrics


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return float(sorted_values[idx])


def plot(runs: Mapping[str, RunMetrics], path: str, title: str) -> None:
    """A bar chart of every metric, off vs on (needs matplotlib: ``memsift[plot]``)."""
    plt = require_matplotlib()
    names = list(runs["off"].values)
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 1.2), 4))
    ax.bar([i - 0.2 for i in x], [runs["off"].values[n] for n in names], 0.4, label="rerank off")
    ax.bar([i + 0.2 for i in x], [runs["on"].values[n] for n in names], 0.4, label="rerank on")
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- the command


def _json_object(value: str | None, what: str) -> dict[str, Any]:
    found = json_option(value, what) or {}
    if not isinstance(found, dict):
        raise click.BadParameter(f"{what} must be a JSON object")
    return found


@click.command(name="eval")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--reranker", default="bm25", show_default=True, help="reranker provider")
@click.option("--reranker-config", help="the reranker's config as a JSON object")
@click.option("--search-config", help="the config's search section as a JSON object")
@click.option("--store-config", help="more faiss store options as a JSON object")
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    help="KEY=V1,V2 [KEY=...]: measure every combination (repeatable; one table each)",
)
@click.option("--k", "ks", multiple=True, type=int, help="cut-offs (default 1, 5, 10)")
@click.option("--max-queries", type=int, help="evaluate only the first N queries")
@click.option("--path", type=click.Path(file_okay=False), help="keep (and reuse) the store here")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write JSON here")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="write a PNG here")
@config_option
def eval_command(
    dataset: str,
    reranker: str,
    reranker_config: str | None,
    search_config: str | None,
    store_config: str | None,
    sweeps: Sequence[str],
    ks: Sequence[int],
    max_queries: int | None,
    path: str | None,
    json_path: str | None,
    plot_path: str | None,
    config_path: str | None,
) -> None:
    """Measure retrieval on DATASET (a BEIR folder or a LoCoMo-style .json): rerank off vs
    on, or, with --sweep, every setting of each sweep (see memsift.cli.sweep)."""
    cutoffs = tuple(sorted(set(ks))) or (1, 5, 10)
    if any(k < 1 for k in cutoffs):
        raise click.BadParameter("--k must be positive")
    rr_cfg = _json_object(reranker_config, "--reranker-config")
    search_cfg = _json_object(search_config, "--search-config")
    store_cfg = _json_object(store_config, "--store-config")
    try:
        if plot_path:
            require_matplotlib()  # before minutes of embedding, not after
        with tempfile.TemporaryDirectory(prefix="memsift-eval-") as tmp:
            store_dir = Path(path) if path else Path(tmp)
            config = load_config(config_path)
            config["vector_store"] = {
                "provider": "faiss",
                "config": {**store_cfg, "path": str(store_dir)},
            }
            config["reranker"] = {"provider": reranker, "config": rr_cfg}
            config["history_db_path"] = str(store_dir / "history.db")
            if search_cfg:
                config["search"] = {**config.get("search", {}), **search_cfg}

            def open_memory(store: Mapping[str, Any]) -> Memory:
                section = config["vector_store"]
                cfg = {
                    **config,
                    "vector_store": {**section, "config": {**section["config"], **store}},
                }
                return Memory.from_config(cfg)

            first = open_memory({})
            spec = first.config.spec("reranker")
            parsed = [
                parse_sweep(s, spec.config_model if spec else None, type(first.vector_store.config))
                for s in sweeps
            ]
            data = load_dataset(dataset)
            with Progress(console=console) as progress:
                if first.vector_store.count() != len(data.documents):
                    first.reset()
                    fill_store(first, data, progress=progress)
                if not parsed:
                    with first as m:
                        runs = evaluate(
                            m, data, ks=cutoffs, max_queries=max_queries, progress=progress
                        )
                else:
                    queries = eval_queries(data, max_queries)
                    total = len(queries) * (1 + sum(len(settings(s)) for s in parsed))
                    task = progress.add_task("searching", total=total)
                    bench = Bench(open_memory, reranker, rr_cfg, memory=first)
                    try:
                        reference = run_sweeps(
                            bench,
                            parsed,
                            lambda m, rerank: run_queries(
                                m,
                                data,
                                queries,
                                ks=cutoffs,
                                rerank=rerank,
                                progress=(progress, task),
                            ),
                        )
                    finally:
                        bench.close()
    except MemsiftError as exc:
        fail(exc)
        return
    n_queries = len(data.queries[:max_queries] if max_queries else data.queries)
    if parsed:
        _report_sweeps(data, parsed, reference, reranker, n_queries, json_path, plot_path)
        return
    print_eval(data, runs, reranker)
    if json_path:
        out = {
            "dataset": data.name,
            "kind": data.kind,
            "reranker": reranker,
            "queries": n_queries,
            "runs": {label: _run_json(r) for label, r in runs.items()},
        }
        Path(json_path).write_text(json.dumps(out, indent=2))
    if plot_path:
        try:
            plot(runs, plot_path, f"{data.name}: {reranker} rerank off vs on")
        except MemsiftError as exc:
            fail(exc)


def _run_json(r: RunMetrics) -> dict[str, Any]:
    return {
        "metrics": r.values,
        "per_category": r.per_category,
        "latency_ms": r.latency_ms,
        "rerank_failures": r.rerank_failures,
    }


def _report_sweeps(
    data: Dataset,
    sweeps: Sequence[Sweep],
    reference: RunMetrics,
    reranker: str,
    n_queries: int,
    json_path: str | None,
    plot_path: str | None,
) -> None:
    metrics = headline_metrics(data.kind, list(reference.values))
    for i, sweep in enumerate(sweeps):
        print_sweep(data, sweep, reference, metrics, reranker)
        if plot_path:
            try:
                title = f"{data.name}: {sweep.text}"
                plot_sweep(
                    sweep, reference, metrics, plot_path_of(plot_path, i, len(sweeps)), title
                )
            except MemsiftError as exc:
                fail(exc)
    if json_path:
        out = {
            "dataset": data.name,
            "kind": data.kind,
            "reranker": reranker,
            "queries": n_queries,
            "reference": _run_json(reference),
            "sweeps": [sweep_json(s) for s in sweeps],
        }
        Path(json_path).write_text(json.dumps(out, indent=2))


# The command, its parts, and the dataset readers (defined in memsift.cli.datasets).
__all__ = [
    "LOCOMO_CATEGORIES",
    "Dataset",
    "Query",
    "RunMetrics",
    "eval_command",
    "eval_queries",
    "evaluate",
    "fill_store",
    "load_dataset",
    "mrr_at",
    "ndcg_at",
    "normalize_evidence",
    "plot",
    "recall_at",
    "run_queries",
]
