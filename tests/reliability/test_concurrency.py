"""Concurrency in one process: 8 threads on one Memory and 50 tasks on one AsyncMemory (faiss
store) raise nothing undocumented and end in the state their acknowledged calls imply."""

from __future__ import annotations

from memsift.drills.concurrency import tasks_drill, threads_drill

from .conftest import DrillSizes, DrillTable


def test_eight_threads_on_one_memory(sizes: DrillSizes, drill_table: DrillTable) -> None:
    report = threads_drill(sizes.ops, threads=8, seed=sizes.seed)
    drill_table(report)
    assert report.attempts == sizes.ops
    assert report.ok, report.problems
    assert {"add", "update", "delete", "search", "get_all"} <= set(report.notes)


def test_fifty_tasks_on_one_async_memory(sizes: DrillSizes, drill_table: DrillTable) -> None:
    report = tasks_drill(sizes.ops, tasks=50, seed=sizes.seed)
    drill_table(report)
    assert report.attempts >= sizes.ops
    assert report.ok, report.problems
    assert {"add", "update", "delete", "search", "get_all"} <= set(report.notes)
