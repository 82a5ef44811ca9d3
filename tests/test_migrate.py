"""``memsift migrate`` between two faiss stores: everything copied and verified, reruns skip
what was copied, a killed run is finished by the next one, and what must be refused is."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from memsift import ConfigError, EmbedderMismatchError, Memory, StoreError
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.cli import main
from memsift.history import History
from memsift.interfaces import EmbedderIdentity
from memsift.migrate import migrate
from memsift.testing.vector_store import make_records

EMBEDDER = {"provider": "hashing", "config": {}}


def _config(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(path), **extra}},
        "embedder": EMBEDDER,
    }


def _fill(config: dict[str, Any], users: int = 4, each: int = 15) -> dict[str, Any]:
    """Memories over several scopes, with updates and deletes; returns what to check."""
    with Memory.from_config(config) as m:
        ids: list[str] = []
        for u in range(users):
            out = m.add(
                [f"user {u} fact {i} about tea and lisbon" for i in range(each)],
                user_id=f"u{u}",
                agent_id="agent" if u % 2 else None,
                metadata={"n": u, "big": 2**60 + u, "tags": ["a", ["b"]], "x": None},
                infer=False,
            )
            ids.extend(r["id"] for r in out["results"])
        m.update(ids[0], "user 0 fact 0 rewritten", metadata={"edited": True})
        m.delete(ids[1])
        records = _everything(m, users)
        histories = {i: _events(m.history(i)) for i in ids}
    return {"ids": ids, "records": records, "histories": histories, "users": users}


def _everything(m: Memory, users: int = 5) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for u in range(users):
        out.update((r["id"], r) for r in m.get_all(user_id=f"u{u}", top_k=10_000)["results"])
    return out


def _events(history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["event"], e["old_memory"], e["new_memory"], e["created_at"]) for e in history]


def _check_copy(config: dict[str, Any], expected: dict[str, Any]) -> None:
    with Memory.from_config(config) as m:
        assert _everything(m, expected["users"]) == expected["records"]
        for memory_id, events in expected["histories"].items():
            assert _events(m.history(memory_id)) == events, memory_id
        user = f"u{expected['users'] - 1}"
        hits = m.search("fact 2 about tea", user_id=user, top_k=3)["results"]
        assert hits and all(h["user_id"] == user for h in hits)


def test_copies_every_memory_with_vectors_timestamps_and_history(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a)
    seen: list[tuple[str, int, int]] = []
    report = migrate(a, b, batch_size=7, progress=lambda *p: seen.append(p))
    assert report.verified, report.problems
    assert (report.total, report.copied, report.skipped) == (59, 59, 0)
    # 60 ADD, 1 UPDATE, 1 DELETE: the deleted memory's history goes along too
    assert report.history_events == 62
    assert report.sampled == 59 and report.min_cosine is not None and report.min_cosine > 0.9999
    assert report.scopes[("u1", "agent", None)] == (15, 15)
    assert report.scopes[("u0", None, None)] == (14, 14)
    copies = [p for p in seen if p[0] == "copy"]
    assert copies[0] == ("copy", 0, 59) and copies[-1] == ("copy", 59, 59)
    assert len(copies) == 1 + 9  # one report per batch of 7
    _check_copy(b, expected)
    # the vectors themselves, not only a sample
    store_a = FaissStore(FaissStoreConfig(path=str(tmp_path / "a")))
    store_b = FaissStore(FaissStoreConfig(path=str(tmp_path / "b")))
    identity = EmbedderIdentity("hashing", "hashing-64", 64)
    try:
        store_a.open(identity)
        store_b.open(identity)
        ids = list(expected["records"])
        np.testing.assert_allclose(store_a.get_vectors(ids), store_b.get_vectors(ids), atol=1e-6)
    finally:
        store_a.close()
        store_b.close()


def test_events_still_pending_in_the_source_are_copied_when_its_store_confirms_them(
    tmp_path: Path,
) -> None:
    """A process killed after its store commit and before settling leaves pending events;
    the store confirms them, so the copy carries them as Memory shows them."""
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a)
    with sqlite3.connect(tmp_path / "a" / "history.db") as conn:
        assert conn.execute("UPDATE history SET pending = ?", (time.time(),)).rowcount > 0
    assert migrate(a, b).copied == len(expected["records"])
    _check_copy(b, expected)


def test_a_rerun_skips_what_was_copied_and_doubles_no_event(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a, users=2, each=5)
    assert migrate(a, b).copied == 9
    again = migrate(a, b)
    assert (again.copied, again.skipped, again.history_events) == (0, 9, 0)
    assert again.verified
    _check_copy(b, expected)


def test_a_killed_migration_is_finished_by_the_next_run(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a, users=5, each=20)
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    script = textwrap.dedent(
        """
        import json, sys, time
        from memsift.migrate import migrate

        def progress(phase, done, total):
            print(phase, done, total, flush=True)
            time.sleep(0.2)

        a, b = (json.load(open(p)) for p in sys.argv[1:3])
        migrate(a, b, batch_size=4, progress=progress)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "a.json"), str(tmp_path / "b.json")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            phase, done, _total = line.split()
            if phase == "copy" and int(done) >= 12:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    with Memory.from_config(b) as m:
        partial = len(_everything(m))
    assert 12 <= partial < 99
    report = migrate(a, b)
    assert report.verified, report.problems
    assert report.skipped == partial and report.copied == 99 - partial
    _check_copy(b, expected)  # every history exactly once


