"""The benchmark's building blocks run and measure what they say (small sizes), and plugin
benchmarks are found through the ``memsift.benchmarks`` entry-point group."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from memsift.cli import bench, bench_memory
from memsift.cli.bench import BENCHMARK_GROUP, EF_SWEEP, _clustered, _single_scope
from memsift.cli.bench_data import SIZES, sized_texts, unit_vectors
from memsift.interfaces import EmbedderIdentity
from memsift.testing.benchkit import Figure


def test_single_scope_figures_on_clustered_vectors(tmp_path: Path) -> None:
    data, queries = _clustered(3000, 32, seed=1)
    figures = _single_scope(
        tmp_path, "clustered", data, queries[:10], EmbedderIdentity("b", "r", 32), True
    )
    names = [f.name for f in figures]
    assert names[0].startswith("single-scope exact (flat) p50")
    assert any(n.startswith("single-scope HNSW p50") for n in names)
    recall = next(f for f in figures if f.name.startswith("HNSW recall@10"))
    assert "headline" in recall.name and recall.target == ">= 0.95"
    assert 0.9 <= recall.value <= 1.0
    assert all(f.value > 0 for f in figures)
    sweep = [f for f in figures if "at ef_search" in f.name]
    assert [f.name.split("ef_search ")[1].split()[0] for f in sweep] == [str(ef) for ef in EF_SWEEP]
    assert sweep[-1].value >= sweep[0].value and "p50" in sweep[0].note


def test_random_vectors_are_the_worst_case_without_a_target(tmp_path: Path) -> None:
    data = unit_vectors(3000, 32, seed=2)
    queries = unit_vectors(10, 32, seed=3)
    figures = _single_scope(
        tmp_path, "random", data, queries, EmbedderIdentity("b", "r", 32), False
    )
    recall = next(f for f in figures if f.name.startswith("HNSW recall@10"))
    assert "worst case" in recall.name and recall.ok is None and recall.target == ""
    assert 0.0 < recall.value <= 1.0
    hnsw = next(f for f in figures if f.name.startswith("single-scope HNSW p50"))
    assert hnsw.ok is None


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_sized_texts(kind: str) -> None:
    lo, hi = SIZES[kind]
    made = sized_texts(200, kind, seed=1)
    counts = [len(t.split()) - 2 for t in made]  # "Note i:" prefix
    assert len(made) == 200 and min(counts) >= lo and max(counts) <= hi
    assert made == sized_texts(200, kind, seed=1)
    if kind == "mixed":
        assert min(counts) < 12 and max(counts) > 150  # both ends


def test_embed_section_rows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench_memory, "EMBED_SIZES_QUICK", {"short": 6, "mixed": 6, "long": 2})
    monkeypatch.setattr(bench_memory, "TOPICS", bench_memory.TOPICS[:1])
    monkeypatch.setattr(bench_memory, "EMBED_SIZES", {"short": 4, "mixed": 4, "long": 2})
    names = [f.name for f in bench_memory.bench_embed(True, tmp_path)]
    assert not any("unbucketed" in n for n in names)  # the slow side: full runs only
    figures = bench_memory.bench_embed(False, tmp_path)
    names = [f.name for f in figures]
    for kind in ("short", "mixed", "long"):
        assert f"embedder batched throughput, {kind} texts" in names
        assert f"  bucketed / 0.2.0 batching ({kind})" in names
        assert f"  bucketed / unbucketed ({kind})" in names
    mixed = next(f for f in figures if f.name == "  bucketed / 0.2.0 batching (mixed)")
    assert mixed.target == ">= 1.5" and mixed.ok is not None
    assert names[-1].startswith("query embedding p50")
    assert all(f.value > 0 for f in figures)


def test_bulk_items_carry_their_own_scope_and_metadata() -> None:
    items = bench_memory._items(["a", "b", "c"], 0)
    assert [i["user_id"] for i in items] == ["bulk0-0", "bulk0-1", "bulk0-2"]
    assert len({json.dumps(i["metadata"]) for i in items}) == 3


# --------------------------------------------------------------------------- plugin benchmarks


def good(quick: bool) -> list[Figure]:
    return [Figure(f"memsift_good: quick={quick}", 1.0, "ratio", "<= 1.05", True)]


def broken(quick: bool) -> list[Figure]:
    raise RuntimeError("no [bold]model[/bold]")


def not_figures(quick: bool) -> list[object]:
    return [{"name": "a dict"}]


def fake_entry_points(**names: str) -> Callable[..., list[EntryPoint]]:
    found = [
        EntryPoint(name=name, value=f"{__name__}:{attr}", group=BENCHMARK_GROUP)
        for name, attr in names.items()
    ]

    def entry_points(*, group: str) -> list[EntryPoint]:
        return found if group == BENCHMARK_GROUP else []

    return entry_points


def test_plugin_benchmarks_come_from_the_entry_point_group(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        bench, "entry_points", fake_entry_points(a="broken", b="good", c="not_figures")
    )
    figures = bench.bench_plugins(quick=True)
    assert [f.name for f in figures] == ["memsift_good: quick=True"]
    out = capsys.readouterr().out
    assert "skipped benchmark a = " in out and "RuntimeError: no [bold]model[/bold]" in out
    assert "skipped benchmark c = " in out and "instead of memsift Figure objects" in out


def test_the_local_section_prints_the_plugins_figures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "entry_points", fake_entry_points(good="good"))
    figures = bench.run_bench(quick=False, json_path=str(tmp_path / "b.json"), only={"local"})
    assert [f.name for f in figures] == ["memsift_good: quick=False"]
    assert "memsift_good: quick=False" in capsys.readouterr().out
    assert json.loads((tmp_path / "b.json").read_text())[0]["target"] == "<= 1.05"
