"""The child process of the processes drill: one ``Memory`` on the drill's store, driven by
its parent through a pipe, one JSON line per call each way.

``python -m memsift.drills.process_worker STORE_DIR NAME [COMPACT_MIN]`` opens the drill's
store (:func:`~memsift.drills.writer.drill_config`), prints ``{"ready": true}``, then answers
each command line (``{"op": ..., ...}``, see :func:`execute`) with ``{"ok": result}`` or
``{"error": ...}`` (the exception's type and message, whether it is a documented
:class:`~memsift.errors.MemsiftError`, and whether it is the store's write-lock timeout),
plus what its store did so far: the index compactions it ran and the times it (re)loaded
its index from SQLite. ``{"op": "exit"}`` closes the ``Memory`` and ends the process.

``COMPACT_MIN`` lowers the faiss store's compaction threshold (its ``COMPACT_MIN``, and its
``COMPACT_SHARE`` to :data:`COMPACT_SHARE`) so that a short drill crosses it several times.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

#: The phrase of the StoreError of a write that waited too long for the write lock.
LOCK_TIMEOUT = "held the store's write lock"

#: The faiss store's compaction share (of tombstoned slots) when COMPACT_MIN is lowered.
COMPACT_SHARE = 0.1

#: What the store did in this process (counted by :func:`_instrument`).
COUNTS = {"compactions": 0, "loads": 0}


def _instrument(compact_min: int | None) -> None:
    """Count compactions and index (re)loads; lower the compaction threshold."""
    from memsift.builtin.faiss import index, store, sync

    if compact_min is not None:
        index.COMPACT_MIN = compact_min
        index.COMPACT_SHARE = COMPACT_SHARE
    # the store module's own name for the function, which it calls once per compaction
    compacted: Callable[..., Any] = getattr(store, "compacted_index")  # noqa: B009
    load: Callable[..., None] = sync.SyncedStore._load

    def counted_compaction(*args: Any, **kwargs: Any) -> Any:
        COUNTS["compactions"] += 1
        return compacted(*args, **kwargs)

    def counted_load(self: Any, state: Any) -> None:
        COUNTS["loads"] += 1
        load(self, state)

    setattr(store, "compacted_index", counted_compaction)  # noqa: B010
    sync.SyncedStore._load = counted_load  # type: ignore[method-assign]


def _short(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("id", "memory", "metadata", "user_id")}


def execute(m: Any, cmd: dict[str, Any]) -> Any:
    """Run one command on ``m`` and return its JSON-able result (the shape ``Memory``
    returns, records cut to id, text, metadata and user)."""
    op = cmd["op"]
    if op == "add":
        texts = cmd["texts"]
        out = m.add(
            texts[0] if len(texts) == 1 else texts,
            user_id=cmd["user"],
            metadata=cmd["metadata"],
            infer=False,
        )
        return {"results": [_short(r) for r in out["results"]]}
    if op == "update":
        m.update(cmd["id"], cmd["text"], metadata=cmd["metadata"])
        return True
    if op == "delete":
        m.delete(cmd["id"])
        return True
    if op == "delete_all":
        return m.delete_all(user_id=cmd["user"])["deleted"]
    if op == "get":
        from memsift.errors import MemoryNotFoundError

        try:
            return _short(m.get(cmd["id"]))
        except MemoryNotFoundError:
            return None
    if op == "search":
        out = m.search(cmd["query"], user_id=cmd["user"], top_k=cmd.get("top_k", 5), rerank=False)
        return {"results": [_short(r) for r in out["results"]]}
    if op == "get_all":
        out = m.get_all(user_id=cmd["user"], top_k=100_000)
        return {"results": [_short(r) for r in out["results"]]}
    if op == "history":
        return [[e["event"], e["new_memory"]] for e in m.history(cmd["id"])]
    raise ValueError(f"unknown command {op!r}")


def answer(m: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    """The reply line to ``cmd``: its result or its error, and the counts so far."""
    from memsift.errors import MemsiftError

    try:
        reply: dict[str, Any] = {"ok": execute(m, cmd)}
    except Exception as exc:  # reported to the parent, which judges it
        reply = {
            "error": f"{type(exc).__name__}: {exc}",
            "documented": isinstance(exc, MemsiftError),
            "lock": isinstance(exc, MemsiftError) and LOCK_TIMEOUT in str(exc),
        }
    reply.update(COUNTS)
    return reply


def main(argv: list[str]) -> None:  # pragma: no cover - run as a child by the drill
    from memsift.drills.writer import drill_config, say
    from memsift.memory import Memory

    store_dir = argv[0]
    _instrument(int(argv[2]) if len(argv) > 2 else None)
    with Memory.from_config(drill_config(store_dir)) as m:
        say({"ready": True, **COUNTS})
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "exit":
                break
            say(answer(m, cmd))
    say({"bye": True, **COUNTS})


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
