"""The tenant-isolation drill: scoped calls whose extra filters try to leave the scope.

Many users hold the same texts (and the same metadata). Random ``search``, ``get_all`` and
``delete_all`` calls pin one user (sometimes also an agent) and add a filter that tries to
reach another: ``OR`` with another user, ``NOT`` of the pinned one, nested ``AND``/``OR``,
``ne`` / ``in`` on ``user_id`` under ``OR``, a second pin in the filter. The drill keeps its
own model of what every user holds (written here, not read back through the filter code) and
checks after every call:

- every result belongs to the pinned scope, and ``get_all`` returns nothing the pinned scope
  does not hold;
- a ``delete_all`` deletes only memories of the pinned scope: every other memory is still
  there, exactly (the model's ids against the store's);
- a call that raises is a documented :class:`~memsift.errors.MemsiftError` and deletes
  nothing.
"""

from __future__ import annotations

import random
import tempfile
from typing import Any

from memsift.drills.report import DrillReport
from memsift.drills.writer import drill_config, word
from memsift.errors import MemsiftError
from memsift.memory import Memory

TEXTS = [f"shared fact {word(i)} about {word(i * 7 + 3)}" for i in range(12)]
TOPICS = ("food", "travel", "work")


def _escape(rng: random.Random, me: str, other: str) -> dict[str, Any] | None:
    """A filter that tries to reach ``other``'s memories from a call pinned to ``me``."""
    topic = rng.choice(TOPICS)
    return rng.choice(
        [
            None,
            {"OR": [{"user_id": other}, {"topic": topic}]},
            {"NOT": [{"user_id": me}]},
            {"OR": [{"NOT": [{"user_id": me}]}, {"user_id": other}]},
            {"AND": [{"OR": [{"user_id": other}, {"user_id": me}]}, {"topic": topic}]},
            {"OR": [{"user_id": {"ne": me}}, {"user_id": {"in": [other, me]}}]},
            {"OR": [{"AND": [{"user_id": other}]}, {"agent_id": {"exists": False}}]},
            {"NOT": [{"NOT": [{"user_id": other}]}]},
            {"user_id": other},  # a second, conflicting pin
            {"AND": [{"user_id": other}, {"topic": topic}]},
            {"OR": [{"created_at": {"exists": True}}, {"n": {"gte": 0}}]},
            {"NOT": [{"topic": topic}, {"user_id": me}]},
        ]
    )


def _model_key(rec: dict[str, Any]) -> tuple[str, str | None]:
    return rec["user_id"], rec.get("agent_id")


def tenants_drill(ops: int = 400, *, users: int = 12, seed: int = 0) -> DrillReport:
    """``ops`` random scoped calls over ``users`` users (refilled as they are emptied)."""
    report = DrillReport("tenant isolation")
    rng = random.Random(seed)
    names = [f"user{word(i)}" for i in range(users)]
    with (
        tempfile.TemporaryDirectory(prefix="memsift-tenants-") as tmp,
        Memory.from_config(drill_config(tmp)) as m,
    ):
        model: dict[str, dict[str, Any]] = {}  # id -> {"user_id", "agent_id"}

        def fill(user: str) -> None:
            for agent in (None, "agent"):
                texts = rng.sample(TEXTS, 4)
                meta = {"topic": rng.choice(TOPICS), "n": rng.randrange(10)}
                out = m.add(texts, user_id=user, agent_id=agent, metadata=meta, infer=False)
                for r in out["results"]:
                    model[r["id"]] = {"user_id": user, "agent_id": agent}

        for user in names:
            fill(user)
        for _ in range(ops):
            me, other = rng.sample(names, 2)
            scope: dict[str, Any] = {"user_id": me}
            if rng.random() < 0.3:
                scope["agent_id"] = "agent"
            extra = _escape(rng, me, other)
            method = rng.choice(["search", "get_all", "delete_all"])
            mine = {
                i
                for i, r in model.items()
                if r["user_id"] == me
                and ("agent_id" not in scope or r["agent_id"] == scope["agent_id"])
            }
            report.attempts += 1
            label = f"{method} pinned {scope} with {extra}"
            try:
                if method == "search":
                    got = m.search(rng.choice(TEXTS), filters=extra, top_k=50, **scope)
                    found = {h["id"] for h in got["results"]}
                elif method == "get_all":
                    got = m.get_all(filters=extra, top_k=1000, **scope)
                    found = {h["id"] for h in got["results"]}
                else:
                    m.delete_all(filters=extra, **scope)
                    found = set()
            except MemsiftError as exc:
                report.note(type(exc).__name__)
                found = set()
            except Exception as exc:
                report.fail(f"{label}: {type(exc).__name__}: {exc}", "raw error")
                found = set()
            if found - mine:
                report.fail(f"{label}: {len(found - mine)} results of other scopes", "leak")
            stored = {r["id"] for u in names for r in m.get_all(user_id=u, top_k=1000)["results"]}
            gone = set(model) - stored
            if gone - mine:
                report.lost += len(gone - mine)
                report.fail(f"{label}: deleted {len(gone - mine)} of other scopes", "leak")
            if stored - set(model) or m.vector_store.count() != len(stored):
                report.fail(f"{label}: unknown memories appeared", "unknown memory")
            for i in gone:
                del model[i]
            if gone:
                report.note("deleted within the scope", len(gone))
            if not any(r["user_id"] == me for r in model.values()):
                fill(me)
    return report
