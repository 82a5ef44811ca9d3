"""The concurrency drill: many threads on one ``Memory``, many tasks on one ``AsyncMemory``.

Each worker (a thread, or a task) owns one user and runs a random mix of single and batched
adds, updates, deletes, an occasional ``delete_all`` of its user, and reads: searches and
``get_all`` of its own user and of the others'. It keeps the model of what its acknowledged
writes imply. The invariants, checked when every worker is done:

- no call raised anything but a documented :class:`~memsift.errors.MemsiftError` (and a
  correct program gets none of those here);
- every read of the worker's own user saw exactly its acknowledged state for the memories
  it had written (reads run between its own writes, so they are deterministic);
- the final state equals the models: each user's memories (text and metadata) and each
  memory's history (the acknowledged events, in order);
- the store agrees with itself: the count it reports (:meth:`VectorStore.count`) is the number
  of memories ``get_all`` lists, and each memory is found top-1 by its own text in its scope;
  on the ``faiss`` store, the in-memory index's live count is that number too.

Both drills run on the faiss store of :func:`~memsift.drills.writer.drill_config` by default;
``config`` (a temporary folder -> a ``Memory`` config) runs them on another store.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from memsift.async_memory import AsyncMemory
from memsift.builtin.faiss import FaissStore
from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config, word
from memsift.errors import MemsiftError
from memsift.memory import Memory

#: A temporary folder -> the config of the ``Memory`` a drill runs on.
ConfigFactory = Callable[[str], dict[str, Any]]


class Worker:
    """One worker's plan of calls and its model of its own user."""

    def __init__(self, index: int, seed: int, users: list[str]) -> None:
        self.user = users[index]
        self.users = users
        self.rng = random.Random(seed * 1000 + index)
        self.live: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (text, metadata)
        self.history: dict[str, list[tuple[str, str | None]]] = {}
        self.n = 0

    def next_call(self) -> tuple[str, Any]:
        """The next operation: a name and its arguments."""
        self.n += 1
        roll = self.rng.random()
        tag = f"{word(self.n)} {word(self.rng.randrange(1 << 20))} of {self.user}"
        meta = {"n": self.n, "by": self.user}
        if roll < 0.05:
            return "delete_all", None
        if roll < 0.4 or not self.live:
            count = 1 if roll < 0.25 else self.rng.randint(2, 5)
            return "add", ([f"note {word(i)} {tag}" for i in range(count)], meta)
        if roll < 0.55:
            return "update", (self.rng.choice(sorted(self.live)), f"changed {tag}", meta)
        if roll < 0.7:
            return "delete", self.rng.choice(sorted(self.live))
        if roll < 0.85:
            return "search", self.rng.choice(self.users)
        return "get_all", self.rng.choice(self.users)

    def acknowledge(self, name: str, args: Any, out: Any, report: DrillReport) -> None:
        """Fold a returned call into the model (and check the reads of its own user)."""
        report.note(name)
        if name == "add":
            texts, meta = args
            for r, text in zip(out["results"], texts, strict=True):
                self.live[r["id"]] = (text, meta)
                self.history[r["id"]] = [("ADD", text)]
        elif name == "update":
            memory_id, text, meta = args
            self.live[memory_id] = (text, meta)
            self.history[memory_id].append(("UPDATE", text))
        elif name == "delete":
            del self.live[args]
            self.history[args].append(("DELETE", None))
        elif name == "delete_all":
            for memory_id in self.live:
                self.history[memory_id].append(("DELETE", None))
            self.live.clear()
        elif name == "get_all" and args == self.user:
            seen = {r["id"]: (r["memory"], r["metadata"]) for r in out["results"]}
            if seen != self.live:
                report.fail(f"{self.user}: get_all saw {len(seen)}, expected {len(self.live)}")
        elif name in ("get_all", "search"):
            strangers = [r for r in out["results"] if r.get("user_id") != args]
            if strangers:
                report.fail(f"{self.user}: a read of {args} returned other users' memories")


def _call(m: Any, name: str, args: Any, user: str, query: str) -> Any:
    """The call ``name`` on ``m`` (a Memory, or an AsyncMemory: then an awaitable)."""
    if name == "add":
        return m.add(args[0] if len(args[0]) > 1 else args[0][0], user_id=user, metadata=args[1])
    if name == "update":
        return m.update(args[0], args[1], metadata=args[2])
    if name == "delete":
        return m.delete(args)
    if name == "delete_all":
        return m.delete_all(user_id=user)
    if name == "search":
        return m.search(query, user_id=args, top_k=5)
    return m.get_all(user_id=args, top_k=1000)


