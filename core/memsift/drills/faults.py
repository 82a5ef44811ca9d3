"""The provider fault drill: every hosted target x every fault, through a fault-injecting proxy.

A :class:`FaultProxy` on 127.0.0.1 stands in front of each target's fake API: it forwards
every request to the fake unless a fault is scripted, and then answers the fault itself, so
every fault reaches every target in the same way. The faults (:data:`FAULTS`): a 429 with a
short ``Retry-After`` (it fits the retry budget), with a long one, and without one; a 500 and
a 503; a hang past the configured timeout; a connection reset (RST, ``SO_LINGER`` 0); a 200
with truncated JSON; an HTML 502 page (as a proxy sends); and the target's own wrong answers,
the fake's real answer mutated by the target's ``mutate`` (a reranker: a wrong result count,
an out-of-range or repeated index; an embedder: a vector short, a wrong dimension; an LLM: an
unparseable or wrongly shaped answer). Each is run transient (the next request only, then
healthy) and persistent (every request), where the two differ.

The invariants, per cell (target x fault x variant) and round:

- a **reranker** under a fault drops no query: every search returns the results in vector
  order, with ``rerank.applied`` false and ``rerank.error`` naming the reason; a transient
  fault the retries can absorb is recovered (``applied`` true); the search takes at most the
  configured ``timeout`` plus ``slack`` seconds; with ``on_error: "raise"`` the search raises
  :class:`~memsift.errors.RerankError`;
- an **LLM** (``add(..., infer=True)``) or **embedder** (``add``, and a search whose query
  embedding fails) under a fault raises a documented :class:`~memsift.errors.MemsiftError`
  subclass and writes nothing (the count, ``get_all`` and each memory's history are what they
  were), or, for a recoverable transient fault, succeeds; bounded by the retries' timeouts;
- after every cell the target is healthy again: a search reranks, an add writes;
- every scripted fault was delivered (the proxy counted it).

:func:`fault_matrix` returns one :class:`~memsift.drills.report.DrillReport` per target:
``attempts`` = cells x rounds, failures by kind, and ``notes``: ``delivered:<cell>`` (faults
the proxy answered), ``max_ms:<cell>`` (the slowest call of the cell, in milliseconds),
``raised:<error class>`` and ``search_raised:<error class>`` (what the failed adds and
searches of an LLM or embedder raised), ``stray_requests`` (requests that came while the
proxy settled before a cell) and ``cells``.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from memsift.drills.fault_proxy import Fault, FaultProxy
from memsift.drills.report import DrillReport
from memsift.drills.writer import word
from memsift.errors import MemsiftError, RerankError
from memsift.memory import Memory

Kind = Literal["reranker", "llm", "embedder"]
#: A fault kind and the fake's real answer (parsed JSON) -> the wrong answer to send.
Mutate = Callable[[str, Any], Any]
#: (folder, base URL, options) -> the config of a Memory that uses the target.
ConfigFactory = Callable[[Path, str, dict[str, Any]], dict[str, Any]]

USER = "drill"
MEMORIES = (
    "Alice moved to Lisbon in March and works as a nurse.",
    "Alice lives in a flat near the river in Lisbon.",
    "Alice grew up in Porto and visits her parents there.",
    "Alice prefers green tea over coffee in the morning.",
    "Alice's quarterly report is due on Friday.",
)
QUERIES = ("where does alice live", "what does alice drink", "when is the report due")


@dataclass(frozen=True)
class FaultTarget:
    """A hosted provider under test: ``serve()`` runs its fake and yields its base URL;
    ``memory_config`` builds a Memory config against a base URL (the proxy's) with the
    options ``timeout``, ``max_retries`` and, for a reranker, ``on_error``; ``mutations``
    names the wrong answers ``mutate`` makes of the fake's real one."""

    name: str
    kind: Kind
    serve: Callable[[], AbstractContextManager[str]]
    memory_config: ConfigFactory
    mutate: Mutate
    mutations: tuple[str, ...]
    #: faults the provider does not retry by its documented design (e.g. a 500 from a
    #: server whose 500s are not transient): their transient variant fails over, and the
    #: next call recovers
    no_retry: frozenset[str] = frozenset()
    #: seconds without a request the proxy waits for before each cell: for a provider whose
    #: failed call leaves requests running (and retrying) in the background, which would
    #: take the next cell's transient fault
    settle: float = 0.0


@dataclass(frozen=True)
class FaultSpec:
    """One fault: the proxy's :class:`Fault`, the variants it runs in, whether a transient
    one must be recovered by the retries, and the words the reason must contain (a regex)."""

    fault: Fault
    variants: tuple[str, ...] = ("transient", "persistent")
    recoverable: bool = False
    reason: str = ""


HTML_502 = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><hr><p>nginx</p></body></html>"
)
#: The longest wait before an LLM's or embedder's retry here (their SDKs' first backoff is
#: at most 0.5 s; the Retry-After of ``429-short`` is 0.1 s).
RETRY_WAIT = 1.0
#: How long a hang holds the connection (it is released when the proxy closes).
HANG = 6.0

