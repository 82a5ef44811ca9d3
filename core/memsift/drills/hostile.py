"""The hostile-input drill: generated calls of the public API and of the CLI with odd values.

Each case is one call of ``Memory.add / search / get / get_all / update / delete / delete_all
/ history`` (or of ``memsift add`` / ``memsift search`` through click's runner) built from
pools of hostile values: queries (empty, blank, NUL, lone surrogates, a megabyte, not a
string), ids, metadata (odd keys, NaN and infinities, deep nesting, huge values), filters
(unknown operators, wrong types, 1,000-deep nesting, 100,000-item lists, SQL in keys and
values), scope ids of odd types, ``top_k`` and ``threshold`` at and past their edges, and
unknown keyword arguments. The invariant of every case:

- it returns, or raises a documented :class:`~memsift.errors.MemsiftError` (an unknown
  keyword is :class:`~memsift.errors.UnknownArgumentError`, also a ``TypeError``) whose
  message can be printed; never another exception;
- it finishes within :data:`CASE_TIMEOUT` seconds;
- when it raises, the store and the history hold exactly what they held before (counts).

A CLI case exits 0, or 2 with a message (a usage error or a MemsiftError), never with a
traceback.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config
from memsift.errors import MemsiftError
from memsift.memory import Memory

#: The longest a case may take before it counts as a hang, in seconds.
CASE_TIMEOUT = 30.0
MEGABYTE = "m" * 1_000_000


def _deep_filter(depth: int, op: str = "AND") -> dict[str, Any]:
    node: dict[str, Any] = {"n": 1}
    for _ in range(depth):
        node = {op: node if op == "NOT" else [node, {"n": {"gte": 0}}]}
    return node


def _deep_value(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"k": node}
    return node


NAN, INF = float("nan"), float("inf")
QUERIES: list[Any] = [
    "", " ", "\t\n ", "\x00", "a\x00b", "\ud800", "x\udfffy", MEGABYTE, "q" * 32_000,
    "q" * 32_001, None, 1, 1.5, True, b"bytes", ["list"], {"d": 1}, "ok query",
    "'; DROP TABLE memories; --", "%", "_", "\\", "\U0001f642" * 1000, "\u202e\u200b",
    '"', '"unterminated', "NEAR(a b", "a OR", "AND", "*", "^a", "memory:alpha", "a -b", "()",
]  # fmt: skip
SCOPES: list[Any] = [
    "u", "v", "", " ", None, 1, 1.5, True, ["u"], {"u": 1}, "\x00", "\ud800", "a" * 1000,
    b"u", "u'; --", "*", "%",
]  # fmt: skip
METADATA: list[Any] = [
    None, {}, {"": 1}, {"a b": 1}, {"$and": 1}, {"a.b": 1}, {"k": NAN}, {"k": INF},
    {"k": -INF}, _deep_value(1000), _deep_value(50), {"k": MEGABYTE}, {1: "int key"},
    {"k": object()}, {"k": b"bytes"}, {"k": {1, 2}}, "not a dict", [("k", "v")],
    {"k\x00": 1}, {"k": "\ud800"}, {"k'); DROP TABLE memories; --": 1}, {"k": 10**400},
    {"k": list(range(100_000))}, {"ok": "fine", "n": 2},
]  # fmt: skip
EXTRA_FILTERS: list[Any] = [
    None, {}, {"$bogus": 1}, {"user_id": {"$eq": ["list"]}}, {"k": {"$gt": "str"}},
    _deep_filter(1000), _deep_filter(30), {"k": {"$in": list(range(100_000))}},
    {"k'; DROP TABLE memories; --": 1}, {"k": "'; DROP TABLE memories; --"},
    {"$or": "not a list"}, {"$not": []}, "string", [1], {"k": {"$eq": NAN}},
    {"k": {"$in": "not a list"}}, {"k": {"$regex": ".*"}}, {"k": {"$eq": {"$gt": 1}}},
    {"k": {"$exists": "yes"}}, {"$or": [{"user_id": "v"}]}, {"$not": {"user_id": "u"}},
    {"user_id": {"$ne": "u"}}, {"k": {"$gt": INF}}, {"": 1}, {"a.b.c": 1}, {1: 2},
    {"k": {"$in": [object()]}}, {"$and": [{"$or": [{"user_id": "v"}, {"n": 1}]}]},
    # the filter language's own spelling, with hostile operands
    _deep_filter(1000, "OR"), _deep_filter(1000, "NOT"), _deep_filter(60, "OR"),
    {"n": {"in": list(range(100_000))}}, {"n": {"nin": list(range(100_000))}},
    {"n": {"gt": "str"}}, {"n": {"bogus": 1}}, {"OR": "x"}, {"NOT": []}, {"AND": {}},
    {"n": {"eq": NAN}}, {"n": {"in": "not a list"}}, {"memory": {"contains": "'; DROP --"}},
    {"user_id": {"ne": "u"}}, {"OR": [{"user_id": "v"}]}, {"NOT": {"user_id": "u"}},
    {"n": {"eq": {"gt": 1}}}, {"n": {"exists": "yes"}}, {"created_at": {"gt": "not a date"}},
    {"created_at": {"gt": 5}}, {"hash": {"contains": 1}}, {"id": {"in": [None]}},
    {"memory": {"icontains": "\x00"}}, {"n": {"eq": 10**400}}, {"n": {"gt": 2**63}},
    {"n": {"in": [1, "a", None, 1.5, True]}}, {"memory": {"contains": "%_\\"}},
    {"n": {"lt": -INF}}, {"metadata": 1}, {"n": {"eq": "\ud800"}}, {"\ud800": 1},
    {"user_id": {"eq": "*"}}, {"user_id": "*"}, {"user_id": ["u", "v"]}, {"user_id": 5},
    {"AND": [{"user_id": "v"}]}, {"n": {"in": []}}, {"OR": []}, {"tags": {"contains": "a"}},
]  # fmt: skip
TOP_K: list[Any] = [0, -1, 1, 1000, 1001, 10**18, 1.5, "5", None, True, NAN]
THRESHOLD: list[Any] = [None, 0, 1, -1, 1.5, NAN, INF, "0.5", True, 0.3]
UNKNOWN: list[dict[str, Any]] = [{}, {}, {}, {"user": "u"}, {"limit": 5}, {"filter": {}}]


class Case:
    """One generated call: a description, and the call itself."""

    def __init__(self, label: str, call: Callable[[], Any]) -> None:
        self.label, self.call = label, call


def _pick(rng: random.Random, pool: list[Any]) -> Any:
    return pool[rng.randrange(len(pool))]


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def api_case(m: Memory, rng: random.Random, ids: list[str]) -> Case:
    """A random call of one ``Memory`` method with one or two hostile arguments (the rest
    valid, so the hostile one reaches its check)."""
    method = rng.choice(
        ["add", "search", "get", "get_all", "update", "delete", "delete_all", "history"]
    )
    hostile = set(rng.sample(["scope", "filters", "top_k", "threshold", "unknown", "meta"], 2))
    if rng.random() < 0.6:
        hostile = set(list(hostile)[:1])
    v: dict[str, Any] = {
        "scope": {"user_id": _pick(rng, SCOPES)} if "scope" in hostile else {"user_id": "u"},
        "filters": _pick(rng, EXTRA_FILTERS) if "filters" in hostile else None,
        "top_k": _pick(rng, TOP_K) if "top_k" in hostile else 5,
        "threshold": _pick(rng, THRESHOLD) if "threshold" in hostile else None,
        "unknown": _pick(rng, UNKNOWN[3:]) if "unknown" in hostile else {},
        "meta": _pick(rng, METADATA) if "meta" in hostile else {"n": 1},
    }
    if "scope" in hostile and rng.random() < 0.3:
        v["scope"]["agent_id"] = _pick(rng, SCOPES)
    ok_id = ids[0] if ids else "nope"
    an_id = _pick(rng, [*ids, "", "nope", "\x00", "\ud800", "a" * 300, None, 5, ["x"], "';--"])
    text = _pick(rng, QUERIES) if rng.random() < 0.5 else "a fine text"
    fn: Callable[..., Any] = getattr(m, method)
    args: dict[str, Any] = {**v["scope"], **v["unknown"]}
    if method == "add":
        message = _pick(rng, [*QUERIES, [{"role": "user", "content": "hi"}], [], [1, "x"]])
        args.update(metadata=v["meta"], infer=False)
        return Case(f"add({_short(message)}, {_short(args)})", lambda: fn(message, **args))
    if method == "search":
        args.update(filters=v["filters"], top_k=v["top_k"], threshold=v["threshold"])
        args["hybrid"] = rng.choice([None, True, False])
        query = text if text != "a fine text" or rng.random() < 0.5 else "alpha"
        return Case(f"search({_short(query)}, {_short(args)})", lambda: fn(query, **args))
    if method in ("get_all", "delete_all"):
        args["filters"] = v["filters"]
        if method == "get_all":
            args["top_k"] = v["top_k"]
        return Case(f"{method}({_short(args)})", lambda: fn(**args))
    if method == "update":
        target = an_id if rng.random() < 0.4 else ok_id
        meta = v["meta"] if "meta" in hostile else None
        label = f"update({_short(target)}, {_short(text)}, {_short(meta)})"
        return Case(label, lambda: fn(target, text, meta))
    return Case(f"{method}({_short(an_id)})", lambda: fn(an_id))


def sweep_cases(m: Memory, ids: list[str]) -> list[Case]:
    """Every hostile value of every pool once, in the call it is meant for (the rest valid)."""
    cases: list[Case] = []

    def case(label: str, method: str, *args: Any, **kwargs: Any) -> None:
        cases.append(Case(label, partial(getattr(m, method), *args, **kwargs)))

    for f in EXTRA_FILTERS:
        for method in ("search", "get_all", "delete_all"):
            query = ("alpha",) if method == "search" else ()
            case(f"{method} filters={_short(f)}", method, *query, user_id="u", filters=f)
    for q in QUERIES:
        case(f"search {_short(q)}", "search", q, user_id="u")
        case(f"hybrid search {_short(q)}", "search", q, user_id="u", hybrid=True)
        case(f"add {_short(q)}", "add", q, user_id="w", infer=False)
    for meta in METADATA:
        case(f"add metadata={_short(meta)}", "add", "x y", user_id="w", metadata=meta)
        if ids:
            case(f"update metadata={_short(meta)}", "update", ids[0], "z", meta)
    for scope in SCOPES:
        case(f"get_all user_id={_short(scope)}", "get_all", user_id=scope)
        case(f"search user_id={_short(scope)}", "search", "alpha", user_id=scope)
        case(f"delete_all agent_id={_short(scope)}", "delete_all", agent_id=scope)
    for k in TOP_K:
        case(f"search top_k={_short(k)}", "search", "alpha", user_id="u", top_k=k)
        case(f"get_all top_k={_short(k)}", "get_all", user_id="u", top_k=k)
    for t in THRESHOLD:
        case(f"search threshold={t!r}", "search", "alpha", user_id="u", threshold=t)
    for i in ["", "nope", "\x00", "\ud800", "a" * 300, None, 5, ["x"], "';--", 1.5]:
        for name in ("get", "delete", "history"):
            case(f"{name}({_short(i)})", name, i)
    return cases


def cli_case(config_path: Path, rng: random.Random) -> Case:
    """A random hostile ``memsift add`` or ``memsift search`` run through click's runner."""
    from click.testing import CliRunner

    from memsift.cli.memory_cmds import add, search

    def text() -> str:
        value = _pick(rng, QUERIES)
        return value if isinstance(value, str) else json.dumps(value, default=str)

    scope = ["--user-id", text()] if rng.random() < 0.9 else []
    cfg = ["--config", str(config_path)]
    if rng.random() < 0.5:
        command: Any = add
        meta = _pick(rng, ['{"k": 1}', "{bad json", "[1]", '{"a b": 1}', '{"k": NaN}'])
        argv = [text(), *scope, "--metadata", meta, *cfg]
    else:
        command = search
        raw = _pick(rng, EXTRA_FILTERS)
        try:
            filt = json.dumps(raw, default=str)
        except (ValueError, RecursionError):
            filt = "{"
        argv = [text(), *scope, "--filter", filt, "--top-k", _pick(rng, ["0", "5", "x"]), *cfg]

    def run() -> Any:
        result = CliRunner().invoke(command, argv)
        if result.exit_code not in (0, 2) or (
            result.exception is not None and not isinstance(result.exception, SystemExit)
        ):
            raise AssertionError(f"exit {result.exit_code}: {result.exception!r}")
        return result.exit_code

    # (the report notes CLI cases under "cli")

    return Case(f"cli {command.name} {_short(argv[:-2])}", run)