def _record_error(worker: Worker, name: str, exc: BaseException, report: DrillReport) -> None:
    kind = "documented error" if isinstance(exc, MemsiftError) else "raw error"
    report.fail(f"{worker.user}: {name} raised {type(exc).__name__}: {exc}", kind)


def check_final(m: Memory, workers: list[Worker], report: DrillReport) -> None:
    """Compare the store with the workers' models (see the module doc)."""
    total = 0
    for w in workers:
        got = m.get_all(user_id=w.user, top_k=100_000)["results"]
        total += len(got)
        seen = {r["id"]: (r["memory"], r["metadata"]) for r in got}
        if seen != w.live:
            missing = set(w.live) - set(seen)
            report.lost += len(missing)
            report.fail(f"{w.user}: final state differs ({len(missing)} missing)", "final state")
        for memory_id, events in w.history.items():
            pairs = [
                (e["event"], e["new_memory"] if e["event"] != "DELETE" else None)
                for e in m.history(memory_id)
            ]
            if pairs != events:
                report.fail(f"{memory_id}: history {pairs}, acknowledged {events}", "history")
        for r in got:
            hits = m.search(r["memory"], user_id=w.user, top_k=1, rerank=False)["results"]
            if [h["id"] for h in hits] != [r["id"]]:
                report.fail(f"{r['id']} not found top-1 by its own text", "index")
    counted = m.vector_store.count()
    if counted != total:
        report.fail(f"the store counts {counted} memories, get_all lists {total}", "count")
    if isinstance(m.vector_store, FaissStore):  # what its in-memory index holds
        live = m.vector_store.stats()["live"]
        if live != total:
            report.fail(f"index live {live} != stored {total}", "index")


def threads_drill(
    ops: int = 400, *, threads: int = 8, seed: int = 0, config: ConfigFactory | None = None
) -> DrillReport:
    """``threads`` threads, ``ops`` calls in all, on one ``Memory`` (the faiss store unless
    ``config`` makes another)."""
    report = DrillReport(f"{threads} threads, one Memory")
    users = [f"thread{word(i)}" for i in range(threads)]
    workers = [Worker(i, seed, users) for i in range(threads)]
    lock = threading.Lock()
    with (
        tempfile.TemporaryDirectory(prefix="memsift-threads-") as tmp,
        Memory.from_config((config or drill_config)(tmp)) as m,
    ):

        def run(w: Worker) -> None:
            for _ in range(ops // threads):
                name, args = w.next_call()
                query = f"note {word(w.rng.randrange(5))}"
                try:
                    out = _call(m, name, args, w.user, query)
                except BaseException as exc:  # reported, the worker goes on
                    with lock:
                        _record_error(w, name, exc, report)
                    continue
                with lock:
                    report.attempts += 1
                    w.acknowledge(name, args, out, report)

        pool = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        check_final(m, workers, report)
    return report


def tasks_drill(
    ops: int = 400, *, tasks: int = 50, seed: int = 0, config: ConfigFactory | None = None
) -> DrillReport:
    """``tasks`` tasks, ``ops`` calls in all (at least two each), on one ``AsyncMemory`` (the
    faiss store unless ``config`` makes another)."""
    report = DrillReport(f"{tasks} tasks, one AsyncMemory")
    users = [f"task{word(i)}" for i in range(tasks)]
    workers = [Worker(i, seed, users) for i in range(tasks)]
    with tempfile.TemporaryDirectory(prefix="memsift-tasks-") as tmp:
        settings = (config or drill_config)(tmp)

        async def main() -> None:
            async with AsyncMemory.from_config(settings) as am:

                async def run(w: Worker) -> None:
                    for _ in range(max(2, ops // tasks)):
                        name, args = w.next_call()
                        query = f"note {word(w.rng.randrange(5))}"
                        try:
                            out = await _call(am, name, args, w.user, query)
                        except BaseException as exc:  # reported, the task goes on
                            _record_error(w, name, exc, report)
                            continue
                        report.attempts += 1
                        w.acknowledge(name, args, out, report)

                await asyncio.gather(*(run(w) for w in workers))

        asyncio.run(main())
        with Memory.from_config(settings) as m:
            check_final(m, workers, report)
    return report