FAULTS: tuple[FaultSpec, ...] = (
    FaultSpec(
        Fault("429-short", status=429, headers={"Retry-After": "0.1"}),
        recoverable=True,
        reason="429|rate",
    ),
    FaultSpec(Fault("429-long", status=429, headers={"Retry-After": "60"}), reason="429|rate"),
    FaultSpec(Fault("429-none", status=429), recoverable=True, reason="429|rate"),
    FaultSpec(Fault("500", status=500), recoverable=True, reason="500"),
    FaultSpec(Fault("503", status=503), recoverable=True, reason="503"),
    FaultSpec(
        Fault("hang", action="hang", hang=HANG),
        variants=("persistent",),
        reason="time|answer within",
    ),
    FaultSpec(Fault("reset", action="reset"), recoverable=True, reason="reach|connect|reset"),
    FaultSpec(Fault("malformed", action="malformed"), reason="JSON|malformed|decode|parse"),
    FaultSpec(
        Fault("html-502", status=502, body=HTML_502, content_type="text/html"),
        recoverable=True,
        reason="502",
    ),
)


def mutation_spec(kind: str) -> FaultSpec:
    """The fault of the target's own wrong answer ``kind``."""
    return FaultSpec(Fault(kind, action="mutate", mutation=kind))


@dataclass
class _Cell:
    name: str
    spec: FaultSpec
    variant: str
    max_ms: float = 0.0

    @property
    def persistent(self) -> bool:
        return self.variant == "persistent"

    recoverable: bool = False

    def expects_failure(self, round_: int) -> bool:
        """Whether the call of round ``round_`` must fail (vs. succeed)."""
        if self.persistent:
            return True
        return round_ == 0 and not self.recoverable


