"""``memsift eval``: retrieval quality with reranking off and on, on a dataset.

Two dataset layouts are read:

- BEIR (a folder with ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``): every passage
  becomes one memory of a single scope; graded judgements give nDCG@k, recall@k and MRR.
- LoCoMo-style conversation memory (a JSON list of samples): every turn becomes one memory
  (``"<speaker>: <text>"``, metadata ``dia_id`` and ``session_date``) scoped by the sample's
  id; for each question the evidence turns give turn-level recall@k, per category.

Both runs (off, on) use the same store and the same queries; latencies are per search.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from memsift.changes import memory_hash, now_timestamp
from memsift.cli.options import config_option, json_option, load_config
from memsift.cli.render import console, fail, print_eval
from memsift.errors import InvalidInputError, MemsiftError
from memsift.memory import Memory
from memsift.records import MemoryRecord

LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_DIA = re.compile(r"D:?(\d+):(\d+)")


@dataclass
class Query:
    """One evaluation query: its text, scope, and relevant memory keys with their grades."""

    text: str
    scope: str
    relevant: dict[str, int]
    category: str = "all"


@dataclass
class Dataset:
    name: str
    kind: str
    documents: list[tuple[str, str, str, dict[str, Any]]]  # (scope, key, text, metadata)
    queries: list[Query]


@dataclass
class RunMetrics:
    """Metrics of one run (reranking off or on)."""

    values: dict[str, float] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    rerank_failures: int = 0


# ----------------------------------------------------------------------------- loading


def load_dataset(path: str | Path) -> Dataset:
    """Read a BEIR folder or a LoCoMo-style JSON file; InvalidInputError if neither."""
    p = Path(path)
    if p.is_dir() and (p / "corpus.jsonl").exists():
        return _load_beir(p)
    if p.is_file() and p.suffix == ".json":
        return _load_locomo(p)
    raise InvalidInputError(
        f"{p} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) nor a "
        "LoCoMo-style .json file"
    )


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _load_beir(folder: Path) -> Dataset:
    qrels: dict[str, dict[str, int]] = {}
    qrel_path = folder / "qrels" / "test.tsv"
    with qrel_path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            qid, doc_id, grade = parts[0], parts[1], int(parts[2])
            qrels.setdefault(qid, {})[doc_id] = grade
    texts = {q["_id"]: q["text"] for q in _jsonl(folder / "queries.jsonl")}
    scope = "beir"
    documents: list[tuple[str, str, str, dict[str, Any]]] = []
    for doc in _jsonl(folder / "corpus.jsonl"):
        title = doc.get("title") or ""
        text = f"{title}. {doc['text']}" if title else doc["text"]
        documents.append((scope, str(doc["_id"]), text, {"doc_id": str(doc["_id"])}))
    queries = [
        Query(text=texts[qid], scope=scope, relevant={d: g for d, g in rel.items() if g > 0})
        for qid, rel in sorted(qrels.items())
        if qid in texts and any(g > 0 for g in rel.values())
    ]
    return Dataset(name=folder.name, kind="beir", documents=documents, queries=queries)


def normalize_evidence(evidence: Any, known: set[str]) -> list[str]:
    """Split dirty evidence lists and keep the ids that exist (``D<session>:<turn>``)."""
    items = evidence if isinstance(evidence, list) else [evidence]
    out: list[str] = []
    for item in items:
        for token in re.split(r"[;,\s]+", str(item)):
            m = _DIA.fullmatch(token.strip())
            if m:
                dia = f"D{int(m.group(1))}:{int(m.group(2))}"
                if dia in known and dia not in out:
                    out.append(dia)
    return out


def _load_locomo(path: Path) -> Dataset:
    samples = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(samples, list):
        raise InvalidInputError(f"{path}: a LoCoMo file holds a JSON list of samples")
    documents: list[tuple[str, str, str, dict[str, Any]]] = []
    queries: list[Query] = []
    for sample in samples:
        scope = str(sample["sample_id"])
        conv = sample["conversation"]
        known: set[str] = set()
        sessions = sorted(
            int(k.split("_")[1])
            for k in conv
            if re.fullmatch(r"session_\d+", k) and isinstance(conv[k], list)
        )
        for n in sessions:
            date = str(conv.get(f"session_{n}_date_time", ""))
            for turn in conv[f"session_{n}"]:
                m = _DIA.fullmatch(str(turn.get("dia_id", "")))
                if not m:
                    continue
                dia = f"D{int(m.group(1))}:{int(m.group(2))}"
                text = str(turn.get("text", ""))
                if turn.get("blip_caption"):
                    text = f"{text} [shares a photo: {turn['blip_caption']}]"
                known.add(dia)
                documents.append(
                    (
                        scope,
                        dia,
                        f"{turn['speaker']}: {text}",
                        {"dia_id": dia, "session_date": date},
                    )
                )
        for qa in sample.get("qa", []):
            category = int(qa.get("category", 0))
            if category == 5:
                continue  # adversarial: no answer in the conversation
            evidence = normalize_evidence(qa.get("evidence", []), known)
            if not evidence:
                continue
            queries.append(
                Query(
                    text=str(qa["question"]),
                    scope=scope,
                    relevant=dict.fromkeys(evidence, 1),
                    category=LOCOMO_CATEGORIES.get(category, str(category)),
                )
            )
    return Dataset(name=path.stem, kind="locomo", documents=documents, queries=queries)


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
    queries = dataset.queries[:max_queries] if max_queries else dataset.queries
    if not queries:
        raise InvalidInputError(f"{dataset.name}: no query has a relevant judgement")
    top = max(ks)
    runs: dict[str, RunMetrics] = {}
    task = progress.add_task("searching", total=2 * len(queries)) if progress else None
    for label, rerank in (("off", False), ("on", True)):
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
            if progress is not None:
                progress.update(task, advance=1)
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
        runs[label] = metrics
    return runs


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return float(sorted_values[idx])


def plot(runs: Mapping[str, RunMetrics], path: str, title: str) -> None:
    """A bar chart of every metric, off vs on (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InvalidInputError("--plot needs matplotlib: pip install matplotlib") from exc
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


@click.command(name="eval")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--reranker", default="bm25", show_default=True, help="reranker provider")
@click.option("--reranker-config", help="the reranker's config as a JSON object")
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
    ks: Sequence[int],
    max_queries: int | None,
    path: str | None,
    json_path: str | None,
    plot_path: str | None,
    config_path: str | None,
) -> None:
    """Measure retrieval on DATASET (a BEIR folder or a LoCoMo-style .json), rerank off vs on."""
    cutoffs = tuple(sorted(set(ks))) or (1, 5, 10)
    if any(k < 1 for k in cutoffs):
        raise click.BadParameter("--k must be positive")
    rr_cfg = json_option(reranker_config, "--reranker-config") or {}
    if not isinstance(rr_cfg, dict):
        raise click.BadParameter("--reranker-config must be a JSON object")
    try:
        data = load_dataset(dataset)
        with tempfile.TemporaryDirectory(prefix="memsift-eval-") as tmp:
            store_dir = Path(path) if path else Path(tmp)
            config = load_config(config_path)
            config["vector_store"] = {"provider": "faiss", "config": {"path": str(store_dir)}}
            config["reranker"] = {"provider": reranker, "config": rr_cfg}
            config["history_db_path"] = str(store_dir / "history.db")
            with Memory.from_config(config) as m, Progress(console=console) as progress:
                if m.vector_store.count() != len(data.documents):
                    m.reset()
                    fill_store(m, data, progress=progress)
                runs = evaluate(m, data, ks=cutoffs, max_queries=max_queries, progress=progress)
    except MemsiftError as exc:
        fail(exc)
        return
    print_eval(data, runs, reranker)
    if json_path:
        out = {
            "dataset": data.name,
            "kind": data.kind,
            "reranker": reranker,
            "queries": len(data.queries[:max_queries] if max_queries else data.queries),
            "runs": {
                label: {
                    "metrics": r.values,
                    "per_category": r.per_category,
                    "latency_ms": r.latency_ms,
                    "rerank_failures": r.rerank_failures,
                }
                for label, r in runs.items()
            },
        }
        Path(json_path).write_text(json.dumps(out, indent=2))
    if plot_path:
        try:
            plot(runs, plot_path, f"{data.name}: {reranker} rerank off vs on")
        except MemsiftError as exc:
            fail(exc)
