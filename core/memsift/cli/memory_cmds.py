"""``memsift add``, ``memsift search`` and ``memsift compare``: the memory API from the shell.

Every argument goes through the checks of ``Memory``, so a bad one ends as a clean error
message (exit status 2).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.markup import escape

from memsift.cli.options import config_option, json_option, load_config, with_scope
from memsift.cli.render import console, fail, print_comparison, print_results
from memsift.errors import MemsiftError
from memsift.memory import Memory


@click.command()
@click.argument("texts", nargs=-1, required=True)
@with_scope
@click.option("--metadata", help="metadata as a JSON object")
@config_option
def add(
    texts: Sequence[str],
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    metadata: str | None,
    config_path: str | None,
) -> None:
    """Store each TEXT as one memory (in one batch)."""
    try:
        with Memory.from_config(load_config(config_path)) as m:
            result = m.add(
                list(texts),
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                metadata=json_option(metadata, "--metadata"),
                infer=False,
            )
    except MemsiftError as exc:
        fail(exc)
        return
    for item in result["results"]:
        line = f"[green]{item['event']}[/] {item['id']}  {escape(item['memory'])}"
        console.print(line, highlight=False)


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
