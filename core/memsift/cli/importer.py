"""``memsift import FILE.jsonl``: load many memories, each with its own scope ids and metadata.

Each non-blank line of the file is one JSON object, a :class:`memsift.bulk.MemoryItem`::

    {"text": "Prefers window seats", "user_id": "alice", "metadata": {"topic": "travel"}}
    {"text": "Allergic to peanuts", "user_id": "bob", "created_at": "2025-03-01T09:00:00Z"}

``--user-id`` / ``--agent-id`` / ``--run-id`` fill in the scope ids a line does not carry
(a line's own ids win). **The whole file is checked before anything is written**: a line that
is not JSON, not an object, or not a valid item (the checks of ``memsift add``) is reported
with its line number -- every bad line, up to :data:`SHOWN_PROBLEMS` -- and the command
exits 2 having written nothing. Then the memories are embedded and written in batches of
``--batch-size`` through :meth:`memsift.Memory.add_many` (one history and one store
transaction per batch); a failure there undoes the batches already written, so an import
that fails stored nothing and can simply be run again. A progress bar is shown when a person
is watching (the output is a terminal), none otherwise; a summary ends the run (``--json``
prints it as JSON).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import IO, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from memsift.bulk import DEFAULT_BATCH_SIZE, check_item
from memsift.cli.options import config_option, load_config, with_scope
from memsift.cli.render import console, fail
from memsift.errors import MemsiftError
from memsift.memory import Memory

#: How many bad lines an aborted import lists.
SHOWN_PROBLEMS = 20
_SCOPE_KEYS = ("user_id", "agent_id", "run_id")


def read_items(handle: IO[str], defaults: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The items of a JSONL file, and what is wrong with its bad lines (``line N: ...``)."""
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            problems.append(f"{where}: not JSON ({exc})")
            continue
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a JSON object, got {type(item).__name__}")
            continue
        for key, value in defaults.items():
            item.setdefault(key, value)
        try:
            check_item(item, where)
        except MemsiftError as exc:
            problems.append(str(exc))
            continue
        items.append(item)
    return items, problems


@click.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@with_scope
@click.option(
    "--batch-size",
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="memories embedded and written per batch (one transaction each)",
)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@config_option
def import_command(
    file: IO[str],
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    batch_size: int,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Load memories from a JSONL FILE (one item per line: text, scope ids, metadata).

    The whole file is checked first: a bad line is reported with its number and nothing is
    written. Use - to read standard input.
    """
    given = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
    defaults = {k: v for k, v in given.items() if v is not None}
    name = getattr(file, "name", "-")
    items, problems = read_items(file, defaults)
    if problems:
        _abort(name, problems)
        return
    start = time.perf_counter()
    try:
        with Memory.from_config(load_config(config_path)) as m:
            if console.is_terminal and not as_json and items:
                result = _with_progress(m, items, batch_size)
            else:
                result = m.add_many(items, batch_size=batch_size)
    except MemsiftError as exc:
        fail(exc)
        return
    seconds = time.perf_counter() - start
    summary = _summary(name, items, len(result["results"]), seconds, batch_size)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_summary(summary)


def _abort(name: str, problems: list[str]) -> None:
    console.print(
        Text.assemble(
            ("error:", "bold red"),
            f" {name} has {len(problems)} bad line(s); nothing was imported:",
        ),
        soft_wrap=True,
    )
    for problem in problems[:SHOWN_PROBLEMS]:
        text = problem.encode("utf-8", "backslashreplace").decode("utf-8")
        console.print(Text(f"  {text}"), soft_wrap=True)
    if len(problems) > SHOWN_PROBLEMS:
        console.print(Text(f"  ... and {len(problems) - SHOWN_PROBLEMS} more"))
    raise SystemExit(2)


def _with_progress(m: Memory, items: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("importing memories", total=len(items))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return m.add_many(items, batch_size=batch_size, progress=progress)


def _summary(
    name: str, items: list[dict[str, Any]], imported: int, seconds: float, batch_size: int
) -> dict[str, Any]:
    scopes = Counter(tuple(item.get(k) for k in _SCOPE_KEYS) for item in items)
    return {
        "file": name,
        "imported": imported,
        "scopes": len(scopes),
        "with_metadata": sum(1 for item in items if item.get("metadata")),
        "batches": -(-imported // batch_size),
        "seconds": round(seconds, 3),
        "per_second": round(imported / seconds, 1) if seconds > 0 else None,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    if not summary["imported"]:
        console.print(Text(f"{summary['file']} holds no memories; nothing was imported"))
        return
    table = Table(show_header=False, box=None)
    table.add_row("imported", Text(f"{summary['imported']} memories from {summary['file']}"))
    table.add_row("scopes", str(summary["scopes"]))
    table.add_row("with metadata", str(summary["with_metadata"]))
    table.add_row("batches", str(summary["batches"]))
    rate = f", {summary['per_second']} per s" if summary["per_second"] else ""
    table.add_row("time", f"{summary['seconds']:.1f} s{rate}")
    console.print(table)


__all__ = ["SHOWN_PROBLEMS", "import_command", "read_items"]
