"""``memsift add``, ``memsift search`` and ``memsift compare``: the memory API from the shell.

Every argument goes through the checks of ``Memory``, so a bad one ends as a clean error
message (exit status 2). ``memsift add`` stores each TEXT as one memory; with ``--infer`` the
TEXTs are user messages from which the config's ``llm`` extracts facts (one call,
``--prompt`` steering it), and the table lists what happened: ADD, and in reconcile mode
(config ``infer_mode``) UPDATE and DELETE. An LLM failure ends as a clean error too, with
nothing written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from memsift.cli.options import config_option, json_option, load_config, with_scope
from memsift.cli.render import console, fail, print_comparison, print_results
from memsift.errors import MemsiftError
from memsift.memory import Memory


@click.command()
@click.argument("texts", nargs=-1, required=True)
@with_scope
@click.option("--metadata", help="metadata as a JSON object")
@click.option(
    "--infer/--no-infer",
    default=False,
    show_default=True,
    help="extract facts from the TEXTs (user messages) with the config's llm",
)
@click.option("--prompt", help="with --infer: instructions that steer the extraction")
@click.option("--json", "as_json", is_flag=True, help="print the raw result as JSON")
@config_option
def add(
    texts: Sequence[str],
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    metadata: str | None,
    infer: bool,
    prompt: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Store each TEXT as one memory (in one batch); with --infer, the facts an LLM finds."""
    try:
        with Memory.from_config(load_config(config_path)) as m:
            result = m.add(
                list(texts),
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                metadata=json_option(metadata, "--metadata"),
                infer=infer,
                prompt=prompt,
            )
    except MemsiftError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print_events(result["results"])


_EVENT_STYLE = {"ADD": "green", "UPDATE": "yellow", "DELETE": "red"}


def print_events(results: Sequence[dict[str, Any]]) -> None:
    """The events of an add: event, id, memory (an UPDATE's previous text too), as plain
    text, never read as markup."""
    if not results:
        console.print("nothing to remember: no memory added, updated or deleted")
        return
    table = Table(title=f"{len(results)} event(s)", title_justify="left")
    table.add_column("event")
    table.add_column("id", overflow="fold", no_wrap=True)
    table.add_column("memory", overflow="fold", max_width=60)
    updates = any("previous_memory" in item for item in results)
    if updates:
        table.add_column("previous", overflow="fold", max_width=40)
    for item in results:
        event = str(item["event"])
        cells = [
            Text(event, style=_EVENT_STYLE.get(event, "")),
            Text(str(item["id"])),
            Text(str(item["memory"])),
        ]
        if updates:
            cells.append(Text(str(item.get("previous_memory") or "")))
        table.add_row(*cells)
    console.print(table)


def _filters(filter_json: str | None) -> dict[str, Any] | None:
    value = json_option(filter_json, "--filter")
    if value is not None and not isinstance(value, dict):
        raise click.BadParameter("--filter must be a JSON object")
    return value


@click.command()
@click.argument("query")
@with_scope
@click.option("--filter", "filter_json", help="filter as a JSON object (see the docs)")
@click.option("--top-k", default=10, show_default=True, help="how many hits")
@click.option("--rerank/--no-rerank", default=None, help="force reranking on or off")
@click.option("--reranker", help="reranker provider to use (overrides the config)")
@click.option("--threshold", type=float, help="drop hits whose score is below this")
@click.option("--json", "as_json", is_flag=True, help="print the raw response as JSON")
@config_option
def search(
    query: str,
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    filter_json: str | None,
    top_k: int,
    rerank: bool | None,
    reranker: str | None,
    threshold: float | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Search memories within a scope."""
    try:
        with Memory.from_config(load_config(config_path, reranker)) as m:
            response = m.search(
                query,
                filters=_filters(filter_json),
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                top_k=top_k,
                rerank=rerank,
                threshold=threshold,
            )
    except MemsiftError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps(response, indent=2, ensure_ascii=False))
        return
    print_results(response, title=f"search: {query}")


@click.command()
@click.argument("query")
@with_scope
@click.option("--filter", "filter_json", help="filter as a JSON object")
@click.option("--top-k", default=10, show_default=True, help="how many hits")
@click.option("--reranker", help="reranker provider (default: the config's, else bm25)")
@click.option("--json", "as_json", is_flag=True, help="print both responses as JSON")
@config_option
def compare(
    query: str,
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    filter_json: str | None,
    top_k: int,
    reranker: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """The same search with reranking off and on, side by side."""
    config = load_config(config_path, reranker)
    if "reranker" not in config:
        config["reranker"] = {"provider": "bm25", "config": {}}
    kwargs: dict[str, Any] = {
        "filters": _filters(filter_json),
        "user_id": user_id,
        "agent_id": agent_id,
        "run_id": run_id,
        "top_k": top_k,
    }
    try:
        with Memory.from_config(config) as m:
            off = m.search(query, rerank=False, **kwargs)
            on = m.search(query, rerank=True, **kwargs)
    except MemsiftError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps({"off": off, "on": on}, indent=2, ensure_ascii=False))
        return
    print_comparison(query, off, on)
