"""The built-in `faiss` store: persistence, rebuilding the index, crashes, compaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsift import Memory
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.builtin.faiss import index as faiss_index
from memsift.builtin.faiss import search as faiss_search
from memsift.errors import ConfigError, EmbedderMismatchError, InvalidInputError
from memsift.filters import parse_filter
from memsift.interfaces import EmbedderIdentity, MemoryRecord

IDENT = EmbedderIdentity("test", "unit", 16)


def unit(n: int, seed: int = 0, dims: int = 16) -> Any:
    v = np.random.default_rng(seed).normal(size=(n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(n: int, user: str = "u1", start: int = 0) -> list[MemoryRecord]:
    stamp = "2026-01-01T00:00:00.000000+00:00"
    return [
        MemoryRecord(
            id=f"id{start + i}",
            memory=f"text {start + i}",
            hash=f"h{start + i}",
            metadata={"i": start + i},
            user_id=user,
            created_at=stamp,
            updated_at=stamp,
        )
        for i in range(n)
    ]


def open_store(path: Path, **cfg: Any) -> FaissStore:
    store = FaissStore(FaissStoreConfig(path=str(path), **cfg))
    store.open(IDENT)
    return store


def brute(vectors: Any, query: Any, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-(vectors @ query), kind="stable")[:k]]


SCOPE = parse_filter({"user_id": "u1"})


def test_index_file_written_on_close_and_used_on_open(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.insert(records(50), unit(50))
    store.close()
    assert store.index_path.exists() and store.stamp_path.exists()
    again = open_store(tmp_path)
    assert again._saved_generation == again._generation  # loaded, not rebuilt
    again.close()


@pytest.mark.parametrize("damage", ["missing", "stale", "garbage"])
def test_index_rebuilt_from_sqlite_when_missing_or_stale(tmp_path: Path, damage: str) -> None:
    vectors = unit(60)
    store = open_store(tmp_path)
    store.insert(records(40), vectors[:40])
    store.close()
    if damage == "missing":
        store.index_path.unlink()
    elif damage == "garbage":
        store.index_path.write_bytes(b"not a faiss index")
    else:  # SQLite moved on without the index file (e.g. another process, or a crash)
        other = open_store(tmp_path)
        other.insert(records(20, start=40), vectors[40:])
        other._saved_generation = other._generation  # pretend saved: skip writing the file
        other.close()
    again = open_store(tmp_path)
    n = 40 if damage != "stale" else 60
    hits = again.search(vectors[7], filters=SCOPE, limit=5)
    assert [h.record.id for h in hits] == [f"id{i}" for i in brute(vectors[:n], vectors[7], 5)]
    assert again.count() == n
    again.close()


def test_embedder_mismatch_is_refused_with_a_way_out(tmp_path: Path) -> None:
    cfg = {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path)}},
    }
    with Memory.from_config(cfg) as m:
        m.add("hello", user_id="u")
    other = {**cfg, "embedder": {"provider": "hashing", "config": {"dims": 32}}}
    with pytest.raises(EmbedderMismatchError) as info:
        Memory.from_config(other)
    message = str(info.value)
    assert "hashing-64" in message and "32" in message and "collection_name" in message


def test_embedding_model_dims_must_match(tmp_path: Path) -> None:
    cfg = {
        "embedder": {"provider": "hashing"},
        "vector_store": {
            "provider": "faiss",
            "config": {"path": str(tmp_path), "embedding_model_dims": 384},
        },
    }
    with pytest.raises(ConfigError, match="embedding_model_dims"):
        Memory.from_config(cfg)


def test_bad_collection_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="collection_name"):
        Memory.from_config(
            {"vector_store": {"provider": "faiss", "config": {"collection_name": "../x"}}}
        )


def test_duplicate_id_is_rejected_atomically(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.insert(records(3), unit(3))
    batch = records(2, start=10) + records(1)  # the last one collides
    with pytest.raises(InvalidInputError):
        store.insert(batch, unit(3, seed=1))
    assert store.count() == 3 and store.get("id10") is None
    hits = store.search(unit(1, seed=5)[0], filters=SCOPE, limit=10)
    assert len(hits) == 3
    store.close()


def test_updates_and_deletes_do_not_rebuild_and_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_index, "COMPACT_MIN", 10)
    rng = np.random.default_rng(3)
    vectors = unit(200, seed=4)
    store = open_store(tmp_path)
    store.insert(records(200), vectors)
    live = dict(enumerate(vectors))
    rebuilds = 0
    original = store._rebuild_index

    def counting(*args: Any) -> Any:
        nonlocal rebuilds
        rebuilds += 1
        return original(*args)

    monkeypatch.setattr(store, "_rebuild_index", counting)
    for step in range(120):
        i = int(rng.integers(200))
        if i not in live:
            continue
        if step % 3:
            store.delete([f"id{i}"])
            del live[i]
        else:
            new = unit(1, seed=1000 + step)[0]
            rec = store.get(f"id{i}")
            assert rec is not None
            store.update(rec, new)
            live[i] = new
    assert rebuilds == 0
    stats = store.stats()
    assert stats["live"] == len(live)
    ids = list(live)
    mat = np.stack([live[i] for i in ids])
    q = unit(1, seed=77)[0]
    hits = store.search(q, filters=SCOPE, limit=10)
    assert [h.record.id for h in hits] == [f"id{ids[j]}" for j in brute(mat, q, 10)]
    store.close()
    again = open_store(tmp_path)  # and the same after a reopen
    assert [h.record.id for h in again.search(q, filters=SCOPE, limit=10)] == [
        h.record.id for h in hits
    ]
    again.close()


def test_compaction_keeps_every_live_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_index, "COMPACT_MIN", 5)
    vectors = unit(40)
    store = open_store(tmp_path)
    store.insert(records(40), vectors)
    store.delete([f"id{i}" for i in range(0, 40, 2)])  # half: triggers compaction
    assert store.stats()["tombstones"] == 0
    assert store._index.ntotal == 20
    q = vectors[3]
    hits = store.search(q, filters=SCOPE, limit=3)
    assert hits[0].record.id == "id3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    store.close()


@pytest.mark.parametrize("strategy", ["cosine", "inner_product", "euclidean"])
def test_distance_strategies_report_similarity(tmp_path: Path, strategy: str) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(30, 16)).astype(np.float32)
    store = open_store(tmp_path, distance_strategy=strategy)
    store.insert(records(30), raw)
    q = raw[5]
    hits = store.search(q, filters=SCOPE, limit=30)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)  # higher is better
    assert hits[0].record.id == "id5"
    if strategy == "euclidean":
        assert hits[0].score == pytest.approx(1.0) and all(0 < s <= 1 for s in scores)
    if strategy == "cosine":
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    if strategy == "inner_product":
        assert hits[0].score == pytest.approx(float(q @ q), rel=1e-5)
    store.close()
    with pytest.raises(Exception, match="distance_strategy"):
        open_store(tmp_path, distance_strategy="cosine" if strategy != "cosine" else "euclidean")


def test_large_selection_uses_the_index_and_stays_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_search, "BRUTE_FORCE_MAX", 50)  # force the selector path
    vectors = unit(400, seed=9)
    recs = records(200, "u1") + records(200, "u2", start=200)
    store = open_store(tmp_path)
    store.insert(recs, vectors)
    store.delete(["id1", "id2"])
    q = unit(1, seed=10)[0]
    hits = store.search(q, filters=SCOPE, limit=10)
    allowed = [i for i in range(200) if i not in (1, 2)]
    expected = [f"id{allowed[j]}" for j in brute(vectors[allowed], q, 10)]
    assert [h.record.id for h in hits] == expected
    metadata_filter = parse_filter({"user_id": "u2", "i": {"lt": 300}})
    hits = store.search(q, filters=metadata_filter, limit=10)
    allowed = list(range(200, 300))
    assert [h.record.id for h in hits] == [
        f"id{allowed[j]}" for j in brute(vectors[allowed], q, 10)
    ]
    store.close()


def test_hnsw_recall_against_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faiss_search, "BRUTE_FORCE_MAX", 10)
    vectors = unit(3000, seed=2, dims=16)
    store = open_store(tmp_path, index="hnsw")
    store.insert(records(3000), vectors)
    store.delete([f"id{i}" for i in range(0, 3000, 50)])
    alive = [i for i in range(3000) if i % 50]
    found = 0
    for s in range(20):
        q = unit(1, seed=100 + s)[0]
        hits = {h.record.id for h in store.search(q, filters=SCOPE, limit=10)}
        assert not any(h == f"id{i}" for i in range(0, 3000, 50) for h in hits)
        exact = {f"id{alive[j]}" for j in brute(vectors[alive], q, 10)}
        found += len(hits & exact)
    assert found / 200 >= 0.95
    store.close()


def test_another_process_writes_are_seen(tmp_path: Path) -> None:
    a = open_store(tmp_path)
    b = open_store(tmp_path)
    vectors = unit(10)
    a.insert(records(5), vectors[:5])
    b.insert(records(5, start=5), vectors[5:])  # b reloads a's rows before writing
    hits = a.search(vectors[8], filters=SCOPE, limit=1)
    assert hits[0].record.id == "id8"
    assert a.count() == b.count() == 10
    a.close()
    b.close()


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    from memsift import Memory
    m = Memory.from_config({
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": sys.argv[1]}},
    })
    i = 0
    while True:
        batch = [f"memory {i} {j}" for j in range(i % 3 + 1)]
        out = m.add(batch, user_id="u")
        for r in out["results"]:
            print(r["id"], flush=True)
        i += 1
    """
)


