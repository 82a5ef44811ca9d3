"""Hostile input: every generated case through the API and the CLI returns, or raises a
documented MemsiftError, in bounded time, and a case that raises writes nothing."""

from __future__ import annotations

import tempfile

import pytest

from memsift.drills import hostile
from memsift.drills.hostile import Case, hostile_drill, run_case, sweep_cases
from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config
from memsift.memory import Memory

from .conftest import DrillSizes, DrillTable


def test_generated_cases_get_documented_errors_or_succeed(
    sizes: DrillSizes, drill_table: DrillTable
) -> None:
    report = hostile_drill(sizes.cases, seed=sizes.seed)
    drill_table(report)
    assert report.attempts == sizes.cases >= 500
    assert report.ok, report.problems
    assert report.notes["cli"] > 20
    # the cases reach the checks they aim at, and some calls legitimately succeed
    for error in ("FilterError", "InvalidInputError", "ScopeError", "UnknownArgumentError"):
        assert report.notes[error] > 5, report.notes
    assert report.notes["succeeded"] > 50


def test_the_sweep_covers_every_pool() -> None:
    with tempfile.TemporaryDirectory() as tmp, Memory.from_config(drill_config(tmp)) as m:
        labels = [c.label for c in sweep_cases(m, ["an-id"])]
    pools = (hostile.EXTRA_FILTERS, hostile.QUERIES, hostile.METADATA, hostile.SCOPES)
    assert len(labels) >= 3 * len(pools[0]) + 3 * len(pools[1]) + 2 * len(pools[2])


# --------------------------------------------------------------------------- the runner itself


@pytest.fixture
def memory() -> Memory:
    tmp = tempfile.mkdtemp()
    m = Memory.from_config(drill_config(tmp))
    m.add("alpha beta", user_id="u")
    return m


def test_the_runner_reports_a_raw_exception(memory: Memory) -> None:
    report = DrillReport("t")

    def boom() -> None:
        raise KeyError("raw")

    run_case(memory, Case("boom", boom), report, check_counts=True)
    assert report.kinds == {"raw error": 1}


def test_the_runner_reports_a_write_before_an_error(memory: Memory) -> None:
    from memsift.errors import InvalidInputError

    report = DrillReport("t")

    def write_then_raise() -> None:
        memory.add("gamma delta", user_id="u")
        raise InvalidInputError("after the write")

    run_case(memory, Case("partial", write_then_raise), report, check_counts=True)
    assert report.kinds == {"partial write": 1}


def test_the_runner_reports_a_hang(memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(hostile, "CASE_TIMEOUT", 0.2)
    release = threading.Event()
    report = DrillReport("t")
    run_case(memory, Case("hang", lambda: release.wait(10)), report, check_counts=False)
    release.set()
    assert report.kinds == {"hang": 1}
