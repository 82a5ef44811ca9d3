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
from typing import Any

import pytest

from memsift.drills.crash import KNOWN, crash_drill
from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config, word
from memsift.memory import Memory

from .conftest import DrillSizes, DrillTable


def test_kills_lose_nothing_acknowledged(sizes: DrillSizes, drill_table: DrillTable) -> None:
    report = crash_drill(sizes.kills, seed=sizes.seed)
    drill_table(report)
    assert report.attempts == sizes.kills >= 50
    assert report.lost == 0, report.problems
    assert not KNOWN  # no pinned defect left
    assert report.kinds == {}, report.problems
    assert report.ok
    assert report.notes["acknowledged writes"] > sizes.kills
    killed_in = {k for k in report.notes if k.startswith("killed in ")}
    assert len(killed_in) >= 3, report.notes  # kills landed inside several kinds of call


def test_word_spells_distinct_numbers_distinctly() -> None:
    assert len({word(n) for n in range(5000)}) == 5000
    assert all(w.isalpha() for w in (word(0), word(25), word(26), word(10**9)))


# --------------------------------------------------------------------------- the kill window

#: A child that dies (SIGKILL) inside a change: in the store write (after the history of the
#: change was committed, before the store's own commit: ``insert`` / ``update`` / ``delete``)
#: or in the settle (after the store's commit, before the call returns: ``settle-*``).
KILL_IN_STORE_WRITE = textwrap.dedent(
    """
    import json, os, signal, sys
    from memsift.memory import Memory
    from memsift.drills.writer import drill_config

    m = Memory.from_config(drill_config(sys.argv[1]))
    ids = [r["id"] for r in m.add(["alpha beta", "gamma delta"], user_id="u0")["results"]]
    print(json.dumps(ids), flush=True)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    method = sys.argv[2].removeprefix("settle-")
    if sys.argv[2].startswith("settle-"):
        m.history_db.settle = die
    else:
        setattr(m.vector_store, method, die)
    if method == "insert":
        m.add(["epsilon zeta"], user_id="u0")
    elif method == "update":
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


def test_a_kill_inside_an_add_leaves_no_history_of_it(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "insert")
    with m:
        assert sorted(m.history_db.memory_ids()) == sorted(ids)


def test_a_kill_inside_an_update_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "update")
    with m:
        assert m.get(ids[0])["memory"] == "alpha beta"
        assert [e["event"] for e in m.history(ids[0])] == ["ADD"]


def test_a_kill_inside_a_delete_all_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "delete")
    with m:
        assert [[e["event"] for e in m.history(i)] for i in ids] == [["ADD"], ["ADD"]]


def test_the_hidden_events_stay_hidden_through_later_changes(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "update")
    with m:
        m.update(ids[0], "iota kappa")
        m.delete(ids[0])
        events = m.history(ids[0])
        assert [(e["event"], e["new_memory"]) for e in events] == [
            ("ADD", "alpha beta"),
            ("UPDATE", "iota kappa"),
            ("DELETE", None),
        ]
        assert events[1]["old_memory"] == "alpha beta"


# A kill after the store's commit and before the settle: the store made the change, so its
# history is shown (confirmed by the store), and settled when the store opens again.


def _settled(m: Memory) -> bool:
    return not m.history_db._conn.execute(
        "SELECT COUNT(*) FROM history WHERE pending IS NOT NULL"
    ).fetchone()[0]


def test_a_kill_after_the_store_commit_of_an_add_shows_its_history(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "settle-insert")
    with m:
        live = m.get_all(user_id="u0")["results"]
        assert len(live) == 3
        assert sorted(m.history_db.memory_ids()) == sorted(r["id"] for r in live)
        new = next(r for r in live if r["id"] not in ids)
        assert [e["event"] for e in m.history(new["id"])] == ["ADD"]
        assert _settled(m)


def test_a_kill_after_the_store_commit_of_an_update_shows_it(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "settle-update")
    with m:
        assert m.get(ids[0])["memory"] == "eta theta"
        assert [(e["event"], e["new_memory"]) for e in m.history(ids[0])] == [
            ("ADD", "alpha beta"),
            ("UPDATE", "eta theta"),
        ]
        assert _settled(m)


def test_a_kill_after_the_store_commit_of_a_delete_all_shows_it(tmp_path: Path) -> None:
    m, ids = _killed_in(tmp_path, "settle-delete")
    with m:
        assert m.get_all(user_id="u0")["results"] == []
        assert [[e["event"] for e in m.history(i)] for i in ids] == [["ADD", "DELETE"]] * 2
        assert _settled(m)


class _TiedStore:
    """A stand-in for a Memory whose every search ties ``ties`` memories at the top score,
    the one asked for (``present``) among them or not, followed by a worse hit."""

    def __init__(self, ties: int, present: bool) -> None:
        self.ties, self.present = ties, present
        self.vector_store = self
        self.top_ks: list[int] = []

    def stats(self) -> dict[str, int]:
        return {"live": 1}

    def search(self, query: str, *, user_id: str, top_k: int, rerank: bool) -> dict[str, Any]:
        self.top_ks.append(top_k)
        group = [f"other{i}" for i in range(self.ties - 1)] + ["me" if self.present else "x"]
        hits = [{"id": i, "vector_score": 1.0} for i in group]
        hits.append({"id": "worse", "vector_score": 0.5})
        return {"results": hits[:top_k]}


@pytest.mark.parametrize("ties", [1, 3, 40, 600])
def test_the_index_check_looks_past_a_tie_that_fills_the_hits(ties: int) -> None:
    from memsift.drills.crash import _check_index

    rec = {"id": "me", "memory": "text", "user_id": "u"}
    found = DrillReport("t")
    _check_index(_TiedStore(ties, present=True), [rec], [], found)
    assert found.ok, found.problems
    missing = DrillReport("t")
    store = _TiedStore(ties, present=False)
    _check_index(store, [rec], [], missing)
    assert missing.kinds == {"index": 1}
    assert max(store.top_ks) > ties or ties >= 1000
