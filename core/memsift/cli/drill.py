"""``memsift drill``: the reliability drills of the test suite, run as long as asked.

The drills themselves are :mod:`memsift.drills`; this command runs those chosen (all by
default) with the sizes given, and prints one row per drill: attempts, failures, acknowledged
writes lost, and what the failures were. Each drill works in a temporary directory (the
configured store is never touched). It exits 0 when every drill held its invariants, 1 when
one did not.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click
from rich.table import Table
from rich.text import Text

from memsift.cli.render import console
from memsift.drills import DRILLS, DrillReport, Sizes
from memsift.errors import MemsiftError
from memsift.registry import get_vector_store

#: How many failure descriptions the command prints under the table.
SHOWN_PROBLEMS = 10


def print_drills(reports: Sequence[DrillReport]) -> None:
    """The table of drills, then the first failures (as plain text)."""
    table = Table(title="reliability drills")
    table.add_column("drill")
    for column in ("attempts", "failures", "lost"):
        table.add_column(column, justify="right")
    table.add_column("what failed")
    for r in reports:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.kinds.items())) or "-"
        style = "green" if r.ok else "red"
        table.add_row(
            Text(r.name, style=style),
            str(r.attempts),
            str(r.failure_count),
            str(r.lost),
            Text(kinds),
        )
    console.print(table)
    shown = [(r.name, p) for r in reports for p in r.problems][:SHOWN_PROBLEMS]
    for name, problem in shown:
        console.print(Text(f"{name}: {problem}"), soft_wrap=True)


@click.command("drill")
@click.option(
    "--only",
    "names",
    multiple=True,
    type=click.Choice(sorted(DRILLS)),
    help="run only this drill (repeatable; default: all)",
)
@click.option("--kills", default=Sizes.kills, show_default=True, help="crash drill: kills")
@click.option("--cases", default=Sizes.cases, show_default=True, help="hostile input: cases")
@click.option(
    "--ops",
    default=Sizes.ops,
    show_default=True,
    help="tenant isolation and concurrency: calls per drill",
)
@click.option("--seed", default=Sizes.seed, show_default=True, help="replay a run")
@click.option(
    "--store",
    default=Sizes.store,
    show_default=True,
    help="concurrency drills: the vector store provider (e.g. qdrant, its local mode)",
)
def drill(names: Sequence[str], kills: int, cases: int, ops: int, seed: int, store: str) -> None:
    """Run the reliability drills (crash at any point, a killed migrate, hostile input,
    tenant isolation, concurrency, damaged files and hostile environments) and print
    attempts, failures and anything lost."""
    for value, option in ((kills, "--kills"), (cases, "--cases"), (ops, "--ops")):
        if value < 1:
            raise click.BadParameter("must be at least 1", param_hint=option)
    try:
        get_vector_store(store)
    except MemsiftError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None
    sizes = Sizes(kills=kills, cases=cases, ops=ops, seed=seed, store=store)
    reports: list[DrillReport] = []
    # The drills provoke the warnings they check for (a rebuilt index, a full disk): keep
    # them off the terminal, where Python's last-resort handler would print them.
    quiet = logging.NullHandler()
    logging.getLogger("memsift").addHandler(quiet)
    try:
        for name in names or sorted(DRILLS):
            with console.status(f"drill: {name}"):
                reports.extend(DRILLS[name](sizes))
    finally:
        logging.getLogger("memsift").removeHandler(quiet)
    print_drills(reports)
    sys.exit(0 if all(r.ok for r in reports) else 1)


__all__ = ["drill", "print_drills"]
