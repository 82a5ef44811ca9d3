"""The store that :mod:`memsift.drills.environment` damages, and its checks: the layout of
a drill store's files, what it holds (:class:`Expected`), whether an open store still holds
it (each memory found top-1 by its own text in its scope, its history intact), the warnings
logged, and one CLI search on it."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config, word
from memsift.memory import Memory

USERS = ("u0", "u1", "u2")
#: Memories per user in the built store (before its updates and deletes).
PER_USER = 8


@dataclass
class Layout:
    """The files of a drill store under ``root`` (the layout of ``drill_config``)."""

    root: Path

    @property
    def config(self) -> dict[str, Any]:
        return drill_config(self.root)

    @property
    def db(self) -> Path:
        return self.root / "store" / "memsift.sqlite3"

    @property
    def index(self) -> Path:
        return self.root / "store" / "memsift.faiss"

    @property
    def sidecar(self) -> Path:
        return self.root / "store" / "memsift.faiss.json"

    @property
    def history(self) -> Path:
        return self.root / "history.db"

    def truth(self) -> dict[str, str | None]:
        """The SHA-256 of the files a failed call must not change (None: absent)."""
        return {p.name: _sha(p) for p in (self.db, self.history)}


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@dataclass
class Expected:
    """What the store holds: each memory's (text, user) and its history events."""

    records: dict[str, tuple[str, str]] = field(default_factory=dict)
    history: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)


def build(layout: Layout, rng: random.Random) -> Expected:
    """Fill a store (batched and single adds, updates, a delete per user) and close it."""
    with Memory.from_config(layout.config) as m:
        for user in USERS:
            tag = word(rng.randrange(1 << 24))
            texts = [f"{tag} {word(i + 100)} note of {user}" for i in range(PER_USER - 1)]
            m.add(texts, user_id=user, infer=False)
            m.add(f"{tag} single entry of {user}", user_id=user, infer=False)
            ids = [r["id"] for r in m.get_all(user_id=user, top_k=100)["results"]]
            m.update(ids[0], f"{tag} revised {word(rng.randrange(1 << 20))} of {user}")
            m.delete(ids[1])
        return snapshot(m)


def snapshot(m: Memory) -> Expected:
    out = Expected()
    for user in USERS:
        for r in m.get_all(user_id=user, top_k=100_000)["results"]:
            out.records[r["id"]] = (r["memory"], user)
            out.history[r["id"]] = [(e["event"], e["new_memory"]) for e in m.history(r["id"])]
    return out


def missing_from(m: Memory, expected: Expected, *, search: bool = True) -> list[str]:
    """What of ``expected`` the open store ``m`` lacks or shows wrongly (empty: all there)."""
    problems: list[str] = []
    actual = snapshot(m)
    for memory_id, (text, user) in expected.records.items():
        if actual.records.get(memory_id) != (text, user):
            problems.append(f"memory {memory_id} ({text!r}) is {actual.records.get(memory_id)}")
        elif actual.history.get(memory_id) != expected.history[memory_id]:
            problems.append(f"history of {memory_id} is {actual.history.get(memory_id)}")
        elif search:
            hits = m.search(text, user_id=user, top_k=3, rerank=False)["results"]
            if not hits or hits[0]["id"] != memory_id:
                problems.append(f"memory {memory_id} ({text!r}) not found top-1")
    return problems


class Warnings(logging.Handler):
    """Collects the WARNING records of the ``memsift`` loggers while installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def warnings_logged() -> Iterator[Warnings]:
    handler = Warnings()
    logger = logging.getLogger("memsift")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def cli_run(layout: Layout, args: list[str]) -> tuple[int, str, str, BaseException | None]:
    """``memsift ARGS --json --config FILE`` through click's runner: the exit status, stdout,
    all output (stderr too), and the exception that escaped (None for a clean exit)."""
    import click
    from click.testing import CliRunner

    from memsift.cli.memory_cmds import add, search

    # The commands themselves, in a group of their own: the package memsift.cli holds
    # `memsift drill`, which runs this drill.
    main = click.Group("memsift", commands={"add": add, "search": search})
    with tempfile.TemporaryDirectory() as tmp:  # not beside the store: its disk may be full
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(layout.config))
        result = CliRunner().invoke(main, [*args, "--json", "--config", str(config_path)])
    error = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stdout, result.output, error


def cli_failed(code: int, output: str, error: BaseException | None) -> tuple[str, str] | None:
    """Why a CLI run did not end cleanly (exit 0, or 2 with an error message), as (failure
    kind, description), or None."""
    if error is not None or code not in (0, 2) or "Traceback" in output:
        return "raw error", f"ended {code} with {error!r}: {output[-300:]}"
    if code == 2 and "error:" not in output:
        return "cli", f"failed without an error message: {output[-300:]}"
    return None


def check_cli(layout: Layout, expected: Expected, label: str, report: DrillReport) -> int:
    """Run one CLI search on the (damaged) store; returns its exit status."""
    memory_id, (text, user) = next(iter(expected.records.items()))
    code, stdout, output, error = cli_run(
        layout, ["search", text, "--user-id", user, "--no-rerank"]
    )
    failed = cli_failed(code, output, error)
    if failed is not None:
        report.fail(f"{label}: the CLI {failed[1]}", failed[0])
    elif code == 0 and [h["id"] for h in json.loads(stdout)["results"]][:1] != [memory_id]:
        report.fail(f"{label}: the CLI search did not find {text!r} first", "silent loss")
    report.note("cli errors" if code == 2 else "cli searches")
    return code


def drive(m: Memory, expected: Expected, user: str) -> Expected:
    """Add, update, delete and read through ``m``; returns what it then holds."""
    new = m.add(f"fresh {word(len(expected.records) + 7)} memo of {user}", user_id=user)
    new_id = new["results"][0]["id"]
    old_id = next(i for i, (_, u) in expected.records.items() if u == user)
    m.update(new_id, f"fresh changed memo of {user}")
    m.delete(old_id)
    if [e["event"] for e in m.history(new_id)] != ["ADD", "UPDATE"]:
        raise AssertionError(f"history of {new_id}: {m.history(new_id)}")
    return snapshot(m)
