"""The memory-level sections of ``memsift bench``: the embedder's batched throughput on short,
mixed and long texts (length-bucketed runs against 0.2.0's batching and against none), add
throughput against the embedder alone (``add(list)``, with and without the keyword index, and
``add_many`` with per-memory scopes and metadata), and scoped search latency -- vector only,
with the ``bm25`` reranker, hybrid -- with the framework overhead of a search."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from rich.progress import Progress

from memsift.builtin.minilm import MiniLMConfig, MiniLMEmbedder
from memsift.bulk import MemoryItem
from memsift.cli.bench_data import TOPICS, ms, sized_texts, texts, timed
from memsift.cli.render import console
from memsift.figures import Figure
from memsift.filters import parse_filter
from memsift.memory import Memory
from memsift.records import Candidate


def _memory(path: Path, *, keyword_index: bool = True, reranker: bool = False) -> Memory:
    config: dict[str, object] = {
        "vector_store": {
            "provider": "faiss",
            "config": {"path": str(path), "keyword_index": keyword_index},
        }
    }
    if reranker:
        config["reranker"] = {"provider": "bm25", "config": {}}
    return Memory.from_config(config)


#: How many texts of each size the embed section embeds (quick mode, full mode): over 64
#: mixed texts even when quick, so that 0.2.0's runs of 64 sorted texts are compared fairly.
EMBED_SIZES_QUICK = {"short": 200, "mixed": 128, "long": 24}
EMBED_SIZES = {"short": 2000, "mixed": 500, "long": 150}


def bench_embed(quick: bool, tmp: Path) -> list[Figure]:
    """The built-in embedder's batched throughput on short, mixed and long texts: runs
    bucketed by token count (the default) against 0.2.0's batching (sorted by characters, 64
    texts a run) and, in the full run, against none (in order), interleaved, medians of 3;
    and the query embedding with onnxruntime's threads spinning after each call and not."""
    del tmp
    sizes = EMBED_SIZES_QUICK if quick else EMBED_SIZES
    sides = {
        "tokens": MiniLMEmbedder(MiniLMConfig()),
        "chars": MiniLMEmbedder(MiniLMConfig(bucketing="chars", batch_size=64)),  # 0.2.0
    }
    if not quick:  # in input order: the slowest side, so only in the full run
        sides["none"] = MiniLMEmbedder(MiniLMConfig(bucketing="none"))
    figures: list[Figure] = []
    for kind, n in sizes.items():
        docs = sized_texts(n, kind, seed=11)
        for e in sides.values():
            e.embed(docs[:8])  # load the model outside the timing
        runs: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(3):
            for name, e in sides.items():
                runs[name].append(timed(lambda: e.embed(docs)))
        rate = {name: n / statistics.median(s) for name, s in runs.items()}
        before = rate["tokens"] / rate["chars"]
        target = ">= 1.5" if kind == "mixed" else ""
        unbucketed = f", none {rate['none']:.1f}" if "none" in rate else ""
        figures += [
            Figure(
                f"embedder batched throughput, {kind} texts",
                rate["tokens"],
                "texts/s",
                note=f"{n} texts; 0.2.0 batching {rate['chars']:.1f}{unbucketed}",
            ),
            Figure(
                f"  bucketed / 0.2.0 batching ({kind})",
                before,
                "ratio",
                target,
                before >= 1.5 if target else None,
            ),
        ]
        if "none" in rate:
            ratio = rate["tokens"] / rate["none"]
            figures.append(Figure(f"  bucketed / unbucketed ({kind})", ratio, "ratio"))
    for e in sides.values():
        e.close()
    figures.append(_spinning(quick))
    return figures


