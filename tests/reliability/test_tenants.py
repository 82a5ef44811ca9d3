"""Tenant isolation: scoped search, get_all and delete_all with filters that try to leave the
scope never return nor delete another scope's memories (against the drill's own model)."""

from __future__ import annotations

import tempfile

from memsift.drills.tenants import tenants_drill
from memsift.drills.writer import drill_config
from memsift.memory import Memory

from .conftest import DrillSizes, DrillTable


def test_no_call_leaves_its_scope(sizes: DrillSizes, drill_table: DrillTable) -> None:
    report = tenants_drill(sizes.ops, seed=sizes.seed)
    drill_table(report)
    assert report.attempts == sizes.ops
    assert report.ok, report.problems
    assert report.notes["deleted within the scope"] > 0  # delete_all did delete, in scope


def test_an_or_with_another_user_stays_in_scope() -> None:
    with tempfile.TemporaryDirectory() as tmp, Memory.from_config(drill_config(tmp)) as m:
        m.add("the same text", user_id="alice")
        m.add("the same text", user_id="bob")
        escape = {"OR": [{"user_id": "bob"}, {"NOT": [{"user_id": "alice"}]}]}
        hits = m.search("the same text", user_id="alice", filters=escape)["results"]
        assert {h["user_id"] for h in hits} <= {"alice"}
        m.delete_all(user_id="alice", filters=escape)
        assert len(m.get_all(user_id="bob")["results"]) == 1
