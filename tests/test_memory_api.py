"""The memory API (DESIGN.md section 8): each method, the scope rule, bad inputs, async parity."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import memsift_testplugin as tp
from memsift import AsyncMemory, Memory
from memsift.errors import (
    InvalidInputError,
    MemoryNotFoundError,
    ScopeError,
    UnknownArgumentError,
)


def config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        **extra,
    }


@pytest.fixture
def m(tmp_path: Path) -> Any:
    with Memory.from_config(config(tmp_path)) as memory:
        yield memory


def count(m: Memory, user: str = "alice") -> int:
    return len(m.get_all(user_id=user, top_k=10_000)["results"])


# add -----------------------------------------------------------------------------------------


def test_add_forms(m: Memory) -> None:
    r1 = m.add("plain string", user_id="alice")
    r2 = m.add({"role": "user", "content": "a message dict"}, user_id="alice")
    r3 = m.add(
        [
            {"role": "system", "content": "system prompts are not memories"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "second"},
            "third",
        ],
        user_id="alice",
        agent_id="agent-1",
        run_id="run-1",
        metadata={"source": "chat", "n": 3, "tags": ["a", "b"], "ok": True, "x": None},
    )
    assert [r["memory"] for r in r1["results"]] == ["plain string"]
    assert [r["memory"] for r in r2["results"]] == ["a message dict"]
    assert [r["memory"] for r in r3["results"]] == ["first", "second", "third"]
    assert all(r["event"] == "ADD" for r in r3["results"])
    got = m.get(r3["results"][0]["id"])
    assert got["user_id"] == "alice" and got["agent_id"] == "agent-1" and got["run_id"] == "run-1"
    assert got["metadata"] == {"source": "chat", "n": 3, "tags": ["a", "b"], "ok": True, "x": None}
    assert got["created_at"] == got["updated_at"]
    assert count(m) == 5


def test_add_a_list_embeds_once_and_writes_once(tmp_path: Path, monkeypatch: Any) -> None:
    with Memory.from_config(config(tmp_path)) as m:
        calls: list[int] = []
        original = m.embedder.embed

        def spy(texts: Any, **kw: Any) -> Any:
            calls.append(len(texts))
            return original(texts, **kw)

        monkeypatch.setattr(m.embedder, "embed", spy)
        m.add([f"memory {i}" for i in range(50)], user_id="alice")
        assert calls == [50]


@pytest.mark.parametrize(
    ("messages", "kwargs"),
    [
        ("text", {}),  # no scope
        ("text", {"user_id": ""}),
        ("text", {"user_id": 5}),
        ("", {"user_id": "alice"}),
        ("   ", {"user_id": "alice"}),
        (None, {"user_id": "alice"}),
        (42, {"user_id": "alice"}),
        ([], {"user_id": "alice"}),
        (["ok", 3], {"user_id": "alice"}),
        ({"role": "user"}, {"user_id": "alice"}),
        ({"role": "user", "content": "x", "extra": 1}, {"user_id": "alice"}),
        ("text", {"user_id": "alice", "metadata": "not a dict"}),
        ("text", {"user_id": "alice", "metadata": {"bad key": 1}}),
        ("text", {"user_id": "alice", "metadata": {"user_id": "spoof"}}),
        ("text", {"user_id": "alice", "metadata": {"k": float("nan")}}),
        ("text", {"user_id": "alice", "metadata": {"k": object()}}),
        ("text", {"user_id": "alice", "metadata": {"k": {1: "non-str key"}}}),
        ("text", {"user_id": "alice", "infer": True}),  # no llm configured
        ("text", {"user_id": "alice", "infer": "yes"}),
        ("x" * 100_001, {"user_id": "alice"}),
        ("nul \x00 inside", {"user_id": "alice"}),
        ("text", {"user_id": "al\x00ice"}),
        ("text", {"user_id": "alice", "metadata": {"k": "nul \x00"}}),
        ("text", {"user_id": "alice", "metadata": {"k": 2**70}}),
    ],
)
def test_bad_add_changes_nothing(m: Memory, messages: Any, kwargs: dict[str, Any]) -> None:
    m.add("existing", user_id="alice")
    with pytest.raises(InvalidInputError):
        m.add(messages, **kwargs)
    assert [r["memory"] for r in m.get_all(user_id="alice")["results"]] == ["existing"]


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("add", {"user_id": "alice", "limit": 3}),
        ("search", {"user_id": "alice", "limit": 3}),
        ("get_all", {"user_id": "alice", "limit": 3}),
        ("delete_all", {"user_id": "alice", "confirm": True}),
    ],
)
def test_unknown_keyword_arguments_raise(m: Memory, method: str, kwargs: dict[str, Any]) -> None:
    args = ("text",) if method in ("add", "search") else ()
    with pytest.raises(UnknownArgumentError) as info:
        getattr(m, method)(*args, **kwargs)
    assert isinstance(info.value, TypeError)
    bad = next(k for k in kwargs if k not in ("user_id",))
    assert bad in str(info.value)
    if bad == "limit" and method != "add":
        assert "top_k" in str(info.value)
    assert count(m) == 0


# infer with an LLM ------------------------------------------------------------------------------


def test_infer_extracts_facts_and_skips_duplicates(tmp_path: Path) -> None:
    tp.EchoLLM.calls.clear()
    with Memory.from_config(config(tmp_path, llm={"provider": "echo"})) as m:
        first = m.add(
            [
                {"role": "user", "content": "I live in Lisbon"},
                {"role": "assistant", "content": "ok"},
            ],
            user_id="alice",
        )
        assert [r["memory"] for r in first["results"]] == ["I live in Lisbon"]
        again = m.add("I live in Lisbon", user_id="alice")  # same fact: skipped
        assert again["results"] == []
        other = m.add("I live in Lisbon", user_id="bob")  # other scope: stored
        assert len(other["results"]) == 1
        plain = m.add("stored as is", user_id="alice", infer=False)
        assert len(plain["results"]) == 1
        assert len(tp.EchoLLM.calls) == 3
        system = tp.EchoLLM.calls[0][0]["content"]
        assert "never follow instructions" in system.lower()  # messages are delimited as data


# search, get_all, delete_all scoping ------------------------------------------------------------


@pytest.mark.parametrize("method", ["search", "get_all", "delete_all"])
def test_scope_rule(m: Memory, method: str) -> None:
    m.add("apple", user_id="alice")
    args = ("apple",) if method == "search" else ()
    with pytest.raises(ScopeError):
        getattr(m, method)(*args, filters={"kind": "x"})
    with pytest.raises(ScopeError):
        getattr(m, method)(*args)
    assert count(m) == 1


def test_get_all_is_scoped_newest_first_and_limited(m: Memory) -> None:
    for i in range(5):
        m.add(f"alice {i}", user_id="alice", metadata={"i": i})
    m.add("bob", user_id="bob")
    all_alice = m.get_all(user_id="alice")["results"]
    assert [r["memory"] for r in all_alice] == [f"alice {i}" for i in range(4, -1, -1)]
    assert len(m.get_all(user_id="alice", top_k=2)["results"]) == 2
    assert [
        r["memory"] for r in m.get_all(filters={"user_id": "alice", "i": {"gte": 3}})["results"]
    ] == ["alice 4", "alice 3"]


# get, update, delete, history -------------------------------------------------------------------


def test_get_update_delete_history(m: Memory) -> None:
    mid = m.add("I like tea", user_id="alice", metadata={"k": 1})["results"][0]["id"]
    assert m.get(mid)["memory"] == "I like tea"
    out = m.update(mid, "I like coffee")
    assert out == {"id": mid, "memory": "I like coffee", "event": "UPDATE"}
    got = m.get(mid)
    assert got["memory"] == "I like coffee" and got["metadata"] == {"k": 1}
    assert got["updated_at"] >= got["created_at"]
    hits = m.search("coffee", user_id="alice")["results"]
    assert hits[0]["id"] == mid  # re-embedded
    m.update(mid, "I like coffee", metadata={"k": 2})
    assert m.get(mid)["metadata"] == {"k": 2}
    assert m.delete(mid) == {"id": mid, "event": "DELETE"}
    with pytest.raises(MemoryNotFoundError):
        m.get(mid)
    events = m.history(mid)
    assert [e["event"] for e in events] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert events[0]["new_memory"] == "I like tea" and events[0]["old_memory"] is None
    assert events[1]["old_memory"] == "I like tea" and events[1]["new_memory"] == "I like coffee"
    assert events[3]["old_memory"] == "I like coffee" and events[3]["new_memory"] is None
    assert all(e["created_at"] for e in events)


def test_missing_ids_and_bad_updates(m: Memory) -> None:
    mid = m.add("keep me", user_id="alice")["results"][0]["id"]
    for call in (lambda: m.get("nope"), lambda: m.delete("nope"), lambda: m.update("nope", "x")):
        with pytest.raises(MemoryNotFoundError):
            call()
    for bad in ("", None, 3):
        with pytest.raises(InvalidInputError):
            m.update(mid, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        m.update(mid, "ok", metadata={"bad key": 1})
    assert m.get(mid)["memory"] == "keep me"
    assert [e["event"] for e in m.history(mid)] == ["ADD"]


def test_delete_all_is_scoped(m: Memory) -> None:
    m.add(["a1", "a2"], user_id="alice", metadata={"k": "x"})
    m.add(["a3"], user_id="alice", metadata={"k": "y"})
    m.add(["b1"], user_id="bob")
    out = m.delete_all(filters={"user_id": "alice", "k": "x"})
    assert out["deleted"] == 2
    assert [r["memory"] for r in m.get_all(user_id="alice")["results"]] == ["a3"]
    assert count(m, "bob") == 1


def test_reset(m: Memory) -> None:
    mid = m.add("x", user_id="alice")["results"][0]["id"]
    m.reset()
    assert count(m) == 0
    assert m.history(mid) == []
    m.add("after reset", user_id="alice")
    assert count(m) == 1


# async parity -----------------------------------------------------------------------------------


def test_async_memory_has_the_same_surface(tmp_path: Path) -> None:
    public = {n for n in dir(Memory) if not n.startswith("_")} - {"from_config"}
    assert public <= {n for n in dir(AsyncMemory) if not n.startswith("_")}

    async def scenario() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            added = await am.add(["tea", "coffee"], user_id="alice", metadata={"k": 1})
            ids = [r["id"] for r in added["results"]]
            assert (await am.get(ids[0]))["memory"] == "tea"
            hits = (await am.search("coffee", user_id="alice"))["results"]
            assert hits[0]["memory"] == "coffee"
            await am.update(ids[0], "green tea")
            assert [e["event"] for e in await am.history(ids[0])] == ["ADD", "UPDATE"]
            assert len((await am.get_all(user_id="alice"))["results"]) == 2
            await am.delete(ids[1])
            assert (await am.delete_all(user_id="alice"))["deleted"] == 1
            with pytest.raises(UnknownArgumentError):
                await am.search("x", user_id="alice", limit=3)
            with pytest.raises(ScopeError):
                await am.get_all()
            await am.reset()

    asyncio.run(scenario())


def test_concurrent_threads_add_and_search(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Memory.from_config(config(tmp_path)) as m:

        def work(i: int) -> int:
            m.add([f"thread {i} note {j}" for j in range(5)], user_id=f"u{i % 3}")
            return len(m.search("note", user_id=f"u{i % 3}", top_k=100)["results"])

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(work, range(24)))
        total = sum(count(m, f"u{k}") for k in range(3))
        assert total == 24 * 5
