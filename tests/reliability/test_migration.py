"""A migration SIGKILLed mid-copy leaves a target that opens and holds only faithful copies
(with their history, and an index that agrees), and a rerun finishes and verifies the copy."""

from __future__ import annotations

from memsift.drills.migration import migration_drill

from .conftest import DrillSizes, DrillTable


def test_killed_migrations_are_finished_by_a_rerun(
    sizes: DrillSizes, drill_table: DrillTable
) -> None:
    rounds = max(3, sizes.kills // 10)
    report = migration_drill(rounds, seed=sizes.seed)
    drill_table(report)
    assert rounds <= report.attempts <= 2 * rounds
    assert report.ok, report.problems
    assert report.notes.get("killed mid-copy", 0) >= rounds
