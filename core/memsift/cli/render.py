"""How the ``memsift`` commands print: tables of plugins, hits, comparisons and evaluations,
and the error printer. Text that comes from users or plugins (memories, metadata, names,
errors) is printed as plain text, never read as markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from memsift.errors import MemsiftError

console = Console()


def fail(exc: MemsiftError) -> None:
    """Print the error (as plain text: no markup, no unprintable characters) and exit 2.

    Every ``add``/``search``/``compare`` argument goes through the checks of ``Memory``, so a
    ``--user-id '*'`` or an argument that is not valid Unicode ends here as a clean message.
    """
    text = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
    # a Text is never parsed as markup; soft_wrap keeps the message on its own lines
    console.print(Text.assemble(("error:", "bold red"), " ", text), soft_wrap=True)
    sys.exit(2)


def print_plugins(rows: Sequence[Mapping[str, Any]]) -> None:
    """The ``memsift plugins`` table: each plugin, its version, status and providers.

    Plugin names, descriptions and errors are printed as plain text, never as markup.
    """
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


def _short(metric: str) -> str:
    return metric.replace("recall@", "R@").replace("ndcg@", "nDCG@").replace("mrr@", "MRR@")


def print_sweep(
    data: Any, sweep: Any, reference: Any, metrics: Sequence[str], reranker: str
) -> None:
    """One sweep's table: the vector order, then each setting, with the change of the
    middle headline metric against the vector order and the search latency (p50)."""
    title = f"{data.name} ({data.kind}, {len(data.documents)} memories), {reranker}: {sweep.text}"
    table = Table(title=escape(title))
    table.add_column("setting", overflow="fold", min_width=28, ratio=1)
    for name in metrics:
        table.add_column(_short(name), justify="right", no_wrap=True)
    key = metrics[len(metrics) // 2] if metrics else None
    table.add_column(f"{_short(key)} Δ" if key else "Δ", justify="right", no_wrap=True)
    table.add_column("p50 ms", justify="right", no_wrap=True)

    def row(label: str, run: Any) -> None:
        change = ""
        if key and reference.values.get(key):
            base = reference.values[key]
            change = f"{(run.values[key] - base) / base * 100:+.1f}%"
        table.add_row(
            escape(label),
            *(f"{run.values[n]:.3f}" for n in metrics),
            change,
            f"{run.latency_ms['p50']:.1f}",
        )

    row("vector order (reference)", reference)
    for r in sweep.rows:
        row(r.name(), r.metrics)
    console.print(table)
