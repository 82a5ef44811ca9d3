"""``memsift plugins``: the installed plugins, their providers, and what failed or clashes."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.text import Text

from memsift.cli.render import console, fail, print_plugins
from memsift.errors import MemsiftError
from memsift.plugins import LOAD_PLUGINS_ENV, get_plugin_host
from memsift.registry import conflict_message, get_registry


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--all", "show_all", is_flag=True, help="include the built-in providers")
def plugins(as_json: bool, show_all: bool) -> None:
    """List installed plugins and the providers each registers.

    Shows plugins that failed to load (with the error), plugins blocked by
    MEMSIFT_LOAD_PLUGINS, and provider names registered by several plugins (conflicts).
    Plugin names, descriptions and errors are printed as plain text, never as markup.
    """
    try:
        registry = get_registry()
    except MemsiftError as exc:
        fail(exc)
        return
    host = get_plugin_host()
    rows: list[dict[str, Any]] = []
    conflicts: dict[tuple[str, str], str] = {}
    for info in host.infos.values():
        if info.builtin and not show_all:
            continue
        providers = []
        for spec in registry.provided_by(info.name):
            rivals = registry.rivals(spec)
            if rivals:
                clash = registry.conflicts[spec.kind][spec.name]
                conflicts[spec.kind, spec.name] = conflict_message(spec.kind, spec.name, clash)
            providers.append(
                {
                    "kind": spec.kind,
                    "name": spec.name,
                    "description": spec.description,
                    "conflicts_with": [r.plugin for r in rivals],
                }
            )
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "builtin": info.builtin,
                "entry_point": info.entry_point,
                "loaded": info.loaded,
                "blocked": info.blocked,
                "error": info.error,
                "providers": providers,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_plugins(rows)
    for message in conflicts.values():
        console.print(Text.assemble(("conflict: ", "yellow"), message), soft_wrap=True)
    for name in host.unknown_allowed:
        note = f"{LOAD_PLUGINS_ENV} names {name!r}, which is not an installed plugin distribution"
        console.print(Text.assemble(("warning: ", "yellow"), note), soft_wrap=True)
