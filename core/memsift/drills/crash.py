"""The crash drill: SIGKILL a writer (:mod:`memsift.drills.writer`) at random moments, then
check the store it leaves.

Each round starts a writer on the same store, lets it run, and kills it: at a random time, a
few milliseconds after it announced a batched add, an update, a ``delete_all``, or inside a
compaction. Then it reads what the writer acknowledged (everything it printed before dying)
and checks, with the parent's own model of the acknowledged writes:

- the store opens without error;
- every acknowledged write is visible: each memory's text, metadata, scope and timestamps, and
  its history (ADD / UPDATE / DELETE with the texts), exactly; nothing deleted comes back;
- the one call that was in flight is all or nothing: a batch wholly there or wholly absent, an
  update old or new, a ``delete_all`` whole;
- nothing is half-visible: every live memory has a history whose last event describes it, and
  every memory id in the history that is not live ends with a DELETE;
- the vector index agrees with SQLite: its live count is the stored count, and every live
  memory is found top-1 by its own text in its scope.
"""

from __future__ import annotations

import json
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from memsift.drills.report import DrillReport
from memsift.drills.writer import CHURN, USERS, drill_config
from memsift.inputs import MAX_TOP_K

#: The record fields an acknowledged memory must keep exactly.
FIELDS = ("memory", "metadata", "created_at", "updated_at", "user_id")
#: How long a writer may take to print ``ready`` (a cold start on a busy machine).
START_TIMEOUT = 60.0

#: The failure kind of a history that lists an ADD, UPDATE or DELETE the store does not hold
#: (a kill between a change's history commit and its store commit would show one; the
#: pending events of :mod:`memsift.history` keep it hidden).
HISTORY_AHEAD = "history ahead of store"
#: The failure kinds of documented, pinned defects the drill still counts: none.
KNOWN: frozenset[str] = frozenset()

Pairs = list[tuple[str, str | None]]