def _spinning(quick: bool) -> Figure:
    """The query embedding p50 with spinning off (the default) over with it on."""
    off = MiniLMEmbedder(MiniLMConfig())
    on = MiniLMEmbedder(MiniLMConfig(allow_spinning=True))
    queries = [f"what did I say about {t}?" for t in TOPICS] * (8 if quick else 25)
    for e in (off, on):
        e.embed(queries[:3], purpose="query")
    a: list[float] = []
    b: list[float] = []
    for q in queries:
        a.append(timed(lambda: off.embed([q], purpose="query")))
        b.append(timed(lambda: on.embed([q], purpose="query")))
    off.close()
    on.close()
    (a50, _), (b50, _) = ms(a), ms(b)
    return Figure(
        "query embedding p50, threads not spinning / spinning",
        a50 / b50,
        "ratio",
        note=f"{a50:.2f} vs {b50:.2f} ms; not spinning leaves the cores to a local reranker",
    )


def bench_add(quick: bool, tmp: Path) -> list[Figure]:
    """Adding a list of texts in one call vs the embedder's own batched throughput, and with
    the keyword index vs without it (the default store keeps one)."""
    n = 500 if quick else 2000
    docs = texts(n)
    m = _memory(tmp / "add")
    plain = _memory(tmp / "add-no-fts", keyword_index=False)
    m.embedder.embed(docs[:16])  # load the model outside the timing
    plain.embedder.embed(docs[:16])
    embed_s, add_s, plain_s, many_s = [], [], [], []
    for rep in range(3):  # the same texts on every side; each run in a scope of its own
        embed_s.append(timed(lambda: m.embedder.embed(docs)))
        add_s.append(timed(lambda: m.add(docs, user_id=f"u{rep}", infer=False)))
        plain_s.append(timed(lambda: plain.add(docs, user_id=f"u{rep}", infer=False)))
        items = _items(docs, rep)
        many_s.append(timed(lambda: m.add_many(items)))
    m.close()
    plain.close()
    e, a, p, b = (statistics.median(x) for x in (embed_s, add_s, plain_s, many_s))
    ratio, fts, bulk = e / a, p / a, e / b
    return [
        Figure("embedder batched throughput", n / e, "texts/s", note=f"{n} texts, median of 3"),
        Figure("add(list) throughput", n / a, "texts/s", note="keyword index on (the default)"),
        Figure("add / embedder throughput", ratio, "ratio", ">= 0.90", ratio >= 0.90),
        Figure("add(list) throughput without keyword index", n / p, "texts/s"),
        Figure("add with / without keyword index", fts, "ratio", ">= 0.90", fts >= 0.90),
        Figure(
            "add_many throughput (per-memory scope and metadata)",
            n / b,
            "texts/s",
            note=f"{n} items over 100 users, each its own metadata",
        ),
        Figure("add_many / embedder throughput", bulk, "ratio", ">= 0.90", bulk >= 0.90),
    ]


def _items(docs: list[str], rep: int) -> list[MemoryItem]:
    """One item per text: its own user (100 of them), run and metadata."""
    return [
        {
            "text": text,
            "user_id": f"bulk{rep}-{i % 100}",
            "run_id": f"session-{i % 7}",
            "metadata": {"i": i, "topic": TOPICS[i % len(TOPICS)], "source": "import"},
        }
        for i, text in enumerate(docs)
    ]


