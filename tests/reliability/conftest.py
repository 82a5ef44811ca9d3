"""Sizes of the drills: small by default, so the suite stays bounded; larger through the
environment (``MEMSIFT_DRILL_KILLS``, ``MEMSIFT_DRILL_CASES``, ``MEMSIFT_DRILL_OPS``), and a
seed (``MEMSIFT_DRILL_SEED``) to replay a run. ``memsift drill`` runs the same drills with
its own sizes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

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