def _counts(m: Memory) -> tuple[int, int]:
    events = sum(len(m.history(i)) for i in m.history_db.memory_ids())
    return m.vector_store.count(), events


def run_case(m: Memory, case: Case, report: DrillReport, *, check_counts: bool) -> None:
    """Run ``case`` in a thread, bounded by :data:`CASE_TIMEOUT`; report what breaks."""
    before = _counts(m) if check_counts else None
    outcome: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            case.call()
            outcome["error"] = None
        except BaseException as exc:  # the drill's whole point: see what escapes
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(CASE_TIMEOUT)
    report.attempts += 1
    if worker.is_alive():
        report.fail(f"{case.label}: no answer within {CASE_TIMEOUT}s", "hang")
        return
    error = outcome["error"]
    if error is None:
        report.note("succeeded")
        return
    if not isinstance(error, MemsiftError):
        report.fail(f"{case.label}: {type(error).__name__}: {_short(str(error))}", "raw error")
        return
    report.note(type(error).__name__)
    try:
        str(error)
    except Exception as exc:
        report.fail(f"{case.label}: its error cannot be printed: {exc!r}", "raw error")
    if before is not None and _counts(m) != before:
        report.fail(f"{case.label}: raised {type(error).__name__} and wrote", "partial write")


def hostile_drill(cases: int = 500, *, seed: int = 0, cli_share: float = 0.1) -> DrillReport:
    """Run ``cases`` generated cases (a share ``cli_share`` of them through the CLI)."""
    report = DrillReport("hostile input")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="memsift-hostile-") as tmp:
        config = drill_config(tmp)
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        with Memory.from_config(config) as m:
            m.add(["alpha beta", "gamma delta"], user_id="u", metadata={"n": 1})
            ids = [r["id"] for r in m.get_all(user_id="u", top_k=20)["results"]]
            for case in sweep_cases(m, ids)[:cases]:
                run_case(m, case, report, check_counts=True)
            for i in range(cases - report.attempts):
                if i % 50 == 0:  # keep something to find, update and delete
                    m.add(["alpha beta", "gamma delta"], user_id="u", metadata={"n": 1})
                ids = [r["id"] for r in m.get_all(user_id="u", top_k=20)["results"]]
                if rng.random() < cli_share:
                    report.note("cli")
                    run_case(m, cli_case(config_path, rng), report, check_counts=False)
                else:
                    run_case(m, api_case(m, rng, ids), report, check_counts=True)
    return report