def test_sigkill_during_adds_loses_nothing_acknowledged(tmp_path: Path) -> None:
    store_dir = tmp_path / "crash"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(store_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    acknowledged: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(acknowledged) >= 150, "the writer did not get going"
    cfg = {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(store_dir)}},
    }
    with Memory.from_config(cfg) as m:
        stored = {r["id"] for r in m.get_all(user_id="u", top_k=1_000_000)["results"]}
        assert set(acknowledged) <= stored
        # the index agrees with SQLite: every stored memory is findable by its own text
        store = m.vector_store
        assert isinstance(store, FaissStore)
        assert store.stats()["live"] == len(stored)
        sample = m.get(acknowledged[-1])
        hits = m.search(sample["memory"], user_id="u", top_k=3)["results"]
        assert sample["id"] in [h["id"] for h in hits]


def test_stamp_is_json_and_describes_the_index(tmp_path: Path) -> None:
    store = open_store(tmp_path, index="hnsw")
    store.insert(records(5), unit(5))
    store.close()
    stamp = json.loads(store.stamp_path.read_text())
    assert stamp["ntotal"] == 5 and stamp["index"] == "hnsw" and stamp["dims"] == 16


def test_compaction_keeps_scopes_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faiss_index, "COMPACT_MIN", 5)
    vectors = unit(60)
    store = open_store(tmp_path)
    store.insert(records(30, "u1") + records(30, "u2", start=30), vectors)
    store.delete([f"id{i}" for i in range(0, 60, 2)])  # half of each scope: compaction
    assert store.stats()["tombstones"] == 0
    u2 = parse_filter({"user_id": "u2"})
    hits = store.search(vectors[31], filters=u2, limit=100)
    assert {h.record.id for h in hits} == {f"id{i}" for i in range(31, 60, 2)}
    assert hits[0].record.id == "id31"
    store.close()


