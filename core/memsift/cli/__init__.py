"""The ``memsift`` command: the click group :func:`main` and where each command lives.

- :mod:`memsift.cli.plugins`: ``memsift plugins``
- :mod:`memsift.cli.memory_cmds`: ``memsift add``, ``search``, ``compare``
- :mod:`memsift.cli.eval`: ``memsift eval`` (datasets, metrics)
- :mod:`memsift.cli.demo`: ``memsift demo``
- :mod:`memsift.cli.bench`: ``memsift bench`` (and the plugins' benchmarks)
- :mod:`memsift.cli.migrate`: ``memsift migrate`` (copy every memory to another store)
- :mod:`memsift.cli.importer`: ``memsift import`` (load memories from a JSONL file)
- :mod:`memsift.cli.drill`: ``memsift drill`` (the reliability drills)
- :mod:`memsift.cli.options` and :mod:`memsift.cli.render`: the shared options, and how
  tables and errors are printed.

A new command is a ``click.command`` in its own module, added to :func:`main` below.
"""

from __future__ import annotations

import sys

import click

from memsift.cli import bench, demo, drill, importer, memory_cmds, migrate, plugins
from memsift.cli import eval as eval_cmd
from memsift.kit.local import show_load_progress


@click.group()
@click.version_option(package_name="memsift")
def main() -> None:
    """memsift: long-term memory for AI agents with reranker-enhanced search."""
    # Model loads are quiet in the library; here a person may be watching.
    show_load_progress(sys.stderr.isatty())


for _command in (
    plugins.plugins,
    memory_cmds.add,
    memory_cmds.search,
    memory_cmds.compare,
    eval_cmd.eval_command,
    demo.demo,
    bench.bench,
    migrate.migrate_command,
    importer.import_command,
    drill.drill,
):
    main.add_command(_command)


__all__ = ["main"]
