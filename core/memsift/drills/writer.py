"""The child process of the crash drill: a stream of writes, each announced and acknowledged.

``python -m memsift.drills.writer STORE_DIR SEED [CHURN_SHARE]`` opens the drill's store and
writes until it is killed: single adds, batched adds (``infer=False``), updates, deletes,
``delete_all`` of a scope, and now and then (a share CHURN_SHARE of the calls) a churn wave: a
batch of :data:`CHURN` memories deleted at once, which crosses the store's tombstone threshold
and compacts the index inside the ``delete_all``.

Before each call it prints ``{"pending": op}``; after the call returns, ``{"ack": op, ...}``
with what the call reported (each line flushed), so the parent knows which calls returned and
which one, at most, was in flight when the kill came. The store's compaction is wrapped to
print ``{"compact": "begin"}`` and ``{"compact": "end"}`` around it, so the parent can kill
inside one.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: How many memories a churn wave adds and deletes (past the store's COMPACT_MIN of 1024).
CHURN = 1100
#: The users whose memories the writer keeps (a small population, so checks stay fast).
USERS = ("u0", "u1", "u2", "u3")
#: Above this many live memories of a user, the writer deletes rather than adds.
KEEP = 60


def drill_embedder() -> dict[str, Any] | None:
    """The embedder the drills use: the deterministic ``hashing`` embedder of the test plugin
    when it is installed (fast), else None (the config's default, the built-in MiniLM)."""
    from memsift.errors import MemsiftError
    from memsift.registry import get_embedder

    try:
        get_embedder("hashing")
    except MemsiftError:
        return None
    return {"provider": "hashing", "config": {"dims": 1024}}


def drill_config(store_dir: str | Path) -> dict[str, Any]:
    """The config of a drill's store: :func:`drill_embedder`, faiss, and the history database
    inside the store directory."""
    root = Path(store_dir)
    config: dict[str, Any] = {
        "vector_store": {"provider": "faiss", "config": {"path": str(root / "store")}},
        "history_db_path": str(root / "history.db"),
    }
    embedder = drill_embedder()
    if embedder is not None:
        config["embedder"] = embedder
    return config


def word(n: int) -> str:
    """``n`` spelt in letters (the hashing embedder sees words, not digits)."""
    letters = ""
    while True:
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
        if not n:
            return letters


def say(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _instrument_compaction() -> None:
    from memsift.builtin.faiss.store import FaissStore

    original: Callable[..., None] = FaissStore._compact

    def compact(self: Any, *, force: bool) -> None:
        say({"compact": "begin"})
        original(self, force=force)
        say({"compact": "end"})

    FaissStore._compact = compact  # type: ignore[method-assign]


def run(
    store_dir: str, seed: int, churn_share: float = 0.03
) -> None:  # pragma: no cover - killed by the parent
    from memsift.memory import Memory

    _instrument_compaction()
    rng = random.Random(seed)
    m = Memory.from_config(drill_config(store_dir))
    live: dict[str, list[str]] = {
        u: [r["id"] for r in m.get_all(user_id=u, top_k=100_000)["results"]] for u in USERS
    }
    say({"ready": True})
    n = 0
    while True:
        n += 1
        user = rng.choice(USERS)
        tag = f"{word(seed)} {word(n)}"
        roll = rng.random()
        if roll < churn_share:
            op: dict[str, Any] = {"op": "churn", "n": CHURN, "tag": tag}
            say({"pending": op})
            m.add([f"churn {tag} {word(i)}" for i in range(CHURN)], user_id="churn", infer=False)
            out = m.delete_all(user_id="churn")
            say({"ack": op, "deleted": out["deleted"]})
        elif roll < churn_share + 0.03 or len(live[user]) > KEEP:
            op = {"op": "delete_all", "user": user}
            say({"pending": op})
            out = m.delete_all(user_id=user)
            live[user] = []
            say({"ack": op, "deleted": out["deleted"]})
        elif roll < 0.45 or not live[user]:
            count = 1 if roll < 0.3 else rng.randint(2, 8)
            texts = [f"memory {tag} {word(i)} of {user}" for i in range(count)]
            meta = {"n": n, "tag": tag, "mixed": [1.5, None, "x"], "nested": {"deep": {"er": n}}}
            op = {"op": "add", "user": user, "texts": texts, "metadata": meta}
            say({"pending": op})
            arg: Any = texts[0] if count == 1 else texts
            out = m.add(arg, user_id=user, metadata=meta, infer=False)
            ids = [r["id"] for r in out["results"]]
            live[user].extend(ids)
            say({"ack": op, "records": [m.get(i) for i in ids]})
        elif roll < 0.75:
            target = rng.choice(live[user])
            text = f"updated {tag} of {user}"
            meta = {"n": n, "updated": True}
            op = {"op": "update", "user": user, "id": target, "text": text, "metadata": meta}
            say({"pending": op})
            m.update(target, text, metadata=meta)
            say({"ack": op, "record": m.get(target)})
        else:
            target = rng.choice(live[user])
            op = {"op": "delete", "user": user, "id": target}
            say({"pending": op})
            m.delete(target)
            live[user].remove(target)
            say({"ack": op})


if __name__ == "__main__":  # pragma: no cover
    run(sys.argv[1], int(sys.argv[2]), *(float(a) for a in sys.argv[3:4]))
