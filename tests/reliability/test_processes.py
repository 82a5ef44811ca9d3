"""Several processes on one store path: each call sees every write other processes committed
before it began (read-after-ack probes across processes), writes taken in turns lose nothing,
compactions make the others reload, a process killed inside a batched add leaves that add
whole or absent, and a fresh open holds exactly the union of the acknowledged states."""

from __future__ import annotations

import sys
import textwrap

import pytest

from memsift.drills.processes import processes_drill

from .conftest import DrillSizes, DrillTable

#: A worker whose store never catches up with other processes' commits on a read: it keeps
#: its stale in-memory index (its own writes still catch up, inside the write transaction).
STALE_INDEX = textwrap.dedent(
    """
    import sys
    from memsift.builtin.faiss.sync import SyncedStore
    from memsift.drills.process_worker import main

    SyncedStore._refresh_if_changed = lambda self: None
    main(sys.argv[1:])
    """
)

#: A worker that, told to reload after another process compacted the index, keeps its old
#: index and slot columns (and only takes the new epoch's name).
NO_RELOAD = textwrap.dedent(
    """
    import sys
    from memsift.builtin.faiss.sync import SyncedStore
    from memsift.drills.process_worker import main

    load = SyncedStore._load

    def keep_old_index(self, state):
        if self._index is None:
            load(self, state)
        else:
            self._generation, self._epoch = state.generation, state.epoch

    SyncedStore._load = keep_old_index
    main(sys.argv[1:])
    """
)


def test_processes_see_each_others_writes_and_lose_nothing(
    sizes: DrillSizes, drill_table: DrillTable
) -> None:
    report = processes_drill(sizes.ops, processes=3, seed=sizes.seed)
    drill_table(report)
    assert report.ok, report.problems
    assert report.attempts >= sizes.ops
    notes = report.notes
    assert {"add", "update", "delete", "delete_all", "search", "get_all"} <= set(notes)
    assert notes["probes"] >= sizes.ops // 20 and notes["probe reads"] > notes["probes"]
    assert notes["free rounds"] >= 10
    assert notes["compactions"] >= 3, notes  # the deletes crossed the threshold several times
    assert notes["reloads"] >= notes["compactions"], notes  # the others reloaded after each
    assert notes["kills"] == max(1, sizes.ops // 400)
    outcomes = notes.get("killed add present", 0) + notes.get("killed add absent", 0)
    assert outcomes == notes["kills"]
    assert notes.get("lock timeouts", 0) == 0


def test_the_drill_catches_a_process_that_keeps_a_stale_index(sizes: DrillSizes) -> None:
    report = processes_drill(
        sizes.ops, processes=3, seed=sizes.seed, child=(sys.executable, "-c", STALE_INDEX)
    )
    assert not report.ok
    assert report.kinds.get("stale read", 0) > 0, report.kinds


def test_the_drill_catches_a_process_that_does_not_reload_after_a_compaction(
    sizes: DrillSizes,
) -> None:
    report = processes_drill(
        sizes.ops, processes=3, seed=sizes.seed, child=(sys.executable, "-c", NO_RELOAD)
    )
    assert not report.ok
    assert report.kinds.get("stale read", 0) > 0, report.kinds  # slots read as other memories


def test_one_process_is_not_a_processes_drill() -> None:
    with pytest.raises(ValueError, match="at least two"):
        processes_drill(10, processes=1)


def test_a_worker_that_dies_is_reported_not_hung() -> None:
    report = processes_drill(20, processes=2, child=(sys.executable, "-c", "raise SystemExit(3)"))
    assert report.kinds == {"process died": 1}
    assert "status 3" in report.problems[0]
