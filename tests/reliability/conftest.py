"""Sizes of the drills: small by default, so the suite stays bounded; larger through the
environment (``MEMSIFT_DRILL_KILLS``, ``MEMSIFT_DRILL_CASES``, ``MEMSIFT_DRILL_OPS``), and a
seed (``MEMSIFT_DRILL_SEED``) to replay a run. ``memsift drill`` runs the same drills with
its own sizes. The session ends with the table of the drills run (``drill_table``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from memsift.drills.report import DrillReport

DEFAULTS = {"kills": 50, "cases": 1000, "ops": 400, "seed": 0}


@dataclass(frozen=True)
class DrillSizes:
    kills: int
    cases: int
    ops: int
    seed: int


@pytest.fixture(scope="session")
def sizes() -> DrillSizes:
    return DrillSizes(
        **{n: int(os.environ.get(f"MEMSIFT_DRILL_{n.upper()}", d)) for n, d in DEFAULTS.items()}
    )


# ---------------------------------------------------------------- the table of drills
#: What ``drill_table`` records on a test (a user property, so that it reaches the
#: controlling process under pytest-xdist too).
PROPERTY = "memsift drill"
#: The rows collected from the finished tests, printed at the end of the session.
_ROWS: list[dict[str, Any]] = []


#: The ``drill_table`` fixture's type.
DrillTable = Callable[..., None]


@pytest.fixture
def drill_table(request: pytest.FixtureRequest) -> DrillTable:
    """``drill_table(*reports)``: put the reports of a drill run at its real size (not the
    deliberately broken targets of the tests that show a drill failing) in the table
    printed at the end of the session, as ``memsift drill`` prints it."""

    def record(*reports: DrillReport) -> None:
        for r in reports:
            row = {
                "name": r.name,
                "attempts": r.attempts,
                "failures": r.failure_count,
                "lost": r.lost,
                "kinds": dict(r.kinds),
            }
            request.node.user_properties.append((PROPERTY, row))

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _ROWS.extend(row for key, row in report.user_properties if key == PROPERTY)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ROWS:
        return
    width = max(len(str(row["name"])) for row in _ROWS)
    terminalreporter.section("reliability drills")
    terminalreporter.write_line(
        f"{'drill':<{width}}  {'attempts':>8}  {'failures':>8}  {'lost':>4}  what failed"
    )
    for row in sorted(_ROWS, key=lambda r: str(r["name"])):
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(row["kinds"].items())) or "-"
        terminalreporter.write_line(
            f"{row['name']:<{width}}  {row['attempts']:>8}  {row['failures']:>8}  "
            f"{row['lost']:>4}  {kinds}"
        )
