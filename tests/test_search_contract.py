"""The search contract (DESIGN.md section 3), point by point, through the public API.

The rerankers come from the test-only plugin `memsift-testplugin`, installed through its
entry point: `scripted` scores a document by its `[r=0.83]` marker (0.5 without one) and
records its calls; `failing` always raises; `bad_scores` breaks the score contract.
The `hashing` embedder of the same plugin keeps these tests fast and deterministic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import memsift_testplugin as tp
from memsift import AsyncMemory, Memory
from memsift.errors import InvalidInputError, RerankError, ScopeError
from memsift.filters import evaluate, parse_filter
from memsift.interfaces import MemoryRecord

TEXTS = [
    ("apple pie recipe [r=0.10]", {"kind": "food", "n": 0}),
    ("apple tart with cream [r=0.90]", {"kind": "food", "n": 1}),
    ("green apple smoothie [r=0.70]", {"kind": "drink", "n": 2}),
    ("apple apple apple [r=0.20]", {"kind": "food", "n": 3}),
    ("apple orchard visit in May [r=0.60]", {"kind": "trip", "n": 4}),
    ("apple cider vinegar [r=0.30]", {"kind": "drink", "n": 5}),
    ("banana bread [r=0.95]", {"kind": "food", "n": 6}),
    ("apple juice with ginger [r=0.40]", {"kind": "drink", "n": 7}),
    ("the apple store opens at 9 [r=0.80]", {"kind": "trip", "n": 8}),
    ("baked apple with cinnamon [r=0.05]", {"kind": "food", "n": 9}),
]


def build(tmp_path: Path, reranker: dict[str, Any] | None, cls: type = Memory) -> Any:
    config: dict[str, Any] = {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }
    if reranker is not None:
        config["reranker"] = reranker
    return cls.from_config(config)


def fill(m: Memory, user: str = "alice") -> None:
    for text, meta in TEXTS:
        m.add(text, user_id=user, metadata=meta)


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    tp.ScriptedReranker.calls.clear()
    yield
    tp.ScriptedReranker.calls.clear()


def vector_order(m: Memory, query: str, top_k: int, **kw: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = m.search(query, top_k=top_k, rerank=False, **kw)["results"]
    return results


# 1. scope ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        None,
        {},
        {"kind": "food"},
        {"OR": [{"user_id": "alice"}, {"user_id": "bob"}]},
        {"NOT": [{"user_id": "bob"}]},
        {"user_id": {"ne": "bob"}},
    ],
)
def test_unscoped_search_is_an_error(tmp_path: Path, filters: Any) -> None:
    with build(tmp_path, None) as m:
        fill(m)
        with pytest.raises(ScopeError):
            m.search("apple", filters=filters)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filters": {"user_id": "alice"}},
        {"filters": {"AND": [{"user_id": "alice"}, {"kind": "food"}]}},
        {"user_id": "alice"},
        {"filters": {"kind": "food"}, "user_id": "alice"},
    ],
)
def test_scoped_search_sees_only_its_tenant(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with build(tmp_path, None) as m:
        fill(m, "alice")
        m.add("apple secret of bob", user_id="bob")
        hits = m.search("apple", top_k=50, **kwargs)["results"]
        assert hits
        assert all(h["user_id"] == "alice" for h in hits)


# 2. exact pre-filtering ------------------------------------------------------------------


def test_selective_filter_never_yields_fewer_than_exist(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        for i in range(200):  # many better-matching memories that the filter excludes
            m.add(f"apple apple number {i}", user_id="alice", metadata={"kind": "noise"})
        spec = {"user_id": "alice", "kind": "trip"}
        hits = m.search("apple apple", filters=spec, top_k=10)["results"]
        assert sorted(h["metadata"]["n"] for h in hits) == [4, 8]


def test_reranking_never_bypasses_filters(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted", "config": {"top_k": 50}}) as m:
        fill(m)
        m.add("banana bread [r=1.0]", user_id="bob", metadata={"kind": "food", "n": 99})
        spec = {"AND": [{"user_id": "alice"}, {"OR": [{"kind": "drink"}, {"n": {"gte": 8}}]}]}
        hits = m.search("apple", filters=spec, top_k=10, rerank=True)["results"]
        parsed = parse_filter(spec)
        for h in hits:
            record = MemoryRecord(
                id=h["id"],
                memory=h["memory"],
                hash=h["hash"],
                metadata=h["metadata"],
                user_id=h.get("user_id"),
                created_at=h["created_at"],
                updated_at=h["updated_at"],
            )
            assert evaluate(parsed, record)
        assert {h["metadata"]["n"] for h in hits} == {2, 5, 7, 8, 9}
        # the reranker itself only ever saw allowed candidates
        ((_, docs),) = tp.ScriptedReranker.calls
        assert len(docs) == 5 and all("bob" not in d for d in docs)


# 3. the pool -----------------------------------------------------------------------------


@pytest.mark.parametrize(("pool", "top_k"), [(3, 5), (5, 5), (8, 5), (30, 5), (2, 1)])
def test_pool_and_ordering(tmp_path: Path, pool: int, top_k: int) -> None:
    with build(tmp_path, {"provider": "scripted", "config": {"top_k": pool}}) as m:
        fill(m)
        base = vector_order(m, "apple", top_k=len(TEXTS), user_id="alice")
        tp.ScriptedReranker.calls.clear()
        response = m.search("apple", user_id="alice", top_k=top_k, rerank=True)
        hits = response["results"]
        # the reranker scored exactly the first P candidates of the vector order
        ((query, docs),) = tp.ScriptedReranker.calls
        assert query == "apple"
        assert docs == [h["memory"] for h in base[: min(pool, len(base))]]
        assert response["rerank"]["candidates"] == min(pool, len(base))
        reranked = sorted(base[:pool], key=lambda h: -tp.scripted_score(h["memory"]))
        if pool >= top_k:
            expected = reranked[:top_k]
        else:  # the reranked P first, then the next candidates in vector order
            expected = reranked + base[pool:top_k]
        assert [h["id"] for h in hits] == [h["id"] for h in expected]
        for i, h in enumerate(hits):
            if i < min(pool, top_k):
                assert h["rerank_score"] == pytest.approx(tp.scripted_score(h["memory"]))
                assert h["score"] == h["rerank_score"]
            else:
                assert "rerank_score" not in h
                assert h["score"] == h["vector_score"]


def test_default_pool_is_min_max_3k_20_100(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        for i in range(130):
            m.add(f"apple note {i}", user_id="alice")
        for top_k, pool in ((1, 20), (5, 20), (10, 30), (40, 100), (60, 100)):
            tp.ScriptedReranker.calls.clear()
            m.search("apple", user_id="alice", top_k=top_k)
            ((_, docs),) = tp.ScriptedReranker.calls
            assert len(docs) == pool, (top_k, pool)


def test_fewer_candidates_than_the_pool(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted", "config": {"top_k": 50}}) as m:
        fill(m)
        response = m.search("apple", user_id="alice", top_k=3)
        ((_, docs),) = tp.ScriptedReranker.calls
        assert len(docs) == len(TEXTS)
        assert [h["memory"] for h in response["results"]] == [
            "banana bread [r=0.95]",
            "apple tart with cream [r=0.90]",
            "the apple store opens at 9 [r=0.80]",
        ]


def test_empty_scope_makes_no_reranker_call(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        response = m.search("apple", user_id="nobody")
        assert response["results"] == []
        assert tp.ScriptedReranker.calls == []
        assert response["rerank"]["applied"] is False


def test_rerank_none_means_rerank_when_configured(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        assert m.search("apple", user_id="alice")["rerank"]["applied"] is True
    with build(tmp_path, None) as m:
        response = m.search("apple", user_id="alice")
        assert response["rerank"]["applied"] is False
        assert all("rerank_score" not in h for h in response["results"])


def test_rerank_true_without_reranker_is_an_error(tmp_path: Path) -> None:
    with build(tmp_path, None) as m:
        fill(m)
        with pytest.raises(InvalidInputError, match="no reranker is configured"):
            m.search("apple", user_id="alice", rerank=True)


# 4. hit fields, scores, threshold ---------------------------------------------------------


def test_hit_fields_and_scores(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        hits = m.search("apple", user_id="alice", top_k=3)["results"]
        for h in hits:
            assert set(h) >= {
                "id",
                "memory",
                "hash",
                "metadata",
                "created_at",
                "updated_at",
                "user_id",
                "vector_score",
                "rerank_score",
                "score",
            }
            assert "agent_id" not in h and "run_id" not in h
            assert -1.0 <= h["vector_score"] <= 1.0
            assert 0.0 <= h["rerank_score"] <= 1.0
            assert h["score"] == h["rerank_score"]
        plain = m.search("apple", user_id="alice", top_k=3, rerank=False)["results"]
        assert all(h["score"] == h["vector_score"] for h in plain)
        assert [h["vector_score"] for h in plain] == sorted(
            (h["vector_score"] for h in plain), reverse=True
        )


def test_threshold_applies_to_score(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        hits = m.search("apple", user_id="alice", top_k=10, threshold=0.6)["results"]
        assert [h["rerank_score"] for h in hits] == [0.95, 0.9, 0.8, 0.7, 0.6]
        plain = m.search("apple", user_id="alice", top_k=10, threshold=0.3, rerank=False)
        assert plain["results"] and all(h["score"] >= 0.3 for h in plain["results"])


@pytest.mark.parametrize("bad", [0, -1, 1001, 2.5, "3", True])
def test_bad_top_k(tmp_path: Path, bad: Any) -> None:
    with build(tmp_path, None) as m, pytest.raises(InvalidInputError):
        m.search("apple", user_id="alice", top_k=bad)


@pytest.mark.parametrize("bad", ["", "   ", None, 5, ["apple"]])
def test_bad_query(tmp_path: Path, bad: Any) -> None:
    with build(tmp_path, None) as m, pytest.raises(InvalidInputError):
        m.search(bad, user_id="alice")


# 5. response metadata -----------------------------------------------------------------------


def test_rerank_block_and_timings(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted", "config": {"top_k": 4}}) as m:
        fill(m)
        response = m.search("apple", user_id="alice", top_k=2)
        block = response["rerank"]
        assert block["provider"] == "scripted"
        assert block["model"] == "scripted-v1"
        assert block["applied"] is True
        assert block["candidates"] == 4
        assert block["error"] is None
        assert block["duration_ms"] >= 0
        timings = response["timings"]
        for key in ("embed_ms", "vector_ms", "rerank_ms", "total_ms"):
            assert timings[key] >= 0
        assert timings["total_ms"] >= timings["embed_ms"] + timings["vector_ms"]


def test_reranker_details_join_the_block_without_overriding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reranker that returns ``RerankScores`` reports extras (usage, its method) in the
    ``rerank`` block; the stage's own keys keep their values."""
    from memsift.search import RerankScores

    plain = tp.ScriptedReranker.rerank

    def detailed(self: Any, query: str, documents: Any) -> list[float]:
        details = {"usage": {"prompt_tokens": 7}, "method": "x", "applied": "no", "candidates": 0}
        return RerankScores(plain(self, query, documents), details)

    monkeypatch.setattr(tp.ScriptedReranker, "rerank", detailed)
    with build(tmp_path, {"provider": "scripted", "config": {"top_k": 4}}) as m:
        fill(m)
        block = m.search("apple", user_id="alice", top_k=2)["rerank"]
        assert block["usage"] == {"prompt_tokens": 7} and block["method"] == "x"
        assert block["applied"] is True and block["candidates"] == 4
        # a plain list reports nothing more than the stage's keys
        monkeypatch.setattr(tp.ScriptedReranker, "rerank", plain)
        again = m.search("banana", user_id="alice", top_k=2)["rerank"]
        assert "usage" not in again and "method" not in again