def test_refuses_a_target_filled_by_another_embedder(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    _fill(a, users=1, each=3)
    other = FaissStore(FaissStoreConfig(path=str(tmp_path / "b")))
    other.open(EmbedderIdentity("other", "other-model", 64))
    other.insert(make_records(2), np.eye(2, 64, dtype=np.float32))
    other.close()
    with pytest.raises(EmbedderMismatchError, match="other/other-model"):
        migrate(a, b)


def test_refuses_configs_of_different_embedders_and_one_store_twice(tmp_path: Path) -> None:
    a = _config(tmp_path / "a")
    b = {**_config(tmp_path / "b"), "embedder": {"provider": "hashing", "config": {"dims": 32}}}
    _fill(a, users=1, each=2)
    with pytest.raises(ConfigError, match="same embedder"):
        migrate(a, b)
    with pytest.raises(ConfigError, match="same store"):
        migrate(a, _config(tmp_path / "a"))


def test_one_history_database_for_both_is_not_copied_into_itself(tmp_path: Path) -> None:
    shared = str(tmp_path / "history.db")
    a = {**_config(tmp_path / "a"), "history_db_path": shared}
    b = {**_config(tmp_path / "b"), "history_db_path": shared}
    expected = _fill(a, users=1, each=4)
    report = migrate(a, b)
    assert report.verified and not report.history_copied and report.history_events == 0
    _check_copy(b, expected)


def test_verification_reports_a_target_that_differs(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a, users=2, each=3)
    migrate(a, b)
    changed = next(iter(expected["records"]))
    identity = EmbedderIdentity("hashing", "hashing-64", 64)
    store = FaissStore(FaissStoreConfig(path=str(tmp_path / "b")))
    store.open(identity)
    record = store.get(changed)
    assert record is not None
    record.metadata = {"tampered": 1}
    store.update(record, np.eye(1, 64, 5, dtype=np.float32)[0])
    store.delete([next(r for r in expected["records"] if r != changed)])
    store.close()
    # the deleted one is copied again; the changed one is reported (record and vector)
    report = migrate(a, b)
    assert report.copied == 1
    assert not report.verified
    text = " ".join(report.problems)
    assert "1 memories differ" in text and "sampled vectors differ" in text


def test_a_store_that_cannot_return_vectors_says_so(tmp_path: Path) -> None:
    from memsift.interfaces import VectorStore

    class Opaque(FaissStore):
        get_vectors = VectorStore.get_vectors  # the base's default

    store = Opaque(FaissStoreConfig(path=str(tmp_path / "s")))
    store.open(EmbedderIdentity("hashing", "hashing-64", 64))
    try:
        with pytest.raises(StoreError, match="cannot return stored vectors"):
            store.get_vectors(["x"])
    finally:
        store.close()


def test_history_import_replaces_the_events_of_those_memories(tmp_path: Path) -> None:
    from memsift.history import HistoryEvent

    history = History(tmp_path / "h.db")
    first = HistoryEvent("m1", "ADD", None, "a", "2026-01-01T00:00:00.000000+00:00", "u")
    second = HistoryEvent("m1", "UPDATE", "a", "b", "2026-01-02T00:00:00.000000+00:00", "u")
    other = HistoryEvent("m2", "ADD", None, "c", "2026-01-03T00:00:00.000000+00:00")
    history.record([first, other])
    history.replace_events(["m1"], [first, second])
    history.replace_events(["m1"], [first, second])
    assert history.events_for(["m1"]) == [first, second]
    assert history.events_for(["m2", "m1"]) == [other, first, second]  # in the order written
    assert sorted(history.memory_ids()) == ["m1", "m2"]
    history.close()


# --------------------------------------------------------------------------- the command


def test_the_command_copies_shows_progress_and_verifies(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a, users=2, each=4)
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    args = ["migrate", "--from", str(tmp_path / "a.json"), "--to", str(tmp_path / "b.json")]
    result = CliRunner().invoke(main, [*args, "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "copying memories" in result.output
    assert "verified: every memory is in the target" in result.output
    assert "memories per scope" in result.output
    _check_copy(b, expected)
    again = CliRunner().invoke(main, [*args, "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["copied"] == 0 and data["skipped"] == 7 and data["verified"] is True


def test_the_command_exits_1_when_verification_fails_and_2_on_errors(tmp_path: Path) -> None:
    a, b = _config(tmp_path / "a"), _config(tmp_path / "b")
    expected = _fill(a, users=1, each=3)
    migrate(a, b)
    store = FaissStore(FaissStoreConfig(path=str(tmp_path / "b")))
    store.open(EmbedderIdentity("hashing", "hashing-64", 64))
    record = store.get(next(iter(expected["records"])))
    assert record is not None
    record.memory = "tampered"
    store.update(record, None)
    store.close()
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    args = ["migrate", "--from", str(tmp_path / "a.json"), "--to", str(tmp_path / "b.json")]
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code == 1, failed.output
    assert "verification failed" in failed.output and "differ" in failed.output
    (tmp_path / "c.json").write_text(json.dumps({**a, "embedder": {"provider": "nope"}}))
    error = CliRunner().invoke(
        main, ["migrate", "--from", str(tmp_path / "c.json"), "--to", args[4]]
    )
    assert error.exit_code == 2 and "error:" in error.output
    missing = CliRunner().invoke(main, ["migrate", "--from", "nope.json", "--to", args[4]])
    assert missing.exit_code == 2 and "no such file" in missing.output
