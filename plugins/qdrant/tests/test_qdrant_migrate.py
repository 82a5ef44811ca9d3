"""``memsift migrate`` with the qdrant store: faiss -> qdrant -> faiss with every memory,
vector, timestamp and history event, and a killed migration finished by a rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from memsift import Memory
from memsift.cli import main
from memsift.migrate import migrate

USERS = 4


def _faiss(path: Path) -> dict[str, Any]:
    return {"vector_store": {"provider": "faiss", "config": {"path": str(path)}}}


def _qdrant(path: Path) -> dict[str, Any]:
    return {"vector_store": {"provider": "qdrant", "config": {"path": str(path)}}}


def _fill(config: dict[str, Any], each: int = 8) -> dict[str, Any]:
    with Memory.from_config(config) as m:
        ids: list[str] = []
        for u in range(USERS):
            out = m.add(
                [f"user {u} remembers fact {i}" for i in range(each)],
                user_id=f"u{u}",
                run_id="r1" if u == 1 else None,
                metadata={"u": u, "big": 2**62 + u, "tags": ["x", [u]], "f": 1.0, "none": None},
                infer=False,
            )
            ids.extend(r["id"] for r in out["results"])
        m.update(ids[0], "user 0 remembers something else", metadata={"edited": True})
        m.delete(ids[1])
    return _snapshot(config, ids)


def _snapshot(config: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    with Memory.from_config(config) as m:
        records: dict[str, Any] = {}
        for u in range(USERS):
            records.update((r["id"], r) for r in m.get_all(user_id=f"u{u}")["results"])
        histories = {
            i: [
                (e["event"], e["old_memory"], e["new_memory"], e["created_at"])
                for e in m.history(i)
            ]
            for i in ids
        }
        store = m.vector_store
        live = sorted(records)
        vectors = store.get_vectors(live)
        top = m.search("user 2 remembers fact 3", user_id="u2", top_k=3)["results"]
    return {
        "ids": ids,
        "records": records,
        "histories": histories,
        "vectors": dict(zip(live, vectors)),
        "top": [h["id"] for h in top],
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert b["records"] == a["records"]
    assert b["histories"] == a["histories"]
    assert b["top"] == a["top"]
    for memory_id, vector in a["vectors"].items():
        np.testing.assert_allclose(b["vectors"][memory_id], vector, atol=1e-6)


def test_faiss_to_qdrant_to_faiss_keeps_everything(tmp_path: Path, local_folder: Path) -> None:
    first, second, third = _faiss(tmp_path / "a"), _qdrant(local_folder), _faiss(tmp_path / "c")
    original = _fill(first)
    there = migrate(first, second, batch_size=5)
    assert there.verified, there.problems
    assert (there.total, there.copied) == (31, 31)
    assert there.history_events == 34  # 32 ADD, 1 UPDATE, 1 DELETE
    _same(original, _snapshot(second, original["ids"]))
    back = migrate(second, third, batch_size=7)
    assert back.verified, back.problems
    _same(original, _snapshot(third, original["ids"]))


def test_the_command_from_faiss_to_qdrant(tmp_path: Path, local_folder: Path) -> None:
    source, target = _faiss(tmp_path / "a"), _qdrant(local_folder)
    original = _fill(source, each=3)
    (tmp_path / "from.json").write_text(json.dumps(source))
    (tmp_path / "to.json").write_text(json.dumps(target))
    args = ["migrate", "--from", str(tmp_path / "from.json"), "--to", str(tmp_path / "to.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "11" in result.output
    _same(original, _snapshot(target, original["ids"]))


def test_a_killed_migration_to_qdrant_is_finished_by_the_next_run(
    tmp_path: Path, local_folder: Path
) -> None:
    source, target = _faiss(tmp_path / "a"), _qdrant(local_folder)
    original = _fill(source, each=15)
    (tmp_path / "from.json").write_text(json.dumps(source))
    (tmp_path / "to.json").write_text(json.dumps(target))
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
        [sys.executable, "-c", script, str(tmp_path / "from.json"), str(tmp_path / "to.json")],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            phase, done, _ = line.split()
            if phase == "copy" and int(done) >= 16:
                break
        child.send_signal(signal.SIGKILL)  # mid-way: the local mode's folder lock goes with it
    finally:
        child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    report = migrate(source, target)
    assert report.verified, report.problems
    assert 16 <= report.skipped < report.total == 59
    assert report.copied == report.total - report.skipped
    _same(original, _snapshot(target, original["ids"]))  # no event doubled
