"""Crash at any point: a writer SIGKILLed at random moments (inside batched adds, updates,
``delete_all`` and compactions) leaves a store that opens, holds every acknowledged write
exactly (text, metadata, timestamps, history), shows nothing of an unacknowledged one but
all of it or none, and whose vector index agrees with SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memsift.drills.crash import KNOWN, crash_drill
from memsift.drills.writer import drill_config, word
from memsift.memory import Memory

from .conftest import DrillSizes


def test_kills_lose_nothing_acknowledged(sizes: DrillSizes) -> None:
    report = crash_drill(sizes.kills, seed=sizes.seed)
    assert report.attempts == sizes.kills >= 50
    assert report.lost == 0, report.problems
    # The one known defect (history committed, store not: see the strict xfails below) is
    # counted in the report; every other invariant holds.
    assert report.unexpected(KNOWN) == {}, report.problems
    assert report.notes["acknowledged writes"] > sizes.kills
    killed_in = {k for k in report.notes if k.startswith("killed in ")}
    assert len(killed_in) >= 3, report.notes  # kills landed inside several kinds of call


def test_word_spells_distinct_numbers_distinctly() -> None:
    assert len({word(n) for n in range(5000)}) == 5000
    assert all(w.isalpha() for w in (word(0), word(25), word(26), word(10**9)))


# --------------------------------------------------------------------------- the known defect

#: A child that dies (SIGKILL, from inside the store write) after the history of a change
#: was committed and before the store's own commit: the window the random kills hit.
KILL_IN_STORE_WRITE = textwrap.dedent(
    """
    import json, os, signal, sys
    from memsift.memory import Memory
    from memsift.drills.writer import drill_config

    m = Memory.from_config(drill_config(sys.argv[1]))
    ids = [r["id"] for r in m.add(["alpha beta", "gamma delta"], user_id="u0")["results"]]
    print(json.dumps(ids), flush=True)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    setattr(m.vector_store, sys.argv[2], die)
    if sys.argv[2] == "insert":
        m.add(["epsilon zeta"], user_id="u0")
    elif sys.argv[2] == "update":
        m.update(ids[0], "eta theta")
    else:
        m.delete_all(user_id="u0")
    """
)


def _killed_in(tmp_path: Path, method: str) -> tuple[Memory, list[str]]:
    child = subprocess.run(
        [sys.executable, "-c", KILL_IN_STORE_WRITE, str(tmp_path), method],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    return Memory.from_config(drill_config(tmp_path)), json.loads(child.stdout)


def test_the_kill_window_leaves_the_store_itself_intact(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "delete")
    with m:
        assert sorted(r["id"] for r in m.get_all(user_id="u0")["results"]) == sorted(ids)


HISTORY_AHEAD = (
    "the history is committed before the store (memsift.changes.record_then) in another "
    "SQLite file: a kill between the two commits leaves history events for a change the "
    "store never made"
)


@pytest.mark.xfail(strict=True, reason=HISTORY_AHEAD)
def test_a_kill_inside_an_add_leaves_no_history_of_it(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "insert")
    with m:
        assert sorted(m.history_db.memory_ids()) == sorted(ids)


@pytest.mark.xfail(strict=True, reason=HISTORY_AHEAD)
def test_a_kill_inside_an_update_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "update")
    with m:
        assert m.get(ids[0])["memory"] == "alpha beta"
        assert [e["event"] for e in m.history(ids[0])] == ["ADD"]


@pytest.mark.xfail(strict=True, reason=HISTORY_AHEAD)
def test_a_kill_inside_a_delete_all_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "delete")
    with m:
        assert [[e["event"] for e in m.history(i)] for i in ids] == [["ADD"], ["ADD"]]
