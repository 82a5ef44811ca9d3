"""A store's optional abilities are declared methods with defaults on ``VectorStore``:
``find_hashes`` and ``count`` (by default, over ``list_records``) and ``data_directory`` (by
default None). ``Memory`` and the command line call them; they never probe a store with
``getattr``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import memsift
import memsift_testplugin as tp
from memsift import Memory
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.filters import Filter, evaluate, parse_filter
from memsift.interfaces import (
    EmbedderIdentity,
    FloatArray,
    MemoryRecord,
    VectorHit,
    VectorStore,
    VectorStoreConfig,
)
from memsift.testing import registered


class ListStoreConfig(VectorStoreConfig):
    """No options."""


class ListStore(VectorStore):
    """The required methods only, over a list: every optional ability is the default."""

    def __init__(self, config: ListStoreConfig) -> None:
        super().__init__(config)
        self.rows: list[tuple[MemoryRecord, FloatArray]] = []
        self.listed = 0

    def open(self, identity: EmbedderIdentity) -> None:
        pass

    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        self.rows.extend(zip(records, vectors))

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        hits = [VectorHit(r, float(v @ vector)) for r, v in self.rows if evaluate(filters, r)]
        return sorted(hits, key=lambda h: -h.score)[:limit]

    def get(self, memory_id: str) -> MemoryRecord | None:
        return next((r for r, _ in self.rows if r.id == memory_id), None)

    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        self.listed += 1
        return [r for r, _ in reversed(self.rows) if evaluate(filters, r)][:limit]

    def update(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        raise NotImplementedError

    def delete(self, ids: Sequence[str]) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        self.rows.clear()


def record(i: int, user: str) -> MemoryRecord:
    return MemoryRecord(id=f"m{i}", memory=f"text {i}", hash=f"h{i}", user_id=user)


def test_find_hashes_by_default_looks_at_the_matching_records() -> None:
    store = ListStore(ListStoreConfig())
    store.insert([record(1, "alice"), record(2, "bob")], np.eye(2, dtype=np.float32))
    found = store.find_hashes(["h1", "h2", "h3"], filters=parse_filter({"user_id": "alice"}))
    assert found == {"h1"}
    assert store.listed == 1


def test_count_by_default_counts_the_matching_records(tmp_path: Path) -> None:
    store = ListStore(ListStoreConfig())
    store.insert(
        [record(1, "alice"), record(2, "bob"), record(3, "alice")], np.eye(3, dtype=np.float32)
    )
    assert store.count() == 3
    assert store.count(filters=parse_filter({"user_id": "alice"})) == 2
    assert store.count(filters=parse_filter({"user_id": "carol"})) == 0
    assert store.listed == 3
    faiss = FaissStore(FaissStoreConfig(path=str(tmp_path / "store")))  # counts in SQL
    try:
        faiss.open(EmbedderIdentity("test", "unit", 3))
        faiss.insert(store.list_records(filters=parse_filter(None), limit=10), np.eye(3))
        assert faiss.count() == 3
        assert faiss.count(filters=parse_filter({"user_id": "alice"})) == 2
    finally:
        faiss.close()


def test_data_directory_is_none_by_default_and_the_faiss_folder_for_faiss(tmp_path: Path) -> None:
    assert ListStore(ListStoreConfig()).data_directory is None
    faiss = FaissStore(FaissStoreConfig(path=str(tmp_path / "store")))
    try:
        assert faiss.data_directory == tmp_path / "store"
    finally:
        faiss.close()


class ListStorePlugin:
    @memsift.hookimpl
    def register_vector_stores(self, registry: memsift.ProviderRegistrar[VectorStore]) -> None:
        registry.register("list", ListStore, ListStoreConfig)


@pytest.fixture
def list_memory() -> object:
    with registered(ListStorePlugin(), name="memsift-liststore"):
        config = {
            "embedder": {"provider": "hashing"},
            "vector_store": {"provider": "list"},
            "llm": {"provider": "echo"},
        }
        with Memory.from_config(config) as m:
            yield m


def test_without_a_store_folder_the_history_lives_in_memsift_home(
    list_memory: Memory, _isolated_home: Path
) -> None:
    assert list_memory.history_db.path == _isolated_home / "history.db"


def test_infer_skips_known_facts_through_the_default_find_hashes(list_memory: Memory) -> None:
    tp.EchoLLM.calls.clear()
    assert len(list_memory.add("I live in Lisbon", user_id="alice")["results"]) == 1
    assert list_memory.add("I live in Lisbon", user_id="alice")["results"] == []
    assert len(list_memory.add("I live in Lisbon", user_id="bob")["results"]) == 1
