"""The processes drill: several processes on one store path, like web workers.

Each child (:mod:`memsift.drills.process_worker`) holds one ``Memory`` on the same faiss store
and owns some users; the parent plans every call (a :class:`~memsift.drills.concurrency.Worker`
per user: single and batched adds, updates, deletes, ``delete_all``, searches and ``get_all``
of its own user and of others) and keeps the model of what the acknowledged writes imply. The
store's compaction threshold is lowered in the children so that the deletes cross it several
times. Two kinds of rounds alternate:

- a *probe*: one process writes; as soon as it acknowledges, another process's very next calls
  (``get``, a top-1 ``search`` by the text, ``get_all`` of the user) must see exactly the
  acknowledged state -- the README's model: every call sees every write other processes
  committed before it began. Anything else is a ``stale read``;
- a *free-running* round: every process runs one call per user it owns, all at once, so that
  writes contend for SQLite's write lock and compactions land under the others' feet.

Now and then (once in a run of 400 calls) a process is SIGKILLed a few milliseconds into a
large batched add and replaced; its unacknowledged add may be wholly there or wholly absent
(any other outcome is a ``partial write``), its acknowledged writes must all be there.

The invariants, checked at the end on a fresh open (as the concurrency drill does):
the store holds exactly the union of the acknowledged states (text, metadata, history),
nothing is lost, the index agrees with SQLite (the count, each memory top-1 by its own text in
its scope), and no process raised anything undocumented. A write that waited more than the
store's busy timeout for the lock is a documented ``StoreError`` (noted as ``lock timeouts``;
with this load there should be none).
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memsift.drills.concurrency import Worker, check_final
from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config, word
from memsift.memory import Memory

#: The command that starts a child (then STORE_DIR NAME COMPACT_MIN).
CHILD = (sys.executable, "-m", "memsift.drills.process_worker")
#: The compaction threshold (tombstoned slots) in the children.
COMPACT_MIN = 25
#: Users each process owns.
USERS_EACH = 2
#: How long a reply may take (a cold start on a busy machine, a write waiting for the lock).
REPLY_TIMEOUT = 90.0
#: Memories in the batched add that the kill lands in.
KILL_BATCH = 300
#: The kill comes at a random moment this many seconds after the add was sent (such an add
#: takes 0.05 to 0.1 s with the drill's embedder: most kills land inside it).
KILL_WITHIN = 0.08
WRITES = ("add", "update", "delete", "delete_all")


class DrillAbort(Exception):
    """A child died or hung: the drill cannot go on."""


class Child:
    """One child process and the lines it printed."""

    def __init__(self, command: Sequence[str], store_dir: Path, name: str) -> None:
        self.name = name
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by kill() or close()
        self.proc = subprocess.Popen(
            [*command, str(store_dir), name, str(COMPACT_MIN)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.counts: dict[str, int] = {}
        try:
            self.receive()  # ready
        except DrillAbort:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.err.close()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                self.lines.put({"error": f"printed {raw[:200]!r}", "documented": False})
        self.lines.put(None)

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise DrillAbort(f"{self.name}: cannot send ({exc}){self.stderr()}") from exc

    def receive(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            raise DrillAbort(f"{self.name}: no reply in {REPLY_TIMEOUT:g} s") from None
        if line is None:  # its stdout closed: it ended (or is ending)
            try:
                status: int | None = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                status = None
            raise DrillAbort(f"{self.name} died (status {status}){self.stderr()}")
        self.counts = {k: line[k] for k in ("compactions", "loads") if k in line}
        return line

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.send(cmd)
        return self.receive()

    def stderr(self) -> str:
        self.err.seek(0)
        tail = self.err.read().decode(errors="replace")[-800:]
        return f": {tail}" if tail else ""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.err.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask({"op": "exit"})
                self.proc.wait(timeout=30)
            except (DrillAbort, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.err.close()


def command(name: str, args: Any, user: str, query: str) -> dict[str, Any]:
    """The child command of a :class:`Worker` call."""
    if name == "add":
        return {"op": "add", "texts": args[0], "user": user, "metadata": args[1]}
    if name == "update":
        return {"op": "update", "id": args[0], "text": args[1], "metadata": args[2]}
    if name == "delete":
        return {"op": "delete", "id": args}
    if name == "delete_all":
        return {"op": "delete_all", "user": user}
    if name == "search":
        return {"op": "search", "query": query, "user": args}
    return {"op": "get_all", "user": args}


class Drill:
    """The state of one run: the children, who owns which user, the report."""

    def __init__(self, ops: int, processes: int, seed: int, child: Sequence[str]) -> None:
        self.report = DrillReport(f"{processes} processes, one store path")
        self.rng = random.Random(seed)
        self.ops = ops
        self.child = tuple(child)
        users = [f"proc{word(i)}" for i in range(processes * USERS_EACH)]
        self.workers = [Worker(i, seed, users) for i in range(len(users))]
        self.owner = [i // USERS_EACH for i in range(len(users))]
        self.children: list[Child] = []
        self.calls = 0

    def start(self, store_dir: Path, processes: int) -> None:
        self.store_dir = store_dir
        Memory.from_config(drill_config(store_dir)).close()  # created before the race
        self.children = [Child(self.child, store_dir, f"p{i}") for i in range(processes)]

    # ------------------------------------------------------------------ one call

    def judge(self, w: Worker, name: str, args: Any, reply: dict[str, Any]) -> bool:
        """Fold a reply into the model; True when the call succeeded."""
        self.calls += 1
        if "error" in reply:
            if reply.get("lock"):
                self.report.note("lock timeouts")  # documented; the write changed nothing
            else:
                kind = "documented error" if reply.get("documented") else "raw error"
                self.report.fail(f"{w.user}: {name} raised {reply['error']}", kind)
            return False
        self.report.attempts += 1
        w.acknowledge(name, args, reply["ok"], self.report)
        return True

    def plan(self, w: Worker) -> tuple[str, Any, dict[str, Any]]:
        name, args = w.next_call()
        query = f"note {word(w.rng.randrange(5))}"
        return name, args, command(name, args, w.user, query)

    # ------------------------------------------------------------------ the rounds

    def probe_round(self) -> None:
        """One process writes; another's next calls must see exactly that write."""
        index = self.rng.randrange(len(self.workers))
        w, a = self.workers[index], self.owner[index]
        while True:
            name, args, cmd = self.plan(w)
            reply = self.children[a].ask(cmd)
            ok = self.judge(w, name, args, reply)
            if name in WRITES or self.calls >= self.ops:
                break
        if not ok or name not in WRITES:
            return
        b = self.rng.choice([i for i in range(len(self.children)) if i != a])
        self.probe(self.children[b], w, name, args, reply["ok"])

    def probe(self, reader: Child, w: Worker, name: str, args: Any, out: Any) -> None:
        """``reader`` reads what ``w`` just acknowledged (see the module doc)."""
        report = self.report
        report.note("probes")
        touched: list[str] = []
        if name == "add":
            touched = [r["id"] for r in out["results"]]
        elif name in ("update", "delete"):
            touched = [args[0] if name == "update" else args]
        for memory_id in touched:
            got = self._read(reader, {"op": "get", "id": memory_id})
            live = w.live.get(memory_id)
            want = None if live is None else {"memory": live[0], "metadata": live[1]}
            have = None if got is None else {"memory": got["memory"], "metadata": got["metadata"]}
            if have != want:
                report.fail(f"{reader.name}: get({memory_id}) after {name}: {have}", "stale read")
            text = live[0] if live is not None else w.history[memory_id][-2][1]
            hits = self._read(reader, {"op": "search", "query": text, "user": w.user, "top_k": 1})
            ids = [h["id"] for h in (hits or {"results": []})["results"]]
            if (live is not None) != (ids == [memory_id]):
                report.fail(f"{reader.name}: top-1 of {text!r} after {name}: {ids}", "stale read")
        listed = self._read(reader, {"op": "get_all", "user": w.user})
        seen = {
            r["id"]: (r["memory"], r["metadata"]) for r in (listed or {"results": []})["results"]
        }
        if seen != w.live:
            report.fail(
                f"{reader.name}: get_all({w.user}) after {name}: {len(seen)} of {len(w.live)}",
                "stale read",
            )

    def _read(self, reader: Child, cmd: dict[str, Any]) -> Any:
        reply = reader.ask(cmd)
        self.report.note("probe reads")
        if "error" in reply:
            kind = "documented error" if reply.get("documented") else "raw error"
            self.report.fail(f"{reader.name}: probe {cmd['op']} raised {reply['error']}", kind)
            return None
        return reply["ok"]

    def free_round(self) -> None:
        """Every process runs one call per user it owns, all processes at once."""
        self.report.note("free rounds")
        sent: list[tuple[Child, Worker, str, Any]] = []
        for index, w in enumerate(self.workers):
            name, args, cmd = self.plan(w)
            child = self.children[self.owner[index]]
            child.send(cmd)
            sent.append((child, w, name, args))
        for child, w, name, args in sent:
            self.judge(w, name, args, child.receive())

    def kill_round(self) -> None:
        """SIGKILL a process inside a large batched add; replace it; adopt the outcome."""
        index = self.rng.randrange(len(self.workers))
        w, k = self.workers[index], self.owner[index]
        tag = f"{word(self.rng.randrange(1 << 20))} of {w.user}"
        # three words of its own in each text: the drill's hashing embedder maps words to
        # 1024 buckets, and texts apart by one word tie too often (a tie is not a defect)
        texts = [
            f"bulk {word(i)} {word(self.rng.randrange(1 << 20))} "
            f"{word(self.rng.randrange(1 << 20))} {tag}"
            for i in range(KILL_BATCH)
        ]
        meta = {"bulk": True, "by": w.user}
        victim = self.children[k]
        victim.send({"op": "add", "texts": texts, "user": w.user, "metadata": meta})
        time.sleep(self.rng.uniform(0.0, KILL_WITHIN))
        acked = not victim.lines.empty()
        victim.kill()
        self.report.note("kills")
        replacement = Child(self.child, self.store_dir, f"{victim.name}r")
        self.children[k] = replacement
        extra: dict[str, tuple[str, Any]] = {}
        for other, owner in zip(self.workers, self.owner, strict=True):
            if owner != k:
                continue
            listed = self._read(replacement, {"op": "get_all", "user": other.user})
            seen = {
                r["id"]: (r["memory"], r["metadata"])
                for r in (listed or {"results": []})["results"]
            }
            lost = {i for i, v in other.live.items() if seen.get(i) != v}
            if lost:
                self.report.lost += len(lost)
                self.report.fail(
                    f"{other.user}: {len(lost)} acknowledged memories gone after a kill", "lost"
                )
            unknown = {i: v for i, v in seen.items() if i not in other.live}
            if other is w:
                extra = unknown
            elif unknown:
                self.report.fail(f"{other.user}: {len(unknown)} unknown memories", "partial write")
        whole = sorted(((t, meta) for t in texts), key=str)
        if extra and sorted(extra.values(), key=str) != whole:
            self.report.fail(f"{w.user}: {len(extra)} of {KILL_BATCH} killed adds", "partial write")
        if acked and not extra:
            self.report.fail(f"{w.user}: an acknowledged add is gone after a kill", "lost")
        self.report.note("killed add present" if extra else "killed add absent")
        if acked:
            self.report.note("killed after its reply")
        for memory_id, (text, _) in extra.items():
            w.live[memory_id] = (text, meta)
            w.history[memory_id] = [("ADD", text)]

    def finish(self) -> None:
        for child in self.children:
            child.close()
            self.report.note("compactions", child.counts.get("compactions", 0))
            self.report.note("reloads", max(0, child.counts.get("loads", 0) - 1))
        self.children = []
        with Memory.from_config(drill_config(self.store_dir)) as m:
            check_final(m, self.workers, self.report)


