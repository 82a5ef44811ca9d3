"""The benchmark's building blocks run and measure what they say (small sizes)."""

from __future__ import annotations

from pathlib import Path

from memsift.bench import _clustered, _single_scope
from memsift.interfaces import EmbedderIdentity


def test_single_scope_figures_on_clustered_vectors(tmp_path: Path) -> None:
    data, queries = _clustered(3000, 32, seed=1)
    figures = _single_scope(
        tmp_path, "clustered", data, queries[:10], EmbedderIdentity("b", "r", 32)
    )
    names = [f.name for f in figures]
    assert names[0].startswith("single-scope exact (flat) p50")
    assert any(n.startswith("single-scope HNSW p50") for n in names)
    recall = next(f for f in figures if f.name.startswith("HNSW recall@10"))
    assert 0.9 <= recall.value <= 1.0
    assert all(f.value > 0 for f in figures)