class Model:
    """The parent's view of what the writers acknowledged."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.history: dict[str, Pairs] = {}
        self.deleted: set[str] = set()
        #: (problem kind, memory id) already reported, so a lasting defect counts once
        self.reported: set[tuple[str, str]] = set()

    def first(self, kind: str, memory_id: str) -> bool:
        """Whether this defect of this memory is new (and remember it)."""
        if (kind, memory_id) in self.reported:
            return False
        self.reported.add((kind, memory_id))
        return True

    def ack(self, line: dict[str, Any]) -> None:
        op = line["ack"]
        kind = op["op"]
        if kind == "add":
            for rec in line["records"]:
                self.records[rec["id"]] = rec
                self.history[rec["id"]] = [("ADD", rec["memory"])]
        elif kind == "update":
            self.records[op["id"]] = line["record"]
            self.history[op["id"]].append(("UPDATE", op["text"]))
        elif kind == "delete":
            self._gone(op["id"])
        elif kind == "delete_all":
            for i in [i for i, r in self.records.items() if r.get("user_id") == op["user"]]:
                self._gone(i)

    def _gone(self, memory_id: str) -> None:
        self.records.pop(memory_id, None)
        self.deleted.add(memory_id)
        self.history.setdefault(memory_id, []).append(("DELETE", None))


def _pairs(events: list[dict[str, Any]]) -> Pairs:
    return [(e["event"], e["new_memory"] if e["event"] != "DELETE" else None) for e in events]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(f) == b.get(f) for f in FIELDS)


def check_store(
    store_dir: Path, model: Model, inflight: dict[str, Any] | None, report: DrillReport
) -> None:
    """Check the store after a kill against ``model`` (see the module doc), then bring the
    model up to what the store holds (the in-flight call's outcome adopted)."""
    from memsift.memory import Memory

    try:
        m = Memory.from_config(drill_config(store_dir))
    except Exception as exc:  # the first invariant: it opens
        report.fail(f"the store did not open: {type(exc).__name__}: {exc}", "store does not open")
        return
    with m:
        actual: dict[str, dict[str, Any]] = {}
        for user in USERS:
            for r in m.get_all(user_id=user, top_k=1_000_000)["results"]:
                actual[r["id"]] = r
        churn = m.get_all(user_id="churn", top_k=1_000_000)["results"]
        _check_records(model, actual, inflight, report)
        hist = {i: _pairs(m.history(i)) for i in actual}
        _check_history(m, model, actual, hist, churn, inflight, report)
        _check_index(m, list(actual.values()), churn, report)
        if len(churn) % CHURN:
            report.fail(
                f"a churn batch is partly there: {len(churn)} churn memories", "partial batch"
            )
        model.records = actual
        model.history.update(hist)


def _check_records(
    model: Model,
    actual: dict[str, dict[str, Any]],
    inflight: dict[str, Any] | None,
    report: DrillReport,
) -> None:
    op = inflight or {"op": None}
    touched: set[str] = set()
    if op["op"] in ("update", "delete"):
        touched = {op["id"]}
    elif op["op"] == "delete_all":
        mine = {i for i, r in model.records.items() if r.get("user_id") == op["user"]}
        present = mine & set(actual)
        if present and present != mine:
            report.fail(
                f"delete_all of {op['user']} half done: {len(present)}/{len(mine)} left",
                "partial delete_all",
            )
        touched = mine
    for memory_id, rec in model.records.items():
        got = actual.get(memory_id)
        if memory_id in touched:
            if op["op"] == "update" and got is not None and not _same(got, rec):
                new = {**rec, "memory": op["text"], "metadata": op["metadata"]}
                if got["memory"] != op["text"] or got["metadata"] != op["metadata"]:
                    report.fail(
                        f"update of {memory_id} neither old nor new: {got} vs {new}", "torn update"
                    )
            if op["op"] == "update" and got is None:
                report.lost += 1
                report.fail(f"acknowledged memory {memory_id} vanished during an update", "lost")
            continue
        if got is None:
            report.lost += 1
            report.fail(f"acknowledged memory {memory_id} ({rec['memory']!r}) is missing", "lost")
        elif not _same(got, rec):
            report.lost += 1
            report.fail(f"acknowledged memory {memory_id} changed: {rec} -> {got}", "lost")
    for memory_id in model.deleted & set(actual):
        report.fail(f"deleted memory {memory_id} is back", "deleted memory back")
    extra = {i: r for i, r in actual.items() if i not in model.records}
    if extra:
        texts = sorted(r["memory"] for r in extra.values())
        if op["op"] != "add" or texts != sorted(op["texts"]):
            report.fail(
                f"unacknowledged memories are visible: {texts[:5]} (in flight: {op})",
                "half-visible",
            )
    elif op["op"] == "add":
        report.note("in-flight adds absent")


def _check_history(
    m: Any,
    model: Model,
    actual: dict[str, dict[str, Any]],
    hist: dict[str, Pairs],
    churn: list[dict[str, Any]],
    inflight: dict[str, Any] | None,
    report: DrillReport,
) -> None:
    for memory_id, rec in actual.items():
        pairs = hist[memory_id]
        if not pairs or pairs[-1] != (pairs[-1][0], rec["memory"]) or pairs[-1][0] == "DELETE":
            if model.first("history", memory_id):
                report.fail(
                    f"memory {memory_id} ({rec['memory']!r}) has history {pairs}", HISTORY_AHEAD
                )
            continue
        expected = model.history.get(memory_id)
        if expected is not None and pairs != expected:
            in_flight = inflight is not None and inflight.get("id") == memory_id
            if not (in_flight and pairs[:-1] == expected):
                report.fail(
                    f"history of {memory_id} is {pairs}, acknowledged {expected}", "history"
                )
    churn_ids = {r["id"] for r in churn}
    for memory_id in m.history_db.memory_ids():
        if memory_id in actual or memory_id in churn_ids:
            continue
        pairs = _pairs(m.history(memory_id))
        if (not pairs or pairs[-1][0] != "DELETE") and model.first("orphan", memory_id):
            report.fail(
                f"the history lists memory {memory_id} that is not stored: {pairs} "
                f"(in flight: {inflight and inflight.get('op')})",
                HISTORY_AHEAD,
            )
        if (
            memory_id in model.history
            and pairs[: len(model.history[memory_id])] != (model.history[memory_id])
        ):
            report.fail(f"history of deleted {memory_id} is {pairs}", "history")


def _check_index(
    m: Any, live: list[dict[str, Any]], churn: list[dict[str, Any]], report: DrillReport
) -> None:
    stats = m.vector_store.stats()
    if stats["live"] != len(live) + len(churn):
        report.fail(f"index live {stats['live']} != stored {len(live) + len(churn)}", "index")
    for rec in [*live, *churn[:20]]:
        top_k = 5
        while True:
            hits = m.search(rec["memory"], user_id=rec["user_id"], top_k=top_k, rerank=False)
            results = hits["results"]
            # a tie (another memory whose vector is the same: the hashing embedder's words
            # share buckets, and a churn wave holds a thousand texts) is not a defect of the
            # index; when the tie fills every hit, look further
            tied = [
                h["id"] for h in results if h["vector_score"] >= results[0]["vector_score"] - 1e-6
            ]
            if len(tied) < len(results) or len(results) < top_k or top_k == MAX_TOP_K:
                break
            top_k = min(4 * top_k, MAX_TOP_K)
        if rec["id"] not in tied:
            got = [h["id"] for h in results[:5]]
            report.fail(f"memory {rec['id']} ({rec['memory']!r}) not found top-1: {got}", "index")


# --------------------------------------------------------------------------- the rounds

MODES = ("time", "batch", "update", "delete_all", "compaction")


def _reader(stream: Any, out: queue.Queue[dict[str, Any] | None]) -> None:
    for raw in stream:
        try:
            out.put(json.loads(raw))
        except ValueError:
            out.put({"garbage": raw})
    out.put(None)


def _trigger(mode: str, line: dict[str, Any]) -> bool:
    if mode == "compaction":
        return line.get("compact") == "begin"
    op = line.get("pending") or {}
    if mode == "batch":
        return op.get("op") == "add" and len(op.get("texts", ())) > 1
    return bool(op.get("op") == mode)


def one_round(store_dir: Path, model: Model, rng: random.Random, report: DrillReport) -> None:
    """Start a writer, kill it (see :data:`MODES`), and check what it left."""
    mode = rng.choice(MODES)
    churn_share = 0.3 if mode == "compaction" else 0.03
    seed = rng.randrange(1 << 30)
    cmd = [sys.executable, "-m", "memsift.drills.writer", str(store_dir), str(seed)]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*cmd, str(churn_share)], stdout=subprocess.PIPE, stderr=err, text=True
        )
        lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
        reader.start()
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + START_TIMEOUT
        kill_at: float | None = None
        while True:
            wait = (kill_at if kill_at is not None else deadline) - time.monotonic()
            try:
                line = lines.get(timeout=max(wait, 0.0))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if kill_at is None and line.get("ready"):
                deadline = time.monotonic() + rng.uniform(0.05, 0.5)
                if mode == "time":
                    kill_at = deadline
            elif kill_at is None and mode != "time" and _trigger(mode, line):
                delay = 0.001 if mode == "compaction" else 0.004
                kill_at = time.monotonic() + rng.uniform(0.0, delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        while (rest := lines.get_nowait() if not lines.empty() else None) is not None:
            seen.append(rest)
        if proc.returncode != -signal.SIGKILL:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-600:]
            report.fail(
                f"the writer died by itself (status {proc.returncode}): {tail}", "writer crashed"
            )
    report.attempts += 1
    _account(seen, model, report)
    inflight = _inflight(seen)
    if inflight is not None:
        report.note(f"killed in {inflight['op']}")
    marks = [s["compact"] for s in seen if "compact" in s]
    if marks and marks[-1] == "begin":
        report.note("killed inside a compaction")
    check_store(store_dir, model, inflight, report)


def _account(seen: list[dict[str, Any]], model: Model, report: DrillReport) -> None:
    for line in seen:
        if "ack" in line:
            model.ack(line)
            report.note("acknowledged writes")
        elif "garbage" in line:
            report.fail(f"the writer printed {line['garbage']!r}", "writer crashed")


def _inflight(seen: list[dict[str, Any]]) -> dict[str, Any] | None:
    pending: dict[str, Any] | None = None
    for line in seen:
        if "pending" in line:
            pending = line["pending"]
        elif "ack" in line:
            pending = None
    return pending


def crash_drill(
    kills: int = 50, *, seed: int = 0, store_dir: str | Path | None = None
) -> DrillReport:
    """Run ``kills`` rounds on one store (a temporary one unless ``store_dir`` is given)."""
    report = DrillReport("crash at any point")
    rng = random.Random(seed)
    model = Model()
    with tempfile.TemporaryDirectory(prefix="memsift-crash-") as tmp:
        root = Path(store_dir) if store_dir is not None else Path(tmp)
        for _ in range(kills):
            one_round(root, model, rng, report)
    return report