def test_observer_hook_sees_every_search(tmp_path: Path) -> None:
    tp.SEARCH_EVENTS.clear()
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        m.search("apple", user_id="alice", top_k=2)
        m.search("apple", user_id="alice", top_k=3, rerank=False)
    assert len(tp.SEARCH_EVENTS) == 2
    first, second = tp.SEARCH_EVENTS
    assert first.rerank["applied"] is True and first.results == 2 and first.top_k == 2
    assert second.rerank["applied"] is False and second.results == 3
    assert first.timings["total_ms"] > 0 and not first.is_async


# 6. failure and latency budget ------------------------------------------------------------


def test_failing_reranker_falls_back_to_vector_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with build(tmp_path, {"provider": "failing"}) as m:
        fill(m)
        expected = [h["id"] for h in vector_order(m, "apple", 5, user_id="alice")]
        with caplog.at_level(logging.WARNING, logger="memsift.search"):
            response = m.search("apple", user_id="alice", top_k=5)
        assert [h["id"] for h in response["results"]] == expected
        assert response["rerank"]["applied"] is False
        assert "scripted failure" in response["rerank"]["error"]
        assert all("rerank_score" not in h for h in response["results"])
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "failing" in warnings[0].getMessage()


def test_on_error_raise(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "failing", "config": {"on_error": "raise"}}) as m:
        fill(m)
        with pytest.raises(RerankError, match="scripted failure"):
            m.search("apple", user_id="alice")


