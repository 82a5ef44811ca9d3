"""The benchmark runs, through its entry point too, and reports qdrant beside faiss."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from memsift.figures import Figure
from memsift_qdrant.bench import bench_stores, figures


def test_the_bench_times_every_store_on_the_same_data(local_folder: Path) -> None:
    local_folder.mkdir(parents=True)
    results = bench_stores(n=300, users=6, queries=3, folder=local_folder)
    assert set(results) == {"faiss", "qdrant local (folder)", "qdrant local (memory)"}
    for timings in results.values():
        assert set(timings) == {
            "insert",
            "scoped search",
            "scoped + bucket < 3",
            "scoped + icontains",
        }
        assert all(ms > 0 for ms in timings.values())
    shown = figures(results, 300, 6, 3)
    assert all(isinstance(f, Figure) and f.unit == "ms" for f in shown)
    assert any(f.name == "qdrant local (memory): scoped search, top 10" for f in shown)
    assert any("x faiss" in f.note for f in shown)


def test_the_bench_is_registered_for_memsift_bench() -> None:
    (ep,) = [ep for ep in entry_points(group="memsift.benchmarks") if ep.name == "qdrant"]
    assert ep.value == "memsift_qdrant.bench:run"
    assert callable(ep.load())
