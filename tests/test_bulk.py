"""Bulk adds (``Memory.add_many`` / ``AsyncMemory.add_many``): per-memory scope ids, metadata
and timestamps, the checks of ``add`` with the item's index, batches of one transaction each,
history as single adds write it, and a call that raises storing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from memsift import AsyncMemory, Memory
from memsift.bulk import DEFAULT_BATCH_SIZE, MemoryItem, check_item
from memsift.errors import InvalidInputError, ScopeError, StoreError


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }


@pytest.fixture
def m(tmp_path: Path) -> Iterator[Memory]:
    with Memory.from_config(config(tmp_path)) as memory:
        yield memory


def items(n: int) -> list[MemoryItem]:
    out: list[MemoryItem] = []
    for i in range(n):
        item: MemoryItem = {"text": f"memory {i} about topic {i % 3}", "user_id": f"u{i % 4}"}
        if i % 2:
            item["metadata"] = {"i": i, "topic": f"t{i % 3}"}
        if i % 5 == 0:
            item["agent_id"] = "agent-a"
        out.append(item)
    return out


def everything(m: Memory) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for user in ("u0", "u1", "u2", "u3", "alice", "bob"):
        out.extend(m.get_all(user_id=user, top_k=10_000)["results"])
    return out


# --------------------------------------------------------------------------- what is stored


def test_each_item_keeps_its_own_scope_and_metadata(m: Memory) -> None:
    given = items(23)
    result = m.add_many(given, batch_size=5)
    assert [r["memory"] for r in result["results"]] == [i["text"] for i in given]
    assert all(r["event"] == "ADD" for r in result["results"])
    for item, res in zip(given, result["results"]):
        got = m.get(res["id"])
        assert got["memory"] == item["text"]
        assert got["user_id"] == item["user_id"]
        assert got.get("agent_id") == item.get("agent_id")
        assert got["metadata"] == item.get("metadata", {})
    assert len(m.get_all(user_id="u1", top_k=100)["results"]) == 6
    hits = m.search("memory 7 about topic 1", user_id="u3", top_k=3)["results"]
    assert hits[0]["memory"] == "memory 7 about topic 1"
    assert hits[0]["metadata"] == {"i": 7, "topic": "t1"}
    filtered = m.get_all(user_id="u1", filters={"topic": "t0"}, top_k=100)["results"]
    assert {r["memory"] for r in filtered} == {"memory 9 about topic 0", "memory 21 about topic 0"}


def test_same_records_and_history_as_single_adds(m: Memory) -> None:
    bulk = m.add_many([{"text": "likes tea", "user_id": "alice", "metadata": {"k": 1}}])
    single = m.add("likes tea", user_id="bob", metadata={"k": 1})
    a, b = m.get(bulk["results"][0]["id"]), m.get(single["results"][0]["id"])
    assert a["hash"] == b["hash"] and a["metadata"] == b["metadata"]
    (ha,) = m.history(a["id"])
    (hb,) = m.history(b["id"])
    assert ha["event"] == hb["event"] == "ADD"
    assert ha["old_memory"] is None and ha["new_memory"] == "likes tea"
    assert ha["user_id"] == "alice"
    assert ha["created_at"] == a["created_at"]
    assert set(ha) == set(hb)


def test_timestamps(m: Memory) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    result = m.add_many(
        [
            {"text": "old one", "user_id": "alice", "created_at": "2023-01-02T03:04:05Z"},
            {"text": "dated", "user_id": "alice", "created_at": when, "updated_at": when},
            {
                "text": "edited",
                "user_id": "alice",
                "created_at": "2023-01-01T00:00:00",
                "updated_at": "2023-06-01T00:00:00+02:00",
            },
            {"text": "now", "user_id": "alice"},
        ]
    )
    old, dated, edited, now = (m.get(r["id"]) for r in result["results"])
    assert old["created_at"] == old["updated_at"] == "2023-01-02T03:04:05.000000+00:00"
    assert dated["created_at"] == "2024-05-01T12:30:00.000000+00:00"
    assert edited["updated_at"] == "2023-05-31T22:00:00.000000+00:00"
    assert now["created_at"] > "2026"
    assert m.history(old["id"])[0]["created_at"] == old["created_at"]
    recent = m.get_all(
        user_id="alice", filters={"created_at": {"gte": "2024-01-01T00:00:00Z"}}, top_k=10
    )
    assert {r["memory"] for r in recent["results"]} == {"dated", "now"}


def test_progress_and_batches(m: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = m.vector_store.insert

    def counting(records: Any, vectors: Any) -> None:
        calls.append(len(records))
        original(records, vectors)

    monkeypatch.setattr(m.vector_store, "insert", counting)
    seen: list[tuple[int, int]] = []
    m.add_many(items(12), batch_size=5, progress=lambda done, total: seen.append((done, total)))
    assert calls == [5, 5, 2]  # one store insert (one transaction) per batch
    assert seen == [(5, 12), (10, 12), (12, 12)]
    assert m.add_many([]) == {"results": []}
    assert DEFAULT_BATCH_SIZE >= 64


# --------------------------------------------------------------------------- bad items


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ({"text": "", "user_id": "u"}, InvalidInputError, "text must not be empty"),
        ({"text": 5, "user_id": "u"}, InvalidInputError, "text must be a string"),
        ({"user_id": "u"}, InvalidInputError, "needs a 'text'"),
        ({"text": "x"}, InvalidInputError, "at least one of user_id"),
        ({"text": "x", "user_id": "*"}, ScopeError, "'*'"),
        ({"text": "x", "user_id": ""}, InvalidInputError, "user_id must be a non-empty"),
        ({"text": "x", "user_id": "u", "metadata": [1]}, InvalidInputError, "metadata must be"),
        (
            {"text": "x", "user_id": "u", "memory": "y"},
            InvalidInputError,
            "unknown key(s) 'memory'",
        ),
        ({"text": "x\ud800", "user_id": "u"}, InvalidInputError, "surrogate"),
        ({"text": "x", "user_id": "u", "created_at": "soon"}, InvalidInputError, "created_at"),
        (
            {"text": "x", "user_id": "u", "created_at": "2024-02-01", "updated_at": "2024-01-01"},
            InvalidInputError,
            "before created_at",
        ),
        ("just a string", InvalidInputError, "must be a dict"),
    ],
)
def test_a_bad_item_rejects_the_whole_call(
    m: Memory, bad: Any, error: type[Exception], words: str
) -> None:
    batch: list[Any] = [*items(7), bad, *items(3)]
    with pytest.raises(error) as info:
        m.add_many(batch, batch_size=2)
    assert str(info.value).startswith("items[7]: ")
    assert words in str(info.value)
    assert everything(m) == []


@pytest.mark.parametrize("bad", ["text", {"text": "x", "user_id": "u"}, None, 3])
def test_items_must_be_a_list(m: Memory, bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="list of items"):
        m.add_many(bad)


@pytest.mark.parametrize("size", [0, -1, True, 2.5, "4"])
def test_bad_batch_size(m: Memory, size: Any) -> None:
    with pytest.raises(InvalidInputError, match="batch_size"):
        m.add_many(items(2), batch_size=size)


def test_check_item_names_where() -> None:
    with pytest.raises(InvalidInputError, match=r"^line 4: text must not be empty"):
        check_item({"text": " ", "user_id": "u"}, "line 4")
    record = check_item({"text": "fine", "run_id": "r"}, "line 1")
    assert (record.memory, record.run_id, record.user_id) == ("fine", "r", None)


# --------------------------------------------------------------------------- failures


def test_a_failing_batch_undoes_the_batches_before_it(
    m: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    m.add("already here", user_id="u0")
    before = everything(m)
    original = m.vector_store.insert
    calls = {"n": 0}

    def third_fails(records: Any, vectors: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StoreError("disk on fire")
        original(records, vectors)

    monkeypatch.setattr(m.vector_store, "insert", third_fails)
    seen_ids: list[str] = []
    real_record = m.history_db.record

    def spy(events: Any) -> list[int]:
        seen_ids.extend(e.memory_id for e in events)
        return real_record(events)

    monkeypatch.setattr(m.history_db, "record", spy)
    with pytest.raises(StoreError, match="disk on fire"):
        m.add_many(items(12), batch_size=4)
    assert everything(m) == before
    assert len(seen_ids) == 12  # three batches had their events recorded ...
    assert all(m.history(i) == [] for i in seen_ids)  # ... and all were taken back


def test_a_failing_embedder_undoes_too(m: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    original = m.embedder.embed
    calls = {"n": 0}

    def second_fails(texts: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("embedder crashed")
        return original(texts, **kw)

    monkeypatch.setattr(m.embedder, "embed", second_fails)
    with pytest.raises(RuntimeError, match="embedder crashed"):
        m.add_many(items(6), batch_size=3)
    assert everything(m) == []


# --------------------------------------------------------------------------- async


def test_async_add_many(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            seen: list[int] = []
            result = await am.add_many(items(9), batch_size=4, progress=lambda d, t: seen.append(d))
            assert seen == [4, 8, 9]
            ids = [r["id"] for r in result["results"]]
            got = await am.get(ids[3])
            assert got["metadata"] == {"i": 3, "topic": "t0"} and got["user_id"] == "u3"
            assert (await am.history(ids[0]))[0]["event"] == "ADD"
            with pytest.raises(InvalidInputError, match=r"^items\[1\]"):
                await am.add_many([{"text": "ok", "user_id": "u"}, {"text": "no scope"}])
            assert len((await am.get_all(user_id="u", top_k=10))["results"]) == 0

    asyncio.run(main())


def test_async_failure_undoes(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            original = am.vector_store.ainsert
            calls = {"n": 0}

            async def second_fails(records: Any, vectors: Any) -> None:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise StoreError("no space")
                await original(records, vectors)

            am.vector_store.ainsert = second_fails  # type: ignore[method-assign]
            with pytest.raises(StoreError):
                await am.add_many(items(8), batch_size=4)
            for user in ("u0", "u1", "u2", "u3"):
                assert (await am.get_all(user_id=user, top_k=10))["results"] == []

    asyncio.run(main())


def test_async_cancel_while_a_batch_is_written_stores_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            original = am.vector_store.ainsert
            started = asyncio.Event()
            release = asyncio.Event()
            calls = {"n": 0}

            async def slow_second(records: Any, vectors: Any) -> None:
                calls["n"] += 1
                if calls["n"] == 2:
                    started.set()
                    await release.wait()
                await original(records, vectors)

            am.vector_store.ainsert = slow_second  # type: ignore[method-assign]
            task = asyncio.create_task(am.add_many(items(12), batch_size=4))
            await started.wait()
            task.cancel()
            await asyncio.sleep(0)
            release.set()  # the batch under way finishes its write ...
            with pytest.raises(asyncio.CancelledError):
                await task
            assert calls["n"] == 2
            for user in ("u0", "u1", "u2", "u3"):  # ... and is undone with the first one
                assert (await am.get_all(user_id=user, top_k=10))["results"] == []

    asyncio.run(main())
