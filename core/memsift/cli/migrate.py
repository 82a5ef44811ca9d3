"""``memsift migrate --from CONFIG --to CONFIG``: copy every memory from one store to another.

The copy itself is :func:`memsift.migrate.migrate`; this command reads the two config files,
shows a progress bar, and prints what was copied and what the verification found. It exits 0
when the copy is verified, 1 when the verification found a problem, 2 on an error (an
unreadable config, another embedder in the target, a store that fails).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from memsift.cli.options import load_config
from memsift.cli.render import console, fail
from memsift.errors import MemsiftError
from memsift.migrate import MigrationReport, migrate

#: How many scopes the summary lists (the rest are counted in one line).
SHOWN_SCOPES = 10


def _config(path: str, option: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint=option)
    return load_config(path)


@click.command("migrate")
@click.option("--from", "source", required=True, help="JSON config of the store to copy from")
@click.option("--to", "target", required=True, help="JSON config of the store to copy to")
@click.option(
    "--batch-size",
    default=256,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="memories copied per batch",
)
@click.option(
    "--sample",
    default=200,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="vectors (and histories) compared at the end",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def migrate_command(source: str, target: str, batch_size: int, sample: int, as_json: bool) -> None:
    """Copy every memory (vector, metadata, timestamps, history) from one store to another.

    Rerunning after an interruption skips what was copied; the copy is verified at the end.
    Both configs must use the same embedder (vectors are copied, not re-embedded).
    """
    src, dst = _config(source, "--from"), _config(target, "--to")
    try:
        if as_json:
            report = migrate(src, dst, batch_size=batch_size, sample=sample)
        else:
            report = _with_progress(src, dst, batch_size, sample)
    except MemsiftError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_report(report)
    sys.exit(0 if report.verified else 1)


def _with_progress(
    src: dict[str, Any], dst: dict[str, Any], batch_size: int, sample: int
) -> MigrationReport:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}
        labels = {"copy": "copying memories", "verify": "verifying"}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(labels.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        return migrate(src, dst, batch_size=batch_size, sample=sample, progress=progress)


def print_report(report: MigrationReport) -> None:
    """The summary: what was copied, the counts per scope, the vector sample, the verdict."""
    console.print(Text.assemble(("from ", "dim"), report.source), soft_wrap=True)
    console.print(Text.assemble(("to   ", "dim"), report.target), soft_wrap=True)
    summary = Table(show_header=False, box=None)
    summary.add_row("memories in the source", str(report.total))
    summary.add_row("copied now", str(report.copied))
    summary.add_row("already in the target", str(report.skipped))
    if report.vanished:
        summary.add_row("deleted from the source meanwhile", str(report.vanished))
    history = (
        str(report.history_events)
        if report.history_copied
        else "not copied: both configs use the same history database"
    )
    summary.add_row("history events copied", history)
    if report.min_cosine is not None:
        summary.add_row(
            "vectors compared", f"{report.sampled} (lowest cosine {report.min_cosine:.6f})"
        )
    console.print(summary)
    scopes = Table(title="memories per scope")
    for column in ("user_id", "agent_id", "run_id", "source", "target"):
        scopes.add_column(column, justify="right" if column in ("source", "target") else "left")
    items = sorted(report.scopes.items(), key=lambda kv: -kv[1][0])
    for scope, (a, b) in items[:SHOWN_SCOPES]:
        style = "red" if b < a else ""
        scopes.add_row(*(Text(s or "-") for s in scope), str(a), Text(str(b), style=style))
    if len(items) > SHOWN_SCOPES:
        rest = items[SHOWN_SCOPES:]
        scopes.add_row(
            Text(f"{len(rest)} more scopes"),
            "",
            "",
            str(sum(a for _, (a, _b) in rest)),
            str(sum(b for _, (_a, b) in rest)),
        )
    if items:
        console.print(scopes)
    if report.verified:
        console.print(Text("verified: every memory is in the target", style="green"))
        return
    console.print(Text("verification failed:", style="bold red"))
    for problem in report.problems:
        console.print(Text(f"  - {problem}"), soft_wrap=True)


__all__ = ["migrate_command", "print_report"]