def bench_search(quick: bool, tmp: Path) -> list[Figure]:
    """End-to-end scoped search at 10k memories over 100 users -- vector only, with the bm25
    reranker on the vector pool, and hybrid + bm25 (the default with bm25) -- measured side
    by side on one store, and the framework overhead of a search."""
    n = 2000 if quick else 10_000
    m = _memory(tmp / "search", reranker=True)
    docs = texts(n, seed=1)
    with Progress(transient=True, console=console) as progress:
        task = progress.add_task(f"embedding {n} memories", total=n)
        for start in range(0, n, 500):
            chunk = docs[start : start + 500]
            for u in range(100):
                part = [t for j, t in enumerate(chunk) if (start + j) % 100 == u]
                if part:
                    m.add(part, user_id=f"user{u}", infer=False)
            progress.update(task, completed=min(n, start + 500))
    queries = [f"what did I say about {t}?" for t in TOPICS] * (2 if quick else 5)
    for q in queries[:5]:
        m.search(q, user_id="user1", rerank=False)
        m.search(q, user_id="user1", rerank=True)
    plain: list[float] = []
    vector_bm25: list[float] = []
    hybrid: list[float] = []
    overhead: list[float] = []
    stage_overhead: list[float] = []
    keyword: list[float] = []
    parts: dict[str, list[float]] = {"embed": [], "vector": [], "rerank": []}
    store = m.vector_store
    rr = m.reranker_stage
    assert rr is not None
    pool = rr.pool_size(10)
    for i, q in enumerate(queries):
        user = f"user{i % 100}"
        plain.append(timed(lambda: m.search(q, user_id=user, top_k=10, rerank=False)))
        vector_bm25.append(
            timed(lambda: m.search(q, user_id=user, top_k=10, rerank=True, hybrid=False))
        )
        # each part measured alone ...
        t0 = time.perf_counter()
        vec = m.embedder.embed([q], purpose="query")[0]
        t1 = time.perf_counter()
        hits = store.search(vec, filters=parse_filter({"user_id": user}), limit=pool)
        t2 = time.perf_counter()
        rr.reranker.score_candidates(q, [Candidate.from_hit(h) for h in hits])
        t3 = time.perf_counter()
        parts["embed"].append(t1 - t0)
        parts["vector"].append(t2 - t1)
        parts["rerank"].append(t3 - t2)
        # ... and the whole search (hybrid + bm25, the default) with the same parts inside
        t = time.perf_counter()
        r = m.search(q, user_id=user, top_k=10, rerank=True)
        hybrid.append(time.perf_counter() - t)
        tm = r["timings"]
        inner = tm["embed_ms"] + tm["vector_ms"] + tm["keyword_ms"] + tm["rerank_provider_ms"]
        overhead.append((tm["total_ms"] - inner) / 1000)
        stage_overhead.append((tm["rerank_ms"] - tm["rerank_provider_ms"]) / 1000)
        keyword.append(tm["keyword_ms"] / 1000)
    m.close()
    p50, p95 = ms(plain)
    e50, _ = ms(parts["embed"])
    v50, _ = ms(parts["vector"])
    r50, _ = ms(parts["rerank"])
    b50, _ = ms(vector_bm25)
    h50, h95 = ms(hybrid)
    k50, _ = ms(keyword)
    o50, o95 = ms(overhead)
    s50, _ = ms(stage_overhead)
    ratio = h50 / p50
    label = f"{n // 1000}k memories / 100 users"
    return [
        Figure(f"search p50, no rerank ({label})", p50, "ms", "<= 8", p50 <= 8),
        Figure(f"search p95, no rerank ({label})", p95, "ms"),
        Figure("  query embedding alone p50", e50, "ms"),
        Figure(f"  vector stage alone p50 ({pool} candidates)", v50, "ms"),
        Figure(f"  bm25 on a {pool}-pool alone p50 (pool statistics)", r50, "ms"),
        Figure("search p50 with bm25 rerank, vector first stage", b50, "ms"),
        Figure("search p50 with hybrid + bm25 (the default)", h50, "ms", note=f"p95 {h95:.2f}"),
        Figure("  keyword stage p50 (timings.keyword_ms)", k50, "ms"),
        Figure("search p50 hybrid + bm25 / vector only", ratio, "ratio", "<= 1.5", ratio <= 1.5),
        Figure(
            "framework overhead p50 (total - own parts)",
            o50,
            "ms",
            "<= 0.5",
            o50 <= 0.5,
            note=f"p95 {o95:.3f} ms; parts: embed, vector, keyword, reranker",
        ),
        Figure("rerank-stage overhead p50 (stage - provider)", s50, "ms", "<= 0.5", s50 <= 0.5),
    ]


__all__ = ["bench_add", "bench_embed", "bench_search"]
