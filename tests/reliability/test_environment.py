"""Corruption and hostile environment: a damaged index or sidecar is rebuilt with a warning;
a damaged or lost SQLite or history file is a StoreError naming it and left as it was; a
read-only folder or file and a full disk give StoreErrors that change nothing; the CLI
ends cleanly; and once the damage is undone the store holds everything acknowledged."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memsift.builtin.faiss import schema, sync
from memsift.builtin.faiss.sync import SyncedStore
from memsift.drills import environment_limits, environment_store
from memsift.drills.environment import damage_cases, environment_drill, one_case
from memsift.drills.environment_store import Expected, Layout, build
from memsift.drills.report import DrillReport
from memsift.errors import StoreError
from memsift.memory import Memory

from .conftest import DrillSizes, DrillTable


def _rounds(sizes: DrillSizes) -> int:
    return max(1, sizes.kills // 10)


def test_damage_and_constraints_end_in_a_rebuild_or_a_clear_error(
    sizes: DrillSizes, drill_table: DrillTable
) -> None:
    rounds = _rounds(sizes)
    report = environment_drill(rounds, seed=sizes.seed)
    drill_table(report)
    assert report.ok, (report.kinds, report.problems)
    assert report.attempts == rounds * (len(damage_cases()) + 4)
    notes = report.notes
    # every kind of outcome was reached, each in every round
    assert notes["rebuilt"] >= 8 * rounds, notes
    assert notes["StoreError at open (sqlite)"] >= 6 * rounds, notes
    assert notes["StoreError at open (history)"] == 2 * rounds, notes
    assert notes["cli errors"] >= 8 * rounds and notes["cli searches"] >= 8 * rounds, notes
    assert notes["read-only folder: StoreError at open"] == rounds, notes
    assert notes["read-only files: opened"] == rounds, notes
    assert notes["read-only files: StoreError on single"] >= rounds, notes
    assert notes["read-only database: StoreError on batch"] >= rounds, notes
    assert ("read-only by bind mount" in notes) != ("read-only by chmod" in notes)
    assert notes["full disk: acknowledged writes"] >= rounds, notes
    for op in ("single", "batch", "delete"):
        assert notes[f"full disk: StoreError on {op}"] >= rounds, notes
    assert notes["full disk: compactions"] >= 1, notes  # with tombstones, on the full disk
    assert ("full disk by tmpfs" in notes) != ("full disk by RLIMIT_FSIZE" in notes)


def test_the_full_disk_falls_back_to_a_file_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment_limits, "can_mount", lambda: False)
    report = DrillReport("t")
    with _pristine() as (pristine, expected):
        environment_limits.full_disk_case(pristine, expected, random.Random(3), report)
    assert report.ok, (report.kinds, report.problems)
    assert report.notes["full disk by RLIMIT_FSIZE"] == 1
    assert report.notes["full disk: StoreError on single"] >= 1, report.notes


def test_root_without_the_right_to_mount_is_a_failure_not_a_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(environment_limits, "can_mount", lambda: False)
    monkeypatch.setattr("memsift.drills.environment_limits.os.geteuid", lambda: 0)
    report = DrillReport("t")
    with _pristine() as (pristine, expected):
        environment_limits.read_only_cases(pristine, expected, report)
    assert report.kinds == {"setup": 1}


# --------------------------------------------------------------------------- broken targets


@contextlib.contextmanager
def _pristine() -> Iterator[tuple[Layout, Expected]]:
    with tempfile.TemporaryDirectory() as tmp:
        pristine = Layout(Path(tmp) / "pristine")
        yield pristine, build(pristine, random.Random(1))


def _run(labels: set[str], patch: Callable[[], object]) -> DrillReport:
    """The damage cases ``labels``, with ``patch`` applied once the pristine store is built."""
    report = DrillReport("t")
    rng = random.Random(2)
    with _pristine() as (pristine, expected):
        patch()
        for label, damage, outcome in damage_cases():
            if label in labels:
                one_case(pristine, expected, label, damage, outcome, rng, report)
    return report


def test_it_catches_an_empty_store_opened_over_a_lost_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = _run(
        {"sqlite zero bytes", "sqlite missing"},
        lambda: monkeypatch.setattr(SyncedStore, "_refuse_a_lost_database", lambda self: None),
    )
    assert report.kinds["silent loss"] >= 2 and report.lost > 0, report.kinds


def test_it_catches_a_rebuild_without_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    silent = lambda *a, **k: None  # noqa: E731 - always rebuilt, never a word
    report = _run(
        {"index missing", "sidecar garbage"},
        lambda: monkeypatch.setattr(sync, "read_index_file", silent),
    )
    assert report.kinds == {"no warning": 2}, report.kinds


def test_it_catches_an_index_file_trusted_unverified(monkeypatch: pytest.MonkeyPatch) -> None:
    from memsift.builtin.faiss.index import faiss

    def trusting(conn: Any, config: Any, dims: int, state: Any, **paths: Path) -> Any:
        return faiss.read_index(str(paths["index_path"])), state.generation

    report = _run(
        {"index garbage same size", "index truncated"},
        lambda: monkeypatch.setattr(sync, "read_index_file", trusting),
    )
    assert report.kinds.get("raw error", 0) >= 2, report.kinds


def test_it_catches_a_store_that_starts_over_on_a_damaged_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = schema.connect

    def start_over(db_path: Path) -> sqlite3.Connection:
        conn = original(db_path)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError:  # "helpfully" replaces the damaged file
            conn.close()
            db_path.unlink()
            conn = original(db_path)
        return conn

    def damaged_at_connect(db_path: Path) -> sqlite3.Connection:
        try:
            return start_over(db_path)
        except StoreError:
            db_path.unlink()
            return original(db_path)

    report = _run(
        {"sqlite garbage", "sqlite half"},
        lambda: monkeypatch.setattr("memsift.builtin.faiss.sync.connect", damaged_at_connect),
    )
    assert report.kinds.get("silent loss", 0) >= 2, report.kinds


def test_it_catches_raw_sqlite_errors_in_a_hostile_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync, "sqlite_errors", lambda *a: contextlib.nullcontext())
    monkeypatch.setattr(environment_limits, "FAILURES", 3)
    report = DrillReport("t")
    with _pristine() as (pristine, expected):
        environment_limits.read_only_cases(pristine, expected, report)
        environment_limits.full_disk_case(pristine, expected, random.Random(4), report)
    assert report.kinds.get("raw error", 0) >= 2, report.kinds


def test_it_catches_a_traceback_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(config: Any) -> Any:
        raise RuntimeError("raw")

    report = DrillReport("t")
    with _pristine() as (pristine, expected):
        monkeypatch.setattr(Memory, "from_config", staticmethod(broken))
        environment_store.check_cli(pristine, expected, "t", report)
    assert report.kinds == {"raw error": 1}
