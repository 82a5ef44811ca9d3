"""The migration drill: SIGKILL ``migrate`` mid-copy, check the target, let a rerun finish.

A source store is filled (memories of several users, some updated, so histories have more
than one event). Each round copies it to a fresh target in a child process running
:func:`memsift.migrate.migrate` in small batches, and kills the child after a random number
of batches (sometimes twice, the second run continuing the first's target). After each kill:

- the target opens, and holds only faithful copies of source memories (text, metadata,
  scope, timestamps);
- the target's vector index agrees with its SQLite (each memory found top-1 by its own text
  in its scope);

and at the end of the round a migration run to completion verifies, copies what was missing,
and leaves every source memory in the target with the source's history.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from memsift.drills.crash import FIELDS
from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config, word
from memsift.memory import Memory

CHILD = textwrap.dedent(
    """
    import json, sys
    from memsift.migrate import migrate

    def progress(phase, done, total):
        print(json.dumps([phase, done, total]), flush=True)

    a, b = (json.load(open(p)) for p in sys.argv[1:3])
    migrate(a, b, batch_size=3, progress=progress)
    print(json.dumps(["finished", 0, 0]), flush=True)
    """
)
USERS = ("ma", "mb", "mc")


def _fill(config: dict[str, Any], each: int) -> None:
    with Memory.from_config(config) as m:
        for user in USERS:
            texts = [f"copied {word(i)} {word(i * 13 + 5)} of {user}" for i in range(each)]
            out = m.add(texts, user_id=user, metadata={"user": user, "n": each})
            for r in out["results"][::4]:
                m.update(r["id"], r["memory"] + " again", metadata={"updated": True})


def _everything(m: Memory) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for u in USERS for r in m.get_all(user_id=u, top_k=100_000)["results"]}


def _events(m: Memory, memory_id: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "id"} for e in m.history(memory_id)]


def _kill_once(paths: tuple[Path, Path], rng: random.Random, report: DrillReport) -> None:
    after = rng.randint(1, 12)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, paths)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    copies = 0
    for line in child.stdout:
        phase = json.loads(line)[0]
        copies += phase == "copy"
        if copies >= after or phase == "finished":
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stdout.close()
    report.attempts += 1
    report.note("killed mid-copy" if child.returncode == -signal.SIGKILL else "finished first")


def _check_target(source: Memory, target_config: dict[str, Any], report: DrillReport) -> None:
    try:
        target = Memory.from_config(target_config)
    except Exception as exc:
        report.fail(f"the target did not open: {type(exc).__name__}: {exc}", "target")
        return
    with target:
        originals = _everything(source)
        for memory_id, rec in _everything(target).items():
            original = originals.get(memory_id)
            if original is None or any(rec.get(f) != original.get(f) for f in FIELDS):
                report.fail(f"target memory {memory_id} is not a copy: {rec}", "bad copy")
            if _events(target, memory_id) != _events(source, memory_id):
                report.fail(f"target memory {memory_id} lacks its history", "history")
            hits = target.search(rec["memory"], user_id=rec["user_id"], top_k=1, rerank=False)
            if [h["id"] for h in hits["results"]] != [memory_id]:
                report.fail(f"target memory {memory_id} not found top-1", "index")


def migration_drill(rounds: int = 3, *, each: int = 30, seed: int = 0) -> DrillReport:
    """``rounds`` rounds (one or two kills each) over a source of ``each`` memories a user."""
    from memsift.migrate import migrate

    report = DrillReport("killed migrate")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="memsift-migrate-") as tmp:
        root = Path(tmp)
        source_config = drill_config(root / "source")
        _fill(source_config, each)
        source_path = root / "source.json"
        source_path.write_text(json.dumps(source_config))
        with Memory.from_config(source_config) as source:
            for n in range(rounds):
                target_config = drill_config(root / f"target{n}")
                target_path = root / f"target{n}.json"
                target_path.write_text(json.dumps(target_config))
                for _ in range(rng.choice((1, 2))):
                    _kill_once((source_path, target_path), rng, report)
                    _check_target(source, target_config, report)
                final = migrate(source_config, target_config, batch_size=50)
                if not final.verified:
                    report.fail(f"the finishing run found: {final.problems[:3]}", "not verified")
                with Memory.from_config(target_config) as target:
                    copied, originals = _everything(target), _everything(source)
                    if set(copied) != set(originals):
                        report.lost += len(set(originals) - set(copied))
                        report.fail("the finishing run left memories out", "incomplete")
                    for memory_id in originals:
                        if _events(target, memory_id) != _events(source, memory_id):
                            report.fail(f"history of {memory_id} differs", "history")
    return report
