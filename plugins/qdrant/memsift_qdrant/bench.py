"""Benchmark: the ``qdrant`` store in qdrant-client's local mode beside the built-in ``faiss``
store, on the same data.

The same memories (random unit vectors of the MiniLM dimension, spread over users, with
metadata and timestamps) go into each store in batches of :data:`BATCH` (one ``add`` call
each), then the same queries run against each: a search scoped to one user, the same with a
metadata range that Qdrant decides (``bucket < 3``), and the same with a condition it cannot
(``icontains``, narrowed by the scope and checked in Python). Every figure is the median over
the batches or queries, in milliseconds.

The local mode keeps its points in Python and evaluates filters in Python, point by point,
and its folder mode commits each point to SQLite on its own: it is made for development and
tests, and these figures show it. A Qdrant server answers the same requests from its payload
indexes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from memsift.figures import Figure
from memsift.filters import canonical_timestamp, parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord, VectorStore

DIMS = 384
#: Memories per insert (one ``add`` call).
BATCH = 100
IDENTITY = EmbedderIdentity(provider="bench", model="random-unit", dims=DIMS)
#: (figure label, filter of a user) of the timed searches.
SEARCHES: tuple[tuple[str, Callable[[str], dict[str, Any]]], ...] = (
    ("scoped search", lambda user: {"user_id": user}),
    ("scoped + bucket < 3", lambda user: {"user_id": user, "bucket": {"lt": 3}}),
    ("scoped + icontains", lambda user: {"user_id": user, "text": {"icontains": "NOTE 1"}}),
)


def corpus(n: int, users: int, seed: int = 0) -> tuple[list[MemoryRecord], Any]:
    """``n`` memories over ``users`` users, and their unit vectors."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    records = []
    for i in range(n):
        stamp = canonical_timestamp(start + timedelta(seconds=i))
        records.append(
            MemoryRecord(
                id=str(uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | i)),
                memory=f"memory {i}",
                hash=f"h{i}",
                metadata={"bucket": i % 6, "text": f"note {i % 37}", "tags": ["a", "b"][: i % 3]},
                user_id=f"user-{i % users}",
                created_at=stamp,
                updated_at=stamp,
            )
        )
    vectors = rng.normal(size=(n, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return records, vectors


def _ms(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1000


def time_store(
    store: VectorStore,
    records: Sequence[MemoryRecord],
    vectors: Any,
    users: int,
    queries: int,
    seed: int = 1,
) -> dict[str, float]:
    """Median ms of an insert of :data:`BATCH` memories and of each search of
    :data:`SEARCHES` (top 10), on an opened, empty ``store``."""
    out: dict[str, float] = {}
    inserts = [
        _ms(store.insert, records[s : s + BATCH], vectors[s : s + BATCH])
        for s in range(0, len(records), BATCH)
    ]
    out["insert"] = statistics.median(inserts)
    rng = np.random.default_rng(seed)
    query_vectors = rng.normal(size=(queries, DIMS)).astype(np.float32)
    for label, spec in SEARCHES:
        times = []
        for q in range(queries):
            parsed = parse_filter(spec(f"user-{(q * 7) % users}"))
            vector = query_vectors[q]
            times.append(_ms(store.search, vector, filters=parsed, limit=10))
        out[label] = statistics.median(times)
    return out


def bench_stores(
    n: int, users: int, queries: int, folder: Path | None = None
) -> dict[str, dict[str, float]]:
    """The timings of :func:`time_store` for faiss, qdrant local in a folder and qdrant local
    in memory, on the same memories and queries."""
    from memsift.builtin.faiss import FaissStore, FaissStoreConfig
    from memsift_qdrant.config import QdrantStoreConfig
    from memsift_qdrant.store import QdrantStore

    records, vectors = corpus(n, users)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="memsift-bench-qdrant-", dir=folder) as tmp:
        stores: list[tuple[str, Callable[[], VectorStore]]] = [
            ("faiss", lambda: FaissStore(FaissStoreConfig(path=str(Path(tmp) / "faiss")))),
            (
                "qdrant local (folder)",
                lambda: QdrantStore(QdrantStoreConfig(path=str(Path(tmp) / "qdrant"))),
            ),
            ("qdrant local (memory)", lambda: QdrantStore(QdrantStoreConfig(path=":memory:"))),
        ]
        for name, build in stores:
            store = build()
            try:
                store.open(IDENTITY)
                results[name] = time_store(store, records, vectors, users, queries)
            finally:
                store.close()
    return results


def figures(results: dict[str, dict[str, float]], n: int, users: int, queries: int) -> list[Figure]:
    """One figure per store and timing, each with the faiss figure as its note."""
    out = []
    base = results.get("faiss", {})
    for name, timings in results.items():
        for what, ms in timings.items():
            label = f"insert {BATCH} memories" if what == "insert" else f"{what}, top 10"
            note = f"p50; {n} memories over {users} users"
            if what != "insert":
                note += f", {queries} queries"
            if name != "faiss" and what in base and base[what] > 0:
                note += f"; {ms / base[what]:.1f}x faiss"
            out.append(Figure(f"{name}: {label}", ms, "ms", note=note))
    return out


def run(quick: bool) -> list[Figure]:
    """What ``memsift bench`` shows for this plugin (entry point ``memsift.benchmarks``)."""
    n, users, queries = (2_000, 20, 20) if quick else (10_000, 100, 30)
    return figures(bench_stores(n, users, queries), n, users, queries)


__all__ = ["BATCH", "bench_stores", "corpus", "figures", "run", "time_store"]