def test_another_connections_deletes_updates_and_compaction_are_caught_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    monkeypatch.setattr(faiss_index, "COMPACT_MIN", 10**9)  # compaction only when asked
    vectors = unit(30)
    a = open_store(tmp_path)
    b = open_store(tmp_path)
    a.insert(records(30), vectors)
    assert b.search(vectors[4], filters=SCOPE, limit=1)[0].record.id == "id4"
    rebuilds = 0
    original = FaissStore._rebuild_index

    def counting(self: FaissStore, *args: Any) -> Any:
        nonlocal rebuilds
        rebuilds += 1
        return original(self, *args)

    monkeypatch.setattr(FaissStore, "_rebuild_index", counting)
    a.delete(["id4"])
    rec = a.get("id5")
    assert rec is not None
    moved = unit(1, seed=99)[0]
    a.update(rec, moved)  # a new vector: a new slot
    rec6 = a.get("id6")
    assert rec6 is not None
    a.update(replace(rec6, user_id="u2"), None)  # re-scoped in place
    assert [h.record.id for h in b.search(vectors[4], filters=SCOPE, limit=30)].count("id4") == 0
    assert b.search(moved, filters=SCOPE, limit=1)[0].record.id == "id5"
    assert "id6" not in {h.record.id for h in b.search(vectors[6], filters=SCOPE, limit=30)}
    u2 = parse_filter({"user_id": "u2"})
    assert [h.record.id for h in b.search(vectors[6], filters=u2, limit=5)] == ["id6"]
    assert rebuilds == 0, "catching up must not rebuild the index"
    a.compact()  # renumbers the slots: b reloads on its next call
    assert b.search(vectors[20], filters=SCOPE, limit=1)[0].record.id == "id20"
    assert b.stats()["live"] == a.stats()["live"] == 29 and b.stats()["tombstones"] == 0
    b.insert(records(1, start=50), unit(1, seed=50))  # takes the next slot after a's layout
    assert a.search(unit(1, seed=50)[0], filters=SCOPE, limit=1)[0].record.id == "id50"
    a.close()
    b.close()
