"""The hybrid first stage (DESIGN 3.2): the vector and the keyword lists fused into one
candidate list, each hit with its true vector score and the lists that found it; when it runs
by default; and the fallback, reported, on a store without a keyword index."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import memsift
import memsift_testplugin as tp
from memsift import AsyncMemory, Memory
from memsift.config import MemoryConfig
from memsift.errors import ConfigError, InvalidInputError, StoreError
from memsift.filters import Filter, evaluate, parse_filter
from memsift.interfaces import (
    EmbedderIdentity,
    FloatArray,
    KeywordHit,
    MemoryRecord,
    VectorHit,
    VectorStore,
    VectorStoreConfig,
)
from memsift.retrieval import fuse
from memsift.testing import registered

# --------------------------------------------------------------------------- fusion


def rec(name: str) -> MemoryRecord:
    return MemoryRecord(id=name, memory=f"memory {name}", hash=name)


def vhits(*names: str) -> list[VectorHit]:
    return [VectorHit(rec(n), 1.0 - i / 10) for i, n in enumerate(names)]


def khits(*names: str) -> list[KeywordHit]:
    return [KeywordHit(rec(n), 10.0 - i, vector_score=0.05 * i) for i, n in enumerate(names)]


def test_interleave_alternates_and_skips_what_it_took() -> None:
    fused = fuse(vhits("a", "b", "c", "d"), khits("b", "x", "a", "y"), fusion="interleave")
    assert [h.record.id for h in fused] == ["a", "b", "c", "x", "d", "y"]
    by_id = {h.record.id: h for h in fused}
    assert by_id["a"].found_by == ("vector", "keyword") and by_id["a"].score == 1.0
    assert by_id["a"].keyword_score == 8.0
    assert by_id["c"].found_by == ("vector",) and by_id["c"].keyword_score is None
    assert by_id["x"].found_by == ("keyword",)
    assert by_id["x"].score == pytest.approx(0.05)  # its true vector score, not a stand-in
    assert by_id["x"].keyword_score == 9.0


def test_reciprocal_rank_fusion() -> None:
    fused = fuse(vhits("a", "b", "c"), khits("c", "b", "z"), fusion="rrf", rrf_k=60)
    # c: 1/63 + 1/61 = 0.03227; b: 1/62 + 1/62 = 0.03226; a: 1/61; z: 1/63
    assert [h.record.id for h in fused] == ["c", "b", "a", "z"]
    tie = fuse(vhits("a", "b"), khits("b", "a"), fusion="rrf")
    assert [h.record.id for h in tie] == ["a", "b"]  # equal sums: the vector order


def test_fusion_of_one_empty_list_is_the_other() -> None:
    assert [h.record.id for h in fuse(vhits("a", "b"), [], fusion="rrf")] == ["a", "b"]
    only = fuse([], khits("k"), fusion="interleave")
    assert [(h.record.id, h.found_by) for h in only] == [("k", ("keyword",))]
    with pytest.raises(InvalidInputError, match="unknown fusion"):
        fuse(vhits("a"), [], fusion="borda")


def test_a_keyword_hit_without_its_vector_score_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="vector_score"):
        fuse(vhits("a"), [KeywordHit(rec("k"), 1.0)], fusion="rrf")


# --------------------------------------------------------------------------- through Memory

TEXTS = [
    ("Kate and I went hiking near the lake last Saturday", "trip"),
    ("my sister Priya moved to Lisbon in 2021", "family"),
    ("the project deadline moved to Friday", "work"),
    ("I bought new running shoes", "sport"),
    ("Priya called about the wedding on 2024-06-15", "family"),
    ("the lake was frozen in January", "trip"),
    ("lunch with the team at the Thai place", "work"),
    ("my knee hurts after running", "sport"),
] + [
    (f"note {i} about groceries and errands and chores and other things", "noise")
    for i in range(30)
]


def build(tmp_path: Path, reranker: dict[str, Any] | None = None, **config: Any) -> Any:
    cls = config.pop("cls", Memory)
    cfg: dict[str, Any] = {
        "embedder": {"provider": "hashing"},
        "vector_store": {
            "provider": "faiss",
            "config": {"path": str(tmp_path / "store"), **config.pop("store", {})},
        },
        **config,
    }
    if reranker is not None:
        cfg["reranker"] = reranker
    return cls.from_config(cfg)


def fill(m: Any, user: str = "alice") -> None:
    m.add([t for t, _ in TEXTS], user_id=user, infer=False)


BM25 = {"provider": "bm25"}


def test_with_bm25_the_hybrid_stage_runs_by_default(tmp_path: Path) -> None:
    with build(tmp_path, BM25) as m:
        fill(m)
        m.add("Priya likes the lake", user_id="bob")
        r = m.search("When is Priya's wedding?", user_id="alice", top_k=5)
        assert r["first_stage"]["hybrid"] is True
        assert r["first_stage"]["fusion"] == "rrf" and r["first_stage"]["fallback"] is None
        assert r["first_stage"]["keyword_candidates"] > 0
        assert r["timings"]["keyword_ms"] >= 0
        assert r["results"][0]["memory"].startswith("Priya called about the wedding")
        for h in r["results"]:
            assert h["user_id"] == "alice"
            assert set(h["found_by"]) <= {"vector", "keyword"} and h["found_by"]
            assert "keyword_score" in h  # bm25 reads the store's scores
        plain = m.search("When is Priya's wedding?", user_id="alice", top_k=5, rerank=False)
        assert plain["first_stage"]["hybrid"] is False and "keyword_ms" not in plain["timings"]
        assert all(h["found_by"] == ["vector"] for h in plain["results"])


def test_keyword_only_hits_have_their_true_vector_score(tmp_path: Path) -> None:
    with build(tmp_path, None) as m:
        fill(m)
        query = "groceries errands chores Priya"
        r = m.search(query, user_id="alice", top_k=20, hybrid=True)
        assert r["first_stage"]["hybrid"] is True and r["rerank"]["applied"] is False
        every = m.search(query, user_id="alice", top_k=1000, rerank=False)["results"]
        truth = {h["id"]: h["vector_score"] for h in every}
        found = [h for h in r["results"] if "keyword" in h["found_by"]]
        assert found
        for h in r["results"]:
            assert h["vector_score"] == pytest.approx(truth[h["id"]])
            assert h["score"] == h["vector_score"]  # not reranked: the vector score


def test_hybrid_without_a_reranker_reorders_by_fusion(tmp_path: Path) -> None:
    with build(tmp_path, None, search={"fusion": "interleave"}) as m:
        fill(m)
        vector = m.search("Priya wedding 2024-06-15", user_id="alice", top_k=10, rerank=False)
        hybrid = m.search("Priya wedding 2024-06-15", user_id="alice", top_k=10, hybrid=True)
        assert hybrid["first_stage"]["fusion"] == "interleave"
        assert {h["id"] for h in hybrid["results"]} >= {vector["results"][0]["id"]}
        assert hybrid["results"][0]["memory"].startswith("Priya called about the wedding")


def test_the_config_and_the_call_decide(tmp_path: Path) -> None:
    with build(tmp_path, BM25, search={"hybrid": False}) as m:
        fill(m)
        r = m.search("Priya", user_id="alice")
        assert r["first_stage"]["hybrid"] is False
        assert "keyword_ms" in r["timings"]  # bm25 still reads the store's BM25 scores
        assert all("keyword_score" in h for h in r["results"])
        assert m.search("Priya", user_id="alice", hybrid=True)["first_stage"]["hybrid"] is True
        with pytest.raises(InvalidInputError, match="hybrid"):
            m.search("Priya", user_id="alice", hybrid="yes")


def test_hybrid_never_bypasses_filters(tmp_path: Path) -> None:
    with build(tmp_path, BM25) as m:
        for text, kind in TEXTS:
            m.add(text, user_id="alice", metadata={"kind": kind})
        m.add("Priya Priya wedding wedding", user_id="bob", metadata={"kind": "family"})
        spec = {"AND": [{"user_id": "alice"}, {"OR": [{"kind": "family"}, {"kind": "trip"}]}]}
        r = m.search("Priya wedding lake", filters=spec, top_k=10)
        parsed = parse_filter(spec)
        assert len(r["results"]) == 4
        for h in r["results"]:
            record = MemoryRecord(
                id=h["id"],
                memory=h["memory"],
                hash=h["hash"],
                metadata=h["metadata"],
                user_id=h.get("user_id"),
            )
            assert evaluate(parsed, record)


def test_a_failing_keyword_stage_falls_back_to_the_vector_stage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with build(tmp_path, None) as m:
        fill(m)
        expected = [h["id"] for h in m.search("Priya", user_id="alice", rerank=False)["results"]]

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise StoreError("the disk is on fire")

        monkeypatch.setattr(m.vector_store, "keyword_search", broken)
        with caplog.at_level(logging.WARNING, logger="memsift.search"):
            r = m.search("Priya", user_id="alice", hybrid=True)
        assert [h["id"] for h in r["results"]] == expected
        assert r["first_stage"]["hybrid"] is False
        assert "the disk is on fire" in r["first_stage"]["fallback"]
        assert any("keyword stage failed" in rec.getMessage() for rec in caplog.records)


def test_async_hybrid_search_equals_sync(tmp_path: Path) -> None:
    with build(tmp_path, BM25) as m:
        fill(m)
        sync = m.search("Priya and the lake", user_id="alice", top_k=6)
    am = build(tmp_path, BM25, cls=AsyncMemory)

    async def run() -> dict[str, Any]:
        result: dict[str, Any] = await am.search("Priya and the lake", user_id="alice", top_k=6)
        return result

    result = asyncio.run(run())
    am.close()
    assert result["results"] == sync["results"]
    assert result["first_stage"] == sync["first_stage"]
    assert "keyword_ms" in result["timings"]


def test_the_observer_hook_sees_the_first_stage(tmp_path: Path) -> None:
    tp.SEARCH_EVENTS.clear()
    with build(tmp_path, BM25) as m:
        fill(m)
        m.search("Priya", user_id="alice")
    (event,) = tp.SEARCH_EVENTS
    assert event.first_stage["hybrid"] is True and "keyword_ms" in event.timings


def test_the_search_section_is_validated_and_round_trips() -> None:
    with pytest.raises(ConfigError, match="unknown key 'hybird'"):
        MemoryConfig.from_dict({"search": {"hybird": True}})
    with pytest.raises(ConfigError, match="fusion"):
        MemoryConfig.from_dict({"search": {"fusion": "borda"}})
    cfg = MemoryConfig.from_dict({"search": {"hybrid": True, "keyword_top_k": 40}})
    assert cfg.to_dict()["search"] == {"hybrid": True, "keyword_top_k": 40}
    assert MemoryConfig.from_dict({}).search.keyword_top_k == 10
    assert "search" not in MemoryConfig.from_dict({}).to_dict()
    assert MemoryConfig.from_dict({}).search.hybrid == "auto"


# --------------------------------------------------------------------------- the fallback


class PlainStoreConfig(VectorStoreConfig):
    """No options."""


class PlainStore(VectorStore):
    """A store without a keyword index: every optional ability is the default."""

    def __init__(self, config: PlainStoreConfig) -> None:
        super().__init__(config)
        self.rows: list[tuple[MemoryRecord, FloatArray]] = []

    def open(self, identity: EmbedderIdentity) -> None:
        pass

    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        self.rows.extend(zip(records, np.asarray(vectors)))

    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        hits = [VectorHit(r, float(v @ vector)) for r, v in self.rows if evaluate(filters, r)]
        return sorted(hits, key=lambda h: -h.score)[:limit]

    def get(self, memory_id: str) -> MemoryRecord | None:
        return next((r for r, _ in self.rows if r.id == memory_id), None)

    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        return [r for r, _ in reversed(self.rows) if evaluate(filters, r)][:limit]

    def update(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        raise NotImplementedError

    def delete(self, ids: Sequence[str]) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        self.rows.clear()


class PlainStorePlugin:
    @memsift.hookimpl
    def register_vector_stores(self, registry: memsift.ProviderRegistrar[VectorStore]) -> None:
        registry.register("plain", PlainStore, PlainStoreConfig)


@pytest.fixture
def plain_store() -> Iterator[None]:
    with registered(PlainStorePlugin(), name="memsift-plainstore"):
        yield


def test_a_store_without_keyword_search_says_so() -> None:
    store = PlainStore(PlainStoreConfig())
    assert store.supports_keyword_search is False
    with pytest.raises(StoreError, match="no keyword index"):
        store.keyword_search("x", filters=parse_filter({"user_id": "a"}), limit=3)
    with pytest.raises(StoreError, match="no keyword index"):
        store.keyword_scores("x", ["a"])


@pytest.mark.usefixtures("plain_store")
@pytest.mark.parametrize("reranker", [None, BM25])
def test_hybrid_falls_back_to_the_vector_stage_and_reports_why(
    tmp_path: Path, reranker: dict[str, Any] | None
) -> None:
    config = {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "plain"},
        "history_db_path": str(tmp_path / "history.db"),
    }
    if reranker:
        config["reranker"] = reranker
    with Memory.from_config(config) as m:
        fill(m)
        vector = m.search("Priya wedding", user_id="alice", top_k=5, rerank=False)
        r = m.search("Priya wedding", user_id="alice", top_k=5, hybrid=True, rerank=False)
        assert [h["id"] for h in r["results"]] == [h["id"] for h in vector["results"]]
        assert r["first_stage"]["hybrid"] is False
        assert "has no keyword index" in r["first_stage"]["fallback"]
        assert "keyword_ms" not in r["timings"]
        if reranker:  # auto asks for it with bm25, which then scores from the pool
            auto = m.search("Priya wedding", user_id="alice", top_k=5)
            assert auto["rerank"]["applied"] is True
            assert "has no keyword index" in auto["first_stage"]["fallback"]
            assert all("keyword_score" not in h for h in auto["results"])
            top = auto["results"][0]["memory"]
            assert top.startswith("Priya called about the wedding")


def test_a_faiss_store_with_keyword_index_off_falls_back(tmp_path: Path) -> None:
    with build(tmp_path, BM25, store={"keyword_index": False}) as m:
        fill(m)
        r = m.search("Priya wedding", user_id="alice")
        assert r["rerank"]["applied"] is True and r["first_stage"]["hybrid"] is False
        assert "no keyword index" in r["first_stage"]["fallback"]