def processes_drill(
    ops: int = 400,
    *,
    processes: int = 3,
    seed: int = 0,
    kills: int | None = None,
    child: Sequence[str] = CHILD,
) -> DrillReport:
    """``processes`` processes, about ``ops`` calls in all (plus the probes' reads), on one
    faiss store path. ``kills``: the SIGKILLs inside a batched add, spread over the run (by
    default one per 400 calls, at least one). ``child`` is the command that starts a worker
    (STORE_DIR NAME COMPACT_MIN are appended)."""
    if processes < 2:
        raise ValueError("the processes drill needs at least two processes")
    kills = max(1, ops // 400) if kills is None else kills
    at = [ops * (k + 1) // (kills + 1) for k in range(kills)]  # the calls the kills follow
    drill = Drill(ops, processes, seed, child)
    with tempfile.TemporaryDirectory(prefix="memsift-processes-") as tmp:
        try:
            drill.start(Path(tmp), processes)
            while drill.calls < ops:
                if at and drill.calls >= at[0]:
                    at.pop(0)
                    drill.kill_round()
                elif drill.rng.random() < 0.5:
                    drill.probe_round()
                else:
                    drill.free_round()
            drill.finish()
        except DrillAbort as exc:
            drill.report.fail(str(exc), "process died")
        finally:
            for c in drill.children:
                if c.proc.poll() is None:
                    c.proc.kill()
                    c.proc.wait(timeout=30)
    return drill.report
