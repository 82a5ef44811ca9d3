"""What ``memsift bench`` measures with: generated texts, unit vectors and records, filling a
store, and timing helpers (medians and p95 in milliseconds)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.progress import Progress

from memsift.builtin.faiss import FaissStore
from memsift.records import FloatArray, MemoryRecord

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


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.choice(len(TOPICS), 2, replace=False)
        out.append(
            f"Note {i}: talked about {TOPICS[a]} and {TOPICS[b]}; follow up on day {i % 28 + 1}"
        )
    return out


_WORDS = [
    "the",
    "a",
    "we",
    "my",
    "our",
    "team",
    "call",
    "budget",
    "review",
    "sister",
    "wedding",
    "billing",
    "migration",
    "trip",
    "Lisbon",
    "learning",
    "Spanish",
    "marathon",
    "plan",
    "espresso",
    "machine",
    "hiring",
    "pipeline",
    "dentist",
    "appointment",
    "Ethiopian",
    "food",
    "quarterly",
    "roadmap",
    "camping",
    "weekend",
    "follow",
    "up",
    "remember",
    "prefers",
    "allergic",
    "peanuts",
    "meeting",
    "Tuesday",
    "deadline",
    "project",
    "flight",
    "delayed",
    "invoice",
    "reminder",
    "birthday",
    "gift",
]

#: Word counts of the texts :func:`sized_texts` makes: short notes, long passages, and a
#: mix (log-uniform between the two, as memories are: mostly short, a few paragraphs).
SIZES = {"short": (4, 12), "long": (150, 220), "mixed": (3, 300)}


def sized_texts(n: int, kind: str, seed: int = 0) -> list[str]:
    """``n`` texts of the word counts ``SIZES[kind]`` (``mixed``: log-uniform)."""
    lo, hi = SIZES[kind]
    rng = np.random.default_rng(seed)
    if kind == "mixed":
        counts = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)).astype(int)
    else:
        counts = rng.integers(lo, hi + 1, size=n)
    return [f"Note {i}: " + " ".join(rng.choice(_WORDS, int(k))) for i, k in enumerate(counts)]


def unit_vectors(n: int, dims: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), dims), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def records(n: int, users: int, start: int = 0) -> list[MemoryRecord]:
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


def fill(store: FaissStore, vectors: FloatArray, users: int, progress: Progress | None) -> None:
    n = len(vectors)
    task = progress.add_task("filling store", total=n) if progress else None
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)
        store.insert(records(stop - start, users, start), vectors[start:stop])
        if progress and task is not None:
            progress.update(task, completed=stop)
    if progress and task is not None:
        progress.remove_task(task)


def ms(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


__all__ = [
    "SIZES",
    "TOPICS",
    "fill",
    "ms",
    "records",
    "sized_texts",
    "texts",
    "timed",
    "unit_vectors",
]
