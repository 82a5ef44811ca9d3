"""Reliability drills: the invariants of DESIGN 9 exercised at length, by the test suite
(``tests/reliability``, bounded sizes) and by ``memsift drill`` (any size).

- :mod:`memsift.drills.crash` (with its child :mod:`memsift.drills.writer`): SIGKILL at any
  point of a stream of writes;
- :mod:`memsift.drills.migration`: SIGKILL inside ``migrate``, then a rerun that finishes;
- :mod:`memsift.drills.hostile`: generated hostile input through the API and the CLI;
- :mod:`memsift.drills.tenants`: scoped calls whose filters try to leave the scope;
- :mod:`memsift.drills.concurrency`: threads on one ``Memory``, tasks on one ``AsyncMemory``;
- :mod:`memsift.drills.environment`: damaged files, a read-only store, a full disk;
- :mod:`memsift.drills.processes` (with its child :mod:`memsift.drills.process_worker`):
  several processes on one store path.

Each drill returns a :class:`~memsift.drills.report.DrillReport`; :data:`DRILLS` names them
for the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memsift.drills.report import DrillReport


@dataclass(frozen=True)
class Sizes:
    """How long to drill: kills of the crash drill (a tenth as many rounds of the migration
    and the environment drills), hostile cases, and calls of the isolation and concurrency
    drills; ``seed`` replays a run."""

    kills: int = 50
    cases: int = 1000
    ops: int = 400
    seed: int = 0
    #: the vector store provider of the concurrency drills (given ``{"path": folder}``)
    store: str = "faiss"


def _crash(s: Sizes) -> list[DrillReport]:
    from memsift.drills.crash import crash_drill

    return [crash_drill(s.kills, seed=s.seed)]


def _migration(s: Sizes) -> list[DrillReport]:
    from memsift.drills.migration import migration_drill

    return [migration_drill(max(1, s.kills // 10), seed=s.seed)]


def _hostile(s: Sizes) -> list[DrillReport]:
    from memsift.drills.hostile import hostile_drill

    return [hostile_drill(s.cases, seed=s.seed)]


def _tenants(s: Sizes) -> list[DrillReport]:
    from memsift.drills.tenants import tenants_drill

    return [tenants_drill(s.ops, seed=s.seed)]


def _concurrency(s: Sizes) -> list[DrillReport]:
    from memsift.drills.concurrency import tasks_drill, threads_drill
    from memsift.drills.writer import drill_config

    def config(tmp: str) -> dict[str, Any]:
        cfg = drill_config(tmp)
        cfg["vector_store"] = {"provider": s.store, "config": {"path": f"{tmp}/store"}}
        return cfg

    reports = [
        threads_drill(s.ops, seed=s.seed, config=config),
        tasks_drill(s.ops, seed=s.seed, config=config),
    ]
    if s.store != "faiss":
        for r in reports:
            r.name += f" ({s.store})"
    return reports


def _environment(s: Sizes) -> list[DrillReport]:
    from memsift.drills.environment import environment_drill

    return [environment_drill(max(1, s.kills // 10), seed=s.seed)]


def _processes(s: Sizes) -> list[DrillReport]:
    from memsift.drills.processes import processes_drill

    return [processes_drill(s.ops, seed=s.seed)]


#: The drills by name, each run with the sizes it uses.
DRILLS: dict[str, Callable[[Sizes], list[DrillReport]]] = {
    "crash": _crash,
    "migrate": _migration,
    "hostile": _hostile,
    "tenants": _tenants,
    "concurrency": _concurrency,
    "environment": _environment,
    "processes": _processes,
}

__all__ = ["DRILLS", "DrillReport", "Sizes"]
