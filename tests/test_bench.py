"""The benchmark's building blocks run and measure what they say (small sizes), and plugin
benchmarks are found through the ``memsift.benchmarks`` entry-point group."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from memsift.cli import bench
from memsift.cli.bench import BENCHMARK_GROUP, _clustered, _single_scope
from memsift.interfaces import EmbedderIdentity
from memsift.testing.benchkit import Figure


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
