"""Memory and AsyncMemory on the ``qdrant`` store (local mode in a folder), with the
built-in MiniLM embedder: the whole memory API, and a rare user among many."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsift import AsyncMemory, Memory
from memsift.changes import new_records
from memsift.filters import parse_filter
from memsift.testing.vector_store import DIMS, IDENTITY
from memsift_qdrant import QdrantStore, QdrantStoreConfig
from memsift_qdrant.transport import Call


def unit_vectors(rng: np.random.Generator, n: int, dims: int = DIMS) -> Any:
    """``n`` random unit vectors (float32)."""
    v = rng.normal(size=(n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _config(folder: Path) -> dict[str, Any]:
    return {"vector_store": {"provider": "qdrant", "config": {"path": str(folder)}}}


def test_the_memory_api_on_qdrant(local_folder: Path) -> None:
    config = _config(local_folder)
    with Memory.from_config(config) as m:
        assert isinstance(m.vector_store, QdrantStore)
        added = m.add(
            ["I moved to Lisbon in March", "I prefer green tea", "My sister lives in Porto"],
            user_id="alice",
            metadata={"source": "chat", "n": 2**60 + 1},
            infer=False,
        )["results"]
        m.add(["Bob lives in Lisbon too"], user_id="bob", infer=False)
        ids = [r["id"] for r in added]
        hits = m.search("I moved to Lisbon in March", user_id="alice", top_k=2)["results"]
        assert len(hits) == 2 and hits[0]["id"] == ids[0]
        assert all(h["user_id"] == "alice" for h in hits)
        assert 0 < hits[0]["vector_score"] <= 1.0001
        filtered = m.search(
            "lisbon", user_id="alice", filters={"n": {"gt": 2**60}, "source": "chat"}, top_k=5
        )["results"]
        assert len(filtered) == 3
        assert m.get(ids[1])["metadata"] == {"source": "chat", "n": 2**60 + 1}
        m.update(ids[1], "I prefer black coffee")
        assert m.get(ids[1])["memory"] == "I prefer black coffee"
        top = m.search("I prefer black coffee", user_id="alice", top_k=1)["results"][0]
        assert top["id"] == ids[1]
        assert [e["event"] for e in m.history(ids[1])] == ["ADD", "UPDATE"]
        m.delete(ids[2])
        assert [r["id"] for r in m.get_all(user_id="alice")["results"]] != []
        assert {r["id"] for r in m.get_all(user_id="alice")["results"]} == {ids[0], ids[1]}
        assert m.delete_all(user_id="alice")["deleted"] == 2
        assert m.get_all(user_id="alice")["results"] == []
        assert len(m.get_all(user_id="bob")["results"]) == 1
        assert (local_folder / "history.db").exists()  # beside the data, as with faiss
    with Memory.from_config(config) as again:  # the folder keeps everything
        assert len(again.get_all(user_id="bob")["results"]) == 1
        assert [e["event"] for e in again.history(ids[2])] == ["ADD", "DELETE"]
        again.reset()
        assert again.get_all(user_id="bob")["results"] == []
        again.add(["after reset"], user_id="bob", infer=False)
        assert len(again.get_all(user_id="bob")["results"]) == 1


async def test_the_async_memory_api_on_qdrant(local_folder: Path) -> None:
    async with AsyncMemory.from_config(_config(local_folder)) as m:
        added = await m.add(["tea in the morning", "cello on fridays"], user_id="u", infer=False)
        ids = [r["id"] for r in added["results"]]
        hits = (await m.search("cello on fridays", user_id="u", top_k=1))["results"]
        assert hits[0]["id"] == ids[1]
        await m.update(ids[0], "coffee in the morning")
        assert (await m.get(ids[0]))["memory"] == "coffee in the morning"
        assert len((await m.get_all(user_id="u"))["results"]) == 2
        assert (await m.delete_all(user_id="u"))["deleted"] == 2
        assert [e["event"] for e in await m.history(ids[0])] == ["ADD", "UPDATE", "DELETE"]


def test_a_rare_user_among_many_gets_exactly_their_memories(local_folder: Path) -> None:
    """2000 memories of 200 users and 3 of a rare one: a search with top_k 10 returns
    exactly the 3, in one request that reads only them (the scope is pushed down)."""
    with Memory.from_config(_config(local_folder)) as m:
        texts = [f"note {i} about the weekly report and the river walk" for i in range(10)]
        store = m.vector_store
        assert isinstance(store, QdrantStore)
        vectors = m.embedder.embed(texts)  # the same ten texts for every user: embed once
        many = [r for u in range(200) for r in new_records(texts, {"user_id": f"user-{u}"}, {})]
        store.insert(many, np.tile(vectors, (200, 1)))
        assert store.count() == 2000
        rare = m.add(
            ["rare one likes cellos", "rare one swims", "rare one reads"],
            user_id="rare",
            infer=False,
        )["results"]
        calls: list[Call] = []
        answers: list[Any] = []
        transport = store._transport
        original = transport.call

        def spy(call: Call) -> Any:
            answer = original(call)
            calls.append(call)
            answers.append(answer)
            return answer

        transport.call = spy  # type: ignore[method-assign]
        try:
            hits = m.search("the weekly report", user_id="rare", top_k=10)["results"]
        finally:
            transport.call = original  # type: ignore[method-assign]
        assert {h["id"] for h in hits} == {r["id"] for r in rare}
        assert [c.method for c in calls] == ["query_points"]
        assert len(answers[0].points) == 3


def test_search_pages_until_it_has_the_exact_matches(tmp_path: Path) -> None:
    """A filter Qdrant cannot decide (icontains) is narrowed there and checked in Python:
    the store reads on until it has `limit` matches, however rare they are."""
    store = QdrantStore(QdrantStoreConfig(path=":memory:"))
    store.open(IDENTITY)
    try:
        from memsift.testing.vector_store import make_records

        records = make_records(600)
        for i, r in enumerate(records):
            r.metadata["label"] = "Needle" if i % 150 == 7 else "hay"
            r.user_id = "u"
        vectors = unit_vectors(np.random.default_rng(3), len(records))
        store.insert(records, vectors)
        parsed = parse_filter({"user_id": "u", "label": {"icontains": "NEEDLE"}})
        hits = store.search(vectors[0], filters=parsed, limit=10)
        assert sorted(h.record.id for h in hits) == sorted(
            r.id for i, r in enumerate(records) if i % 150 == 7
        )
        assert len(store.list_records(filters=parsed, limit=3)) == 3
        assert store.count(filters=parsed) == 4
        assert store.count() == 600
    finally:
        store.close()


def test_insert_is_all_or_nothing(local_folder: Path) -> None:
    from memsift import InvalidInputError
    from memsift.testing.vector_store import make_records

    store = QdrantStore(QdrantStoreConfig(path=str(local_folder)))
    store.open(IDENTITY)
    try:
        records = make_records(4)
        vectors = unit_vectors(np.random.default_rng(0), 4)
        store.insert(records[:2], vectors[:2])
        with pytest.raises(InvalidInputError, match="already exists"):
            store.insert(records[1:], vectors[1:])
        assert store.get(records[2].id) is None
        bad = records[2]
        bad.created_at = "2026-01-01"
        with pytest.raises(InvalidInputError, match="canonical"):
            store.insert([bad], vectors[2:3])
        with pytest.raises(InvalidInputError, match="twice"):
            store.insert([records[3], records[3]], vectors[2:4])
        with pytest.raises(InvalidInputError, match="zero vector"):
            store.insert([records[3]], np.zeros((1, 8), dtype=np.float32))
        assert store.count() == 2
    finally:
        store.close()


def test_ids_that_are_not_uuids_are_kept(tmp_path: Path) -> None:
    from memsift.testing.vector_store import make_records

    store = QdrantStore(QdrantStoreConfig(path=":memory:"))
    store.open(IDENTITY)
    try:
        records = make_records(3)
        records[0].id = "mem-0"
        records[1].id = records[2].id.upper()  # a UUID, not in its canonical spelling
        store.insert(records, unit_vectors(np.random.default_rng(1), 3))
        for r in records:
            assert store.get(r.id) == r
        assert store.get("mem-1") is None
        assert store.delete(["mem-0", records[1].id, "nope"]) == 2
        assert store.get(records[2].id) == records[2]
    finally:
        store.close()