@pytest.mark.parametrize("mode", ["too_few", "out_of_range", "nan"])
def test_contract_breaking_scores_fall_back(tmp_path: Path, mode: str) -> None:
    with build(tmp_path, {"provider": "bad_scores", "config": {"mode": mode}}) as m:
        fill(m)
        response = m.search("apple", user_id="alice", top_k=3)
        assert response["rerank"]["applied"] is False
        assert response["rerank"]["error"]
        assert len(response["results"]) == 3


def test_timeout_falls_back_sync(tmp_path: Path) -> None:
    cfg = {"provider": "scripted", "config": {"delay": 2.0, "timeout": 0.2}}
    with build(tmp_path, cfg) as m:
        fill(m)
        expected = [h["id"] for h in vector_order(m, "apple", 5, user_id="alice")]
        response = m.search("apple", user_id="alice", top_k=5)
        assert [h["id"] for h in response["results"]] == expected
        assert response["rerank"]["applied"] is False
        assert "timeout" in response["rerank"]["error"]
        assert response["timings"]["total_ms"] < 1500


def test_timeout_with_on_error_raise(tmp_path: Path) -> None:
    cfg = {"provider": "scripted", "config": {"delay": 1.0, "timeout": 0.1, "on_error": "raise"}}
    with build(tmp_path, cfg) as m:
        fill(m)
        with pytest.raises(RerankError, match="timeout"):
            m.search("apple", user_id="alice")


