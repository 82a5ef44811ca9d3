"""``memsift eval --sweep``: many settings of the search and the reranker measured in one run,
on one store.

A sweep is ``KEY=V1,V2,... [KEY=...]``: the settings are every combination of the listed
values (the others stay as configured). A key names an option of

- the search: ``rerank`` (``off``/``on``: whether the reranker runs), ``hybrid``
  (``auto``/``on``/``off``), ``fusion`` (``interleave``/``rrf``), ``keyword_top_k``,
  ``rrf_k`` -- the config's ``search`` section (:class:`~memsift.config.SearchConfig`);
- the reranker: any key of its config (``weight``, ``pool`` -- an alias of ``top_k``, the
  candidate pool --, ``statistics``, ``k1``, ...);
- the store: a key of the ``faiss`` store's config (``keyword_stemming``,
  ``keyword_stopwords``, ``keyword_language``, ...); the store is reopened with it, which
  rebuilds its keyword index from the stored texts (nothing is embedded again).

``search.``, ``reranker.`` and ``store.`` prefixes make a key explicit. Values are read as
JSON where they parse (``0.5``, ``true``, ``null``), as text otherwise; ``on``/``off`` are
``true``/``false``. Every sweep's table starts with the vector order (no reranking, no hybrid
stage) as its reference, and ``--plot`` draws each sweep's table.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memsift.config import SearchConfig, resolve_section
from memsift.errors import InvalidInputError
from memsift.memory import Memory
from memsift.search import RerankStage

SEARCH_KEYS = ("rerank", *SearchConfig.model_fields)
ALIASES = {"pool": "top_k"}


@dataclass(frozen=True)
class Axis:
    """One swept key: where it goes and its values."""

    section: str  # "search", "reranker" or "store"
    key: str
    values: tuple[Any, ...]

    @property
    def label(self) -> str:
        return "pool" if self.section == "reranker" and self.key == "top_k" else self.key


@dataclass
class Row:
    """One measured setting of a sweep."""

    setting: dict[str, Any]
    metrics: Any  # RunMetrics

    def name(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.setting.items()) or "as configured"


@dataclass
class Sweep:
    text: str
    axes: list[Axis]
    rows: list[Row] = field(default_factory=list)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("on", "off"):
        return low == "on"
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def parse_sweep(
    text: str, reranker_model: type[BaseModel] | None, store_model: type[BaseModel]
) -> Sweep:
    """A ``--sweep`` value as its axes; InvalidInputError naming a bad or unknown key."""
    axes: list[Axis] = []
    for part in text.split():
        key, sep, values = part.partition("=")
        if not sep or not key or not values:
            raise InvalidInputError(f"--sweep {text!r}: expected KEY=V1,V2,... , got {part!r}")
        section, key = _resolve(key, reranker_model, store_model)
        if any(a.section == section and a.key == key for a in axes):
            raise InvalidInputError(f"--sweep {text!r}: {key!r} is given twice")
        axes.append(Axis(section, key, tuple(parse_value(v) for v in values.split(","))))
    if not axes:
        raise InvalidInputError("--sweep needs at least one KEY=V1,V2,...")
    return Sweep(text=text, axes=axes)


def _resolve(
    key: str, reranker_model: type[BaseModel] | None, store_model: type[BaseModel]
) -> tuple[str, str]:
    prefix, dot, rest = key.partition(".")
    sections: dict[str, Sequence[str]] = {
        "search": SEARCH_KEYS,
        "reranker": list(reranker_model.model_fields) if reranker_model else [],
        "store": [k for k in store_model.model_fields if k.startswith("keyword_")],
    }
    if dot:
        if prefix not in sections:
            raise InvalidInputError(f"unknown --sweep section {prefix!r}: search, reranker, store")
        name = ALIASES.get(rest, rest) if prefix == "reranker" else rest
        if name not in sections[prefix]:
            valid = ", ".join(sections[prefix])
            raise InvalidInputError(f"unknown --sweep key {key!r}; {prefix} keys: {valid}")
        return prefix, name
    found = [(s, ALIASES.get(key, key) if s == "reranker" else key) for s in sections]
    found = [(s, k) for s, k in found if k in sections[s]]
    if len(found) == 1:
        return found[0]
    if not found:
        valid = "; ".join(f"{s}: {', '.join(keys)}" for s, keys in sections.items() if keys)
        raise InvalidInputError(f"unknown --sweep key {key!r}; valid keys ({valid})")
    where = " or ".join(f"{s}.{k}" for s, k in found)
    raise InvalidInputError(f"--sweep key {key!r} is ambiguous: write {where}")


def settings(sweep: Sweep) -> list[dict[Axis, Any]]:
    """Every combination of the sweep's values, in order."""
    grid = itertools.product(*(a.values for a in sweep.axes))
    return [dict(zip(sweep.axes, combo)) for combo in grid]