@dataclass
class _Run:
    target: FaultTarget
    proxy: FaultProxy
    report: DrillReport
    folder: Path
    timeout: float
    retries: int
    slack: float
    rounds: int
    counter: int = 0
    memories: dict[str, Memory] = field(default_factory=dict)

    def bound(self) -> float:
        """The most seconds a call may take: the stage's timeout for a reranker (its retries
        fit in it), each attempt's timeout and the wait before it for an LLM or embedder;
        plus the slack."""
        if self.target.kind == "reranker":
            return self.timeout + self.slack
        return (self.timeout + RETRY_WAIT) * (self.retries + 1) + self.slack

    def open(self, label: str, **options: Any) -> Memory:
        opts = {"timeout": self.timeout, "max_retries": self.retries, **options}
        config = self.target.memory_config(self.folder / label, self.proxy.base_url, opts)
        memory = Memory.from_config(config)
        self.memories[label] = memory
        return memory

    def next_text(self) -> str:
        self.counter += 1
        return f"Alice noted item {word(self.counter)} in her diary."

    def fail(self, cell: _Cell, round_: int, kind: str, problem: str) -> None:
        self.report.fail(f"{self.target.name} {cell.name} round {round_}: {problem}", kind)

    def timed(self, cell: _Cell, call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        start = time.monotonic()
        try:
            result, error = call(), None
        except Exception as exc:  # judged by the caller
            result, error = None, exc
        elapsed = time.monotonic() - start
        cell.max_ms = max(cell.max_ms, elapsed * 1000)
        if elapsed > self.bound():
            self.fail(cell, -1, "latency", f"took {elapsed:.2f} s; the bound is {self.bound():g} s")
        return result, error


def _snapshot(memory: Memory) -> Any:
    records = memory.get_all(user_id=USER, top_k=10_000)["results"]
    listed = sorted((r["id"], r["memory"], r.get("updated_at")) for r in records)
    history = {r["id"]: len(memory.history(r["id"])) for r in records}
    return memory.vector_store.count(), listed, history


def _documented(error: BaseException) -> bool:
    """A documented error: a MemsiftError of a subclass (never the bare base)."""
    return isinstance(error, MemsiftError) and type(error) is not MemsiftError


# --------------------------------------------------------------------------- rerankers


def _rerank_cell(run: _Run, cell: _Cell, order: dict[str, list[str]]) -> None:
    fallback, raising = run.memories["fallback"], run.memories["raise"]
    for round_ in range(run.rounds):
        query = QUERIES[round_ % len(QUERIES)]
        failing = cell.expects_failure(round_)
        out, error = run.timed(cell, partial(fallback.search, query, user_id=USER, top_k=5))
        if error is not None:
            run.fail(cell, round_, "dropped", f"the search raised {error!r}")
            continue
        block = out["rerank"]
        ids = [r["id"] for r in out["results"]]
        if failing:
            if block["applied"]:
                run.fail(cell, round_, "applied_under_fault", "rerank.applied is true")
            elif not block.get("error"):
                run.fail(cell, round_, "no_reason", "rerank.error is empty")
            elif cell.spec.reason and not re.search(cell.spec.reason, block["error"], re.I):
                run.fail(cell, round_, "reason", f"rerank.error {block['error']!r}")
            if ids != order[query]:
                run.fail(cell, round_, "order", f"not the vector order: {ids} vs {order[query]}")
        elif not block["applied"]:
            run.fail(cell, round_, "not_recovered", f"not reranked: {block.get('error')!r}")
        run.report.attempts += 1
    if cell.expects_failure(0):
        if not cell.persistent:
            run.proxy.script(cell.spec.fault, times=1)
        _, error = run.timed(cell, lambda: raising.search(QUERIES[0], user_id=USER, top_k=5))
        if not isinstance(error, RerankError):
            run.fail(cell, 0, "raise", f"on_error raise gave {error!r}, not a RerankError")


def _rerank_setup(run: _Run) -> dict[str, list[str]]:
    order: dict[str, list[str]] = {}
    for label, options in (("fallback", {}), ("raise", {"on_error": "raise"})):
        memory = run.open(label, **options)
        memory.add(list(MEMORIES), user_id=USER, infer=False)
        for query in QUERIES:
            ids = [
                r["id"]
                for r in memory.search(query, user_id=USER, top_k=5, rerank=False)["results"]
            ]
            if label == "fallback":
                order[query] = ids
        _warm_up(run, memory)
    return order


def _warm_up(run: _Run, memory: Memory, tries: int = 5) -> None:
    """A first reranked search builds the client and imports the SDK, which on a busy
    machine may outlast the timeout (the import goes on in the worker thread): not part of
    the matrix, so it is tried until it reranks."""
    warm: Any = None
    for _ in range(tries):
        try:
            warm = memory.search(QUERIES[0], user_id=USER, top_k=5)["rerank"]
        except RerankError as exc:  # on_error "raise"
            warm = exc
        else:
            if warm["applied"]:
                return
        time.sleep(0.5)
    run.report.fail(f"{run.target.name}: no healthy search reranked: {warm!r}", "setup")


def _rerank_healthy(run: _Run, cell: _Cell) -> None:
    out = run.memories["fallback"].search(QUERIES[0], user_id=USER, top_k=5)
    if not out["rerank"]["applied"]:
        run.fail(cell, run.rounds, "unharmed", f"a healthy search failed: {out['rerank']}")


# --------------------------------------------------------------------------- llm, embedder


def _write_cell(run: _Run, cell: _Cell) -> None:
    memory = run.memories["main"]
    infer = run.target.kind == "llm"
    for round_ in range(run.rounds):
        failing = cell.expects_failure(round_)
        before = _snapshot(memory)
        text = run.next_text()
        out, error = run.timed(cell, partial(memory.add, text, user_id=USER, infer=infer))
        after = _snapshot(memory)
        if error is not None:
            run.report.note(f"raised:{type(error).__name__}")
        if failing:
            if error is None:
                run.fail(cell, round_, "no_error", f"the add returned {out!r}")
            elif not _documented(error):
                run.fail(cell, round_, "error_type", f"the add raised {error!r}")
            elif cell.spec.reason and not re.search(cell.spec.reason, str(error), re.I):
                run.fail(cell, round_, "reason", f"the error {error!r}")
            if after != before:
                run.fail(cell, round_, "written", "the failed add changed the store")
        elif error is not None:
            run.fail(cell, round_, "not_recovered", f"the add raised {error!r}")
        elif not out["results"]:
            run.fail(cell, round_, "not_recovered", "the add wrote nothing")
        run.report.attempts += 1
    if run.target.kind == "embedder" and cell.expects_failure(0):
        if not cell.persistent:
            run.proxy.script(cell.spec.fault, times=1)
        _, error = run.timed(cell, partial(memory.search, QUERIES[0], user_id=USER))
        run.report.note(f"search_raised:{type(error).__name__}")
        if error is None or not _documented(error):
            run.fail(cell, 0, "search_error", f"a search with a failing embedder gave {error!r}")


def _write_setup(run: _Run) -> dict[str, list[str]]:
    memory = run.open("main")
    memory.add(list(MEMORIES[:2]), user_id=USER, infer=False)
    # a first call builds the client (and imports the SDK): not timed
    memory.add(run.next_text(), user_id=USER, infer=run.target.kind == "llm")
    return {}


def _write_healthy(run: _Run, cell: _Cell) -> None:
    memory = run.memories["main"]
    infer = run.target.kind == "llm"
    try:
        added = memory.add(run.next_text(), user_id=USER, infer=infer)
        found = memory.search(QUERIES[0], user_id=USER)
    except MemsiftError as exc:
        run.fail(cell, run.rounds, "unharmed", f"a healthy call failed: {exc!r}")
        return
    if not added["results"] or not found["results"]:
        run.fail(cell, run.rounds, "unharmed", "a healthy add or search found nothing")


# --------------------------------------------------------------------------- the drill


def cells_of(
    target: FaultTarget, only: Sequence[str] | None = None, hang: float = HANG
) -> Iterator[_Cell]:
    """The cells of ``target``: every fault of :data:`FAULTS` and of its mutations, in each
    variant (``only``: the fault names to keep; ``hang``: how long a hang holds on)."""
    for spec in (*FAULTS, *(mutation_spec(m) for m in target.mutations)):
        if only is not None and spec.fault.name not in only:
            continue
        if spec.fault.action == "hang":
            spec = replace(spec, fault=replace(spec.fault, hang=hang))
        recoverable = spec.recoverable and spec.fault.name not in target.no_retry
        for variant in spec.variants:
            yield _Cell(f"{spec.fault.name}/{variant}", spec, variant, recoverable=recoverable)


def drill_target(
    target: FaultTarget,
    *,
    rounds: int = 2,
    timeout: float = 1.0,
    retries: int = 1,
    slack: float = 2.0,
    only: Sequence[str] | None = None,
    hang: float = HANG,
) -> DrillReport:
    """Run every cell of ``target`` (see the module docstring) and report: ``rounds`` calls
    per cell, the targets configured with ``timeout`` and ``max_retries`` = ``retries``, a
    call allowed ``slack`` seconds over its bound; ``only`` and ``hang`` as for
    :func:`cells_of`."""
    report = DrillReport(name=f"faults:{target.name}")
    with ExitStack() as stack:
        upstream = stack.enter_context(target.serve())
        proxy = stack.enter_context(FaultProxy(upstream, target.mutate))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memsift-faults-")))
        run = _Run(target, proxy, report, folder, timeout, retries, slack, rounds)
        try:
            reranker = target.kind == "reranker"
            order = _rerank_setup(run) if reranker else _write_setup(run)
            for cell in cells_of(target, only, hang):
                if target.settle:
                    report.note("stray_requests", proxy.settle(target.settle))
                before = proxy.delivered
                if cell.persistent:
                    proxy.script(cell.spec.fault)
                else:
                    proxy.script(cell.spec.fault, times=1)
                if reranker:
                    _rerank_cell(run, cell, order)
                else:
                    _write_cell(run, cell)
                proxy.clear()
                delivered = proxy.delivered - before
                report.note(f"delivered:{cell.name}", delivered)
                report.note(f"max_ms:{cell.name}", round(cell.max_ms))
                if not delivered:
                    run.fail(cell, 0, "undelivered", "the proxy delivered no fault")
                (_rerank_healthy if reranker else _write_healthy)(run, cell)
                report.note("cells")
        finally:
            proxy.release()
            for memory in run.memories.values():
                memory.close()
    return report


def fault_matrix(
    targets: Sequence[FaultTarget], *, workers: int = 1, **options: Any
) -> list[DrillReport]:
    """:func:`drill_target` for each target (``options`` as there), ``workers`` targets at
    a time (each has its own fake, proxy and store; most of a cell is waiting on a timeout
    or a backoff); the reports in the order of ``targets``."""
    if workers <= 1:
        return [drill_target(target, **options) for target in targets]
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="faults") as pool:
        return list(pool.map(lambda target: drill_target(target, **options), targets))


def table(reports: Sequence[DrillReport]) -> str:
    """The reports as a small text table: target, attempts, failures, slowest call."""
    lines = [f"{'target':34} {'attempts':>8} {'failures':>8} {'max ms':>7}  kinds"]
    for r in reports:
        slowest = max((v for k, v in r.notes.items() if k.startswith("max_ms:")), default=0)
        kinds = json.dumps(r.kinds) if r.kinds else "-"
        lines.append(f"{r.name:34} {r.attempts:>8} {r.failure_count:>8} {slowest:>7}  {kinds}")
    return "\n".join(lines)


__all__ = [
    "FAULTS",
    "Fault",
    "FaultProxy",
    "FaultSpec",
    "FaultTarget",
    "cells_of",
    "drill_target",
    "fault_matrix",
    "mutation_spec",
    "table",
]
