"""A scope pin is one exact id: '*' (and lists, operator dicts) never widen a scope.

A pin is a user_id/agent_id/run_id keyword argument, or a scope key at the top level of
``filters`` or inside a top-level AND. Under OR and NOT, '*' keeps its meaning "present".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memsift import AsyncMemory, Memory
from memsift.cli import main
from memsift.errors import FilterError, ScopeError

STAR = "'*' means any value; a scope must be pinned to one id"


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }


def fill(m: Memory) -> None:
    m.add("alice likes tea", user_id="alice", agent_id="bot", metadata={"kind": "drink"})
    m.add("alice likes trains", user_id="alice", agent_id="bot", run_id="r1")
    m.add("bob likes coffee", user_id="bob", agent_id="bot", metadata={"kind": "drink"})
    m.add("bob likes boats", user_id="bob", agent_id="bot")


@pytest.fixture
def m(tmp_path: Path) -> Iterator[Memory]:
    with Memory.from_config(config(tmp_path)) as memory:
        fill(memory)
        yield memory


def counts(m: Memory) -> tuple[int, int]:
    return (
        len(m.get_all(user_id="alice", agent_id="bot")["results"]),
        len(m.get_all(user_id="bob", agent_id="bot")["results"]),
    )


# Every way a '*' can stand in a pin position, as the keyword arguments of a call.
STAR_PINS: list[dict[str, Any]] = [
    {"user_id": "*", "agent_id": "bot"},
    {"user_id": "alice", "agent_id": "*"},
    {"user_id": "alice", "run_id": "*"},
    {"filters": {"user_id": "*", "agent_id": "bot"}},
    {"filters": {"user_id": "*"}, "agent_id": "bot"},
    {"filters": {"agent_id": "*"}, "user_id": "alice"},
    {"filters": {"AND": [{"user_id": "*"}, {"agent_id": "bot"}]}},
    {"filters": {"AND": [{"AND": [{"user_id": "*"}]}], "agent_id": "bot"}},
    {"filters": {"agent_id": "bot", "AND": [{"kind": "drink"}, {"run_id": "*"}]}},
]


@pytest.mark.parametrize("kwargs", STAR_PINS)
def test_a_star_pin_is_refused_by_search_get_all_and_delete_all(
    m: Memory, kwargs: dict[str, Any]
) -> None:
    before = counts(m)
    with pytest.raises(ScopeError, match=STAR):
        m.search("likes", **kwargs)
    with pytest.raises(ScopeError, match=STAR):
        m.get_all(**kwargs)
    with pytest.raises(ScopeError, match=STAR):
        m.delete_all(**kwargs)
    assert counts(m) == before == (2, 2)


def test_the_reported_case(m: Memory) -> None:
    with pytest.raises(ScopeError) as info:
        m.search("likes", user_id="*", agent_id="bot")
    assert str(info.value).startswith("user_id='*': " + STAR)
    with pytest.raises(ScopeError) as info:
        m.delete_all(filters={"user_id": "*", "agent_id": "bot"})
    assert str(info.value).startswith('filters["user_id"]: ' + STAR)
    assert counts(m) == (2, 2)


@pytest.mark.parametrize(
    "filters",
    [
        {"user_id": {"ne": "alice"}, "agent_id": "bot"},
        {"user_id": {"exists": True}, "agent_id": "bot"},
        {"user_id": {"in": ["alice", "bob"]}, "agent_id": "bot"},
        {"user_id": ["alice", "bob"], "agent_id": "bot"},
        {"user_id": {"eq": "alice", "ne": "bob"}, "agent_id": "bot"},
        {"agent_id": "bot", "AND": [{"user_id": {"gte": "a"}}]},
    ],
)
def test_an_operator_or_list_pin_is_refused(m: Memory, filters: dict[str, Any]) -> None:
    pinned = "a scope must be pinned to one id"
    with pytest.raises(ScopeError, match=pinned):
        m.search("likes", filters=filters)
    with pytest.raises(ScopeError, match=pinned):
        m.get_all(filters=filters)
    with pytest.raises(ScopeError, match=pinned):
        m.delete_all(filters=filters)
    assert counts(m) == (2, 2)


def test_a_pin_may_be_written_as_eq(m: Memory) -> None:
    hits = m.get_all(filters={"user_id": {"eq": "alice"}, "agent_id": "bot"})["results"]
    assert {h["user_id"] for h in hits} == {"alice"} and len(hits) == 2
    # {"eq": "*"} is the literal id '*', which add() never stores: it matches nothing.
    assert m.get_all(filters={"user_id": {"eq": "*"}})["results"] == []


def test_star_under_or_and_not_still_means_present(m: Memory) -> None:
    either = {"OR": [{"user_id": "*"}, {"kind": "drink"}]}
    hits = m.search("likes", agent_id="bot", filters=either, top_k=50)["results"]
    assert {h["user_id"] for h in hits} == {"alice", "bob"} and len(hits) == 4
    no_run = m.get_all(agent_id="bot", filters={"NOT": [{"run_id": "*"}]})["results"]
    assert sorted(h["memory"] for h in no_run) == [
        "alice likes tea",
        "bob likes boats",
        "bob likes coffee",
    ]
    inside_and = {"AND": [{"agent_id": "bot"}, {"OR": [{"run_id": "*"}]}]}
    assert [h["memory"] for h in m.get_all(filters=inside_and)["results"]] == ["alice likes trains"]


def test_star_on_a_metadata_field_still_means_present(m: Memory) -> None:
    hits = m.get_all(user_id="alice", filters={"kind": "*"})["results"]
    assert [h["memory"] for h in hits] == ["alice likes tea"]
    assert m.delete_all(agent_id="bot", filters={"kind": "*"})["deleted"] == 2
    assert counts(m) == (1, 1)


@pytest.mark.parametrize("scope", ["user_id", "agent_id", "run_id"])
def test_add_refuses_a_star_id(m: Memory, scope: str) -> None:
    kwargs = {"user_id": "alice", scope: "*"}
    with pytest.raises(ScopeError, match=STAR):
        m.add("never stored", **kwargs)
    assert counts(m) == (2, 2)


def test_scope_error_is_a_filter_error(m: Memory) -> None:
    with pytest.raises(FilterError):
        m.search("likes", user_id="*")


def test_async_memory_refuses_star_pins(tmp_path: Path) -> None:
    with Memory.from_config(config(tmp_path)) as m:
        fill(m)

    async def scenario() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            for kwargs in STAR_PINS:
                with pytest.raises(ScopeError, match=STAR):
                    await am.search("likes", **kwargs)
                with pytest.raises(ScopeError, match=STAR):
                    await am.get_all(**kwargs)
                with pytest.raises(ScopeError, match=STAR):
                    await am.delete_all(**kwargs)
            with pytest.raises(ScopeError, match=STAR):
                await am.add("never stored", user_id="*", agent_id="bot")
            for user in ("alice", "bob"):
                assert len((await am.get_all(user_id=user))["results"]) == 2
            either = {"OR": [{"user_id": "*"}]}
            assert len((await am.get_all(agent_id="bot", filters=either))["results"]) == 4

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the command


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(tmp_path)))
    return str(path)


def run(*args: str) -> tuple[int, str]:
    """Exit code and output, the output's line wrapping undone."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, " ".join(result.output.split())


def test_cli_refuses_star_pins(config_file: str) -> None:
    for user in ("alice", "bob"):
        code, _ = run(
            "add",
            f"{user} likes tea",
            "--user-id",
            user,
            "--agent-id",
            "bot",
            "--config",
            config_file,
        )
        assert code == 0
    code, out = run(
        "search", "likes", "--user-id", "*", "--agent-id", "bot", "--config", config_file
    )
    assert code == 2 and "error:" in out and STAR in out and "Traceback" not in out
    star_filter = json.dumps({"user_id": "*", "agent_id": "bot"})
    code, out = run("search", "likes", "--filter", star_filter, "--config", config_file)
    assert code == 2 and STAR in out
    code, out = run(
        "compare", "likes", "--agent-id", "*", "--user-id", "alice", "--config", config_file
    )
    assert code == 2 and STAR in out
    code, out = run("add", "never", "--user-id", "*", "--config", config_file)
    assert code == 2 and STAR in out
    code, out = run(
        "search",
        "likes",
        "--user-id",
        "alice",
        "--agent-id",
        "bot",
        "--json",
        "--config",
        config_file,
    )
    assert code == 0
    assert [h["memory"] for h in json.loads(out)["results"]] == ["alice likes tea"]