# --------------------------------------------------------------------------- running


@dataclass
class Bench:
    """What a sweep changes on the memory between settings, and how to undo it."""

    open_memory: Callable[[Mapping[str, Any]], Memory]
    reranker: str
    reranker_config: dict[str, Any]
    memory: Memory | None = None
    store_overrides: dict[str, Any] = field(default_factory=dict)

    def apply(self, setting: Mapping[Axis, Any]) -> tuple[Memory, bool]:
        """The memory configured for ``setting``, and whether that setting reranks."""
        store = {a.key: v for a, v in setting.items() if a.section == "store"}
        if self.memory is None or store != self.store_overrides:
            if self.memory is not None:
                self.memory.close()
            self.memory = self.open_memory(store)
            self.store_overrides = store
        m = self.memory
        rr = {a.key: v for a, v in setting.items() if a.section == "reranker"}
        section = resolve_section(
            "reranker", {"provider": self.reranker, "config": {**self.reranker_config, **rr}}
        )
        spec = m.config.spec("reranker")
        assert spec is not None
        old = m.reranker_stage
        m.reranker_stage = RerankStage.build(self.reranker, spec.build(section.config))
        if old is not None:
            old.close()
        search = {a.key: v for a, v in setting.items() if a.section == "search"}
        rerank = bool(search.pop("rerank", True))
        try:
            m.search_options = SearchConfig(**{**m.config.search.model_dump(), **search})
        except ValueError as exc:
            raise InvalidInputError(f"--sweep: {exc}") from None
        return m, rerank

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory = None


def run_sweeps(
    bench: Bench,
    sweeps: Sequence[Sweep],
    measure: Callable[[Memory, bool], Any],
) -> Any:
    """Measure the vector-order reference, then every setting of every sweep."""
    memory, _ = bench.apply({})
    memory.search_options = memory.config.search.model_copy(update={"hybrid": False})
    reference = measure(memory, False)
    for sweep in sweeps:
        for setting in settings(sweep):
            memory, rerank = bench.apply(setting)
            named = {a.label: v for a, v in setting.items()}
            sweep.rows.append(Row(setting=named, metrics=measure(memory, rerank)))
    return reference


# --------------------------------------------------------------------------- output


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend; InvalidInputError saying how to install it.

    ``memsift eval --plot`` calls it before any work starts."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidInputError(
            "--plot needs matplotlib: pip install 'memsift[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def headline_metrics(kind: str, names: Sequence[str]) -> list[str]:
    """The metrics a sweep table shows: nDCG@k for BEIR, recall@k for conversations."""
    wanted = "ndcg@" if kind == "beir" else "recall@"
    shown = [n for n in names if n.startswith(wanted)]
    return shown or list(names)


def sweep_json(sweep: Sweep) -> dict[str, Any]:
    return {
        "sweep": sweep.text,
        "rows": [
            {
                "setting": {k: v for k, v in r.setting.items()},
                "metrics": r.metrics.values,
                "latency_ms": r.metrics.latency_ms,
                "rerank_failures": r.metrics.rerank_failures,
            }
            for r in sweep.rows
        ],
    }


def plot_path(base: str, index: int, count: int) -> str:
    if count == 1:
        return base
    p = Path(base)
    return str(p.with_name(f"{p.stem}-{index + 1}{p.suffix or '.png'}"))


def plot_sweep(sweep: Sweep, reference: Any, metrics: Sequence[str], path: str, title: str) -> None:
    """Grouped bars: one group per setting (the vector order first), one bar per metric."""
    plt = require_matplotlib()
    labels = ["vector order", *(r.name() for r in sweep.rows)]
    runs = [reference, *(r.metrics for r in sweep.rows)]
    width = 0.8 / max(1, len(metrics))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 4.5))
    for j, name in enumerate(metrics):
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, [run.values[name] for run in runs], width, label=name)
    ax.set_xticks(list(range(len(labels))), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "Axis",
    "Bench",
    "Row",
    "Sweep",
    "headline_metrics",
    "parse_sweep",
    "parse_value",
    "plot_path",
    "plot_sweep",
    "require_matplotlib",
    "run_sweeps",
    "settings",
    "sweep_json",
]
