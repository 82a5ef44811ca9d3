"""The ``memsift`` command: plugins, add, search, compare, demo, bench."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from memsift.errors import MemsiftError

console = Console()
CONFIG_ENV = "MEMSIFT_CONFIG"


def _load_config(path: str | None, reranker: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise click.BadParameter(f"config {path} must hold a JSON object")
    if reranker:
        data = {**data, "reranker": {"provider": reranker, "config": {}}}
    return data


def _json_option(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be JSON: {exc}") from None


def _fail(exc: MemsiftError) -> None:
    """Print the error (as plain text: no markup, no unprintable characters) and exit 2.

    Every ``add``/``search``/``compare`` argument goes through the checks of ``Memory``, so a
    ``--user-id '*'`` or an argument that is not valid Unicode ends here as a clean message.
    """
    text = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
    # a Text is never parsed as markup; soft_wrap keeps the message on its own lines
    console.print(Text.assemble(("error:", "bold red"), " ", text), soft_wrap=True)
    sys.exit(2)


config_option = click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    type=click.Path(dir_okay=False),
    help=f"JSON config file (or ${CONFIG_ENV}); default: the embedded store in ~/.memsift",
)
scope_options = [
    click.option("--user-id", help="scope: user id"),
    click.option("--agent-id", help="scope: agent id"),
    click.option("--run-id", help="scope: run id"),
]


def with_scope(fn: Any) -> Any:
    for option in reversed(scope_options):
        fn = option(fn)
    return fn


@click.group()
@click.version_option(package_name="memsift")
def main() -> None:
    """memsift: long-term memory for AI agents with reranker-enhanced search."""


# --------------------------------------------------------------------------- plugins


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--all", "show_all", is_flag=True, help="include the built-in providers")
def plugins(as_json: bool, show_all: bool) -> None:
    """List installed plugins and the providers each registers.

    Shows plugins that failed to load (with the error), plugins blocked by
    MEMSIFT_LOAD_PLUGINS, and provider names registered by several plugins (conflicts).
    Plugin names, descriptions and errors are printed as plain text, never as markup.
    """
    from memsift.plugins import LOAD_PLUGINS_ENV, get_plugin_host
    from memsift.registry import conflict_message, get_registry

    try:
        registry = get_registry()
    except MemsiftError as exc:
        _fail(exc)
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
    if not rows:
        console.print("no external plugins installed (use --all to see the built-ins)")
    else:
        table = Table(title="memsift plugins")
        for col in ("plugin", "version", "status", "providers"):
            table.add_column(col)
        for row in rows:
            status = (
                Text("failed", style="red")
                if row["error"]
                else Text("blocked")
                if row["blocked"]
                else Text("built-in")
                if row["builtin"]
                else Text("loaded")
            )
            lines = []
            for p in row["providers"]:
                line = f"{p['kind']}: {p['name']}"
                if p["conflicts_with"]:
                    line += f" (conflict: also {', '.join(p['conflicts_with'])})"
                lines.append(line)
                if p["description"]:
                    lines.append(f"  {p['description']}")
            cell = str(row["error"]) if row["error"] else "\n".join(lines)
            table.add_row(Text(row["name"]), Text(row["version"] or ""), status, Text(cell))
        console.print(table)
    for message in conflicts.values():
        console.print(Text.assemble(("conflict: ", "yellow"), message), soft_wrap=True)
    for name in host.unknown_allowed:
        note = f"{LOAD_PLUGINS_ENV} names {name!r}, which is not an installed plugin distribution"
        console.print(Text.assemble(("warning: ", "yellow"), note), soft_wrap=True)


# --------------------------------------------------------------------------- add & search


@main.command()
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
    from memsift.memory import Memory

    try:
        with Memory.from_config(_load_config(config_path)) as m:
            result = m.add(
                list(texts),
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                metadata=_json_option(metadata, "--metadata"),
                infer=False,
            )
    except MemsiftError as exc:
        _fail(exc)
        return
    for item in result["results"]:
        line = f"[green]{item['event']}[/] {item['id']}  {escape(item['memory'])}"
        console.print(line, highlight=False)


def _filters(filter_json: str | None) -> dict[str, Any] | None:
    value = _json_option(filter_json, "--filter")
    if value is not None and not isinstance(value, dict):
        raise click.BadParameter("--filter must be a JSON object")
    return value


@main.command()
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
    from memsift.memory import Memory

    try:
        with Memory.from_config(_load_config(config_path, reranker)) as m:
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
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(response, indent=2, ensure_ascii=False))
        return
    print_results(response, title=f"search: {query}")


def print_results(response: Mapping[str, Any], *, title: str) -> None:
    """A table of hits with their scores, then the rerank block and timings.

    Memories, metadata and the title are printed as plain text, never read as markup.
    """
    table = Table(title=escape(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("memory", overflow="fold", max_width=60)
    table.add_column("metadata", overflow="fold", max_width=30)
    table.add_column("vector", justify="right")
    table.add_column("rerank", justify="right")
    table.add_column("score", justify="right")
    for rank, hit in enumerate(response["results"], 1):
        rr = hit.get("rerank_score")
        table.add_row(
            str(rank),
            escape(hit["memory"]),
            escape(json.dumps(hit["metadata"], ensure_ascii=False)) if hit["metadata"] else "",
            f"{hit['vector_score']:.3f}",
            "" if rr is None else f"{rr:.3f}",
            f"{hit['score']:.3f}",
        )
    console.print(table)
    console.print(_summary(response), highlight=False)


def _summary(response: Mapping[str, Any]) -> str:
    rr = response["rerank"]
    t = response["timings"]
    if rr["applied"]:
        what = f"reranked {rr['candidates']} candidates with {escape(str(rr['provider']))}"
        if rr.get("cache_hits"):
            what += f" ({rr['cache_hits']} from cache)"
    elif rr.get("error"):
        what = f"[yellow]rerank failed, vector order kept:[/] {escape(str(rr['error']))}"
    else:
        what = "vector order (no rerank)"
    return (
        f"  {what} · embed {t['embed_ms']:.1f} ms · vector {t['vector_ms']:.1f} ms · "
        f"rerank {t['rerank_ms']:.1f} ms · total {t['total_ms']:.1f} ms"
    )


@main.command()
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
    from memsift.memory import Memory

    config = _load_config(config_path, reranker)
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
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps({"off": off, "on": on}, indent=2, ensure_ascii=False))
        return
    print_comparison(query, off, on)


def print_comparison(query: str, off: Mapping[str, Any], on: Mapping[str, Any]) -> None:
    before = {hit["id"]: rank for rank, hit in enumerate(off["results"], 1)}
    table = Table(title=escape(f"compare: {query}"), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("vector order", overflow="fold", max_width=40)
    table.add_column("vector", justify="right")
    table.add_column("reranked", overflow="fold", max_width=40)
    table.add_column("rerank", justify="right")
    table.add_column("move", justify="right")
    rows = max(len(off["results"]), len(on["results"]))
    for i in range(rows):
        left = off["results"][i] if i < len(off["results"]) else None
        right = on["results"][i] if i < len(on["results"]) else None
        move = ""
        if right is not None:
            was = before.get(right["id"])
            if was is None:
                move = "[cyan]new[/]"
            elif was > i + 1:
                move = f"[green]↑{was - i - 1}[/]"
            elif was < i + 1:
                move = f"[red]↓{i + 1 - was}[/]"
            else:
                move = "="
        rr = right.get("rerank_score") if right else None
        table.add_row(
            str(i + 1),
            escape(left["memory"]) if left else "",
            f"{left['vector_score']:.3f}" if left else "",
            escape(right["memory"]) if right else "",
            "" if rr is None else f"{rr:.3f}",
            move,
        )
    console.print(table)
    console.print("  off:" + _summary(off), highlight=False)
    console.print("  on: " + _summary(on), highlight=False)


# --------------------------------------------------------------------------- eval


@main.command(name="eval")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--reranker", default="bm25", show_default=True, help="reranker provider")
@click.option("--reranker-config", help="the reranker's config as a JSON object")
@click.option("--k", "ks", multiple=True, type=int, help="cut-offs (default 1, 5, 10)")
@click.option("--max-queries", type=int, help="evaluate only the first N queries")
@click.option("--path", type=click.Path(file_okay=False), help="keep (and reuse) the store here")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write JSON here")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="write a PNG here")
@config_option
def eval_command(
    dataset: str,
    reranker: str,
    reranker_config: str | None,
    ks: Sequence[int],
    max_queries: int | None,
    path: str | None,
    json_path: str | None,
    plot_path: str | None,
    config_path: str | None,
) -> None:
    """Measure retrieval on DATASET (a BEIR folder or a LoCoMo-style .json), rerank off vs on."""
    import tempfile

    from rich.progress import Progress

    from memsift import evaluate as ev
    from memsift.memory import Memory

    cutoffs = tuple(sorted(set(ks))) or (1, 5, 10)
    if any(k < 1 for k in cutoffs):
        raise click.BadParameter("--k must be positive")
    rr_cfg = _json_option(reranker_config, "--reranker-config") or {}
    if not isinstance(rr_cfg, dict):
        raise click.BadParameter("--reranker-config must be a JSON object")
    try:
        data = ev.load_dataset(dataset)
        with tempfile.TemporaryDirectory(prefix="memsift-eval-") as tmp:
            store_dir = Path(path) if path else Path(tmp)
            config = _load_config(config_path)
            config["vector_store"] = {"provider": "faiss", "config": {"path": str(store_dir)}}
            config["reranker"] = {"provider": reranker, "config": rr_cfg}
            config["history_db_path"] = str(store_dir / "history.db")
            with Memory.from_config(config) as m, Progress(console=console) as progress:
                count = getattr(m.vector_store, "count", None)
                if count is None or count() != len(data.documents):
                    m.reset()
                    ev.fill_store(m, data, progress=progress)
                runs = ev.evaluate(m, data, ks=cutoffs, max_queries=max_queries, progress=progress)
    except MemsiftError as exc:
        _fail(exc)
        return
    print_eval(data, runs, reranker)
    if json_path:
        out = {
            "dataset": data.name,
            "kind": data.kind,
            "reranker": reranker,
            "queries": len(data.queries[:max_queries] if max_queries else data.queries),
            "runs": {
                label: {
                    "metrics": r.values,
                    "per_category": r.per_category,
                    "latency_ms": r.latency_ms,
                    "rerank_failures": r.rerank_failures,
                }
                for label, r in runs.items()
            },
        }
        Path(json_path).write_text(json.dumps(out, indent=2))
    if plot_path:
        try:
            ev.plot(runs, plot_path, f"{data.name}: {reranker} rerank off vs on")
        except MemsiftError as exc:
            _fail(exc)


def print_eval(data: Any, runs: Mapping[str, Any], reranker: str) -> None:
    off, on = runs["off"], runs["on"]
    title = f"{data.name} ({data.kind}, {len(data.documents)} memories): {reranker}"
    table = Table(title=escape(title))
    for col in ("metric", "rerank off", "rerank on", "change"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for name, before in off.values.items():
        after = on.values[name]
        change = f"{(after - before) / before * 100:+.1f}%" if before else ""
        table.add_row(name, f"{before:.4f}", f"{after:.4f}", change)
    for pct in ("p50", "p95"):
        table.add_row(
            f"latency {pct} (ms)", f"{off.latency_ms[pct]:.1f}", f"{on.latency_ms[pct]:.1f}", ""
        )
    console.print(table)
    if on.rerank_failures:
        console.print(f"[yellow]{on.rerank_failures} searches fell back to vector order[/]")
    if off.per_category:
        cats = Table(title="per category")
        metric = "recall@5" if "recall@5" in off.values else next(iter(off.values))
        for col in ("category", "queries", f"{metric} off", f"{metric} on"):
            cats.add_column(col)
        for cat, vals in sorted(off.per_category.items()):
            cats.add_row(
                escape(cat),
                str(int(vals["queries"])),
                f"{vals[metric]:.4f}",
                f"{on.per_category[cat][metric]:.4f}",
            )
        console.print(cats)


# --------------------------------------------------------------------------- demo & bench


@main.command()
@click.option("--path", type=click.Path(file_okay=False), help="keep the demo store here")
def demo(path: str | None) -> None:
    """Build a small store of example memories and run scoped, filtered, reranked searches."""
    from memsift.demo import run_demo

    try:
        run_demo(path)
    except MemsiftError as exc:
        _fail(exc)


@main.command()
@click.option("--quick", is_flag=True, help="smaller sizes, for a fast look")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write JSON here")
@click.option(
    "--only",
    multiple=True,
    help="run only these figures (add, search, scale, open, overhead, rerank, local)",
)
def bench(quick: bool, json_path: str | None, only: Sequence[str]) -> None:
    """Measure the figures of the performance targets (DESIGN.md section 7)."""
    from memsift.bench import run_bench

    run_bench(quick=quick, json_path=json_path, only=set(only))


if __name__ == "__main__":  # pragma: no cover
    main()