def test_timeout_falls_back_async_without_blocking_the_loop(tmp_path: Path) -> None:
    cfg = {"provider": "scripted", "config": {"delay": 1.0, "timeout": 0.2}}
    m = build(tmp_path, cfg, AsyncMemory)

    async def scenario() -> tuple[dict[str, Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        for text, meta in TEXTS:
            await m.add(text, user_id="alice", metadata=meta)
        task = asyncio.create_task(ticker())
        response = await m.search("apple", user_id="alice", top_k=5)
        task.cancel()
        return response, ticks

    response, ticks = asyncio.run(scenario())
    m.close()
    assert response["rerank"]["applied"] is False
    assert "timeout" in response["rerank"]["error"]
    assert ticks >= 5  # the loop kept running while the reranker slept


def test_async_failure_and_raise(tmp_path: Path) -> None:
    async def scenario(on_error: str) -> dict[str, Any]:
        async with build(
            tmp_path / on_error,
            {"provider": "failing", "config": {"on_error": on_error}},
            AsyncMemory,
        ) as m:
            await m.add("apple pie", user_id="alice")
            result: dict[str, Any] = await m.search("apple", user_id="alice")
            return result

    assert asyncio.run(scenario("fallback"))["rerank"]["applied"] is False
    with pytest.raises(RerankError):
        asyncio.run(scenario("raise"))


# 7. rerank=False ----------------------------------------------------------------------------


def test_rerank_false_makes_no_call(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        response = m.search("apple", user_id="alice", rerank=False)
        assert tp.ScriptedReranker.calls == []
        assert response["rerank"]["applied"] is False
        assert response["rerank"]["candidates"] == 0


# cache ---------------------------------------------------------------------------------------


def test_cache_hits_skip_the_provider_and_new_hash_misses(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted", "config": {"cache_size": 100}}) as m:
        fill(m)
        first = m.search("apple", user_id="alice", top_k=3)
        assert first["rerank"]["cache_hits"] == 0
        assert len(tp.ScriptedReranker.calls) == 1
        second = m.search("apple", user_id="alice", top_k=3)
        assert len(tp.ScriptedReranker.calls) == 1  # every score came from the cache
        assert second["rerank"]["cache_hits"] == second["rerank"]["candidates"]
        assert [h["id"] for h in second["results"]] == [h["id"] for h in first["results"]]
        target = next(h for h in first["results"] if "banana" not in h["memory"])
        m.update(target["id"], target["memory"].replace("[r=0.90]", "[r=0.01]"))
        third = m.search("apple", user_id="alice", top_k=3)
        ((_, docs),) = tp.ScriptedReranker.calls[1:]
        assert len(docs) == 1 and "[r=0.01]" in docs[0]  # only the changed memory missed
        assert target["id"] not in [h["id"] for h in third["results"]]


def test_cache_off_by_default_for_local_rerankers(tmp_path: Path) -> None:
    with build(tmp_path, {"provider": "scripted"}) as m:
        fill(m)
        m.search("apple", user_id="alice")
        m.search("apple", user_id="alice")
        assert len(tp.ScriptedReranker.calls) == 2


# async parity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rerank", [None, True, False])
def test_async_search_equals_sync(tmp_path: Path, rerank: bool | None) -> None:
    cfg = {"provider": "scripted", "config": {"top_k": 6}}
    with build(tmp_path, cfg) as m:
        fill(m)
        sync = m.search("apple", user_id="alice", top_k=4, rerank=rerank)
    am = build(tmp_path, cfg, AsyncMemory)

    async def run() -> dict[str, Any]:
        result: dict[str, Any] = await am.search("apple", user_id="alice", top_k=4, rerank=rerank)
        return result

    result = asyncio.run(run())
    am.close()
    assert result["results"] == sync["results"]
    assert result["rerank"]["applied"] == sync["rerank"]["applied"]
