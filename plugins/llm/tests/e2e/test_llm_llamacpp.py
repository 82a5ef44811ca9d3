"""Both modes of the llm_reranker end to end through the ``openai`` llm provider against
llama.cpp's OpenAI-compatible server (see conftest.py).

The model is tiny (Gemma 3 270M): these tests check the mechanics -- the requests are made,
each answer is either read into a score in [0, 1] or reported as the stage's error with
its reason, both modes complete in ``Memory`` and ``AsyncMemory`` -- never the quality of
the ranking.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llamacpp_server import LlamaServer
from memsift_llm import LLMReranker

from memsift import AsyncMemory, Memory, RerankError
from memsift.config import resolve_section
from memsift.interfaces import Candidate
from memsift.records import MemoryRecord
from memsift.registry import get_reranker

QUERY = "Where does Alice live?"
DOCS = [
    "Alice lives in Lisbon, near the river.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee.",
]
#: What an unreadable answer of the tiny model must be reported as.
REASONS = ("neither yes nor no", "has no yes or no", "not a number from 0 to 10", "not a ranking")


def section(server: LlamaServer, **options: Any) -> dict[str, Any]:
    llm = {
        "base_url": server.base_url,
        "model": server.model,
        "max_retries": 0,
        "timeout": 300.0,
        **options.pop("llm", {}),
    }
    config = {"llm": {"provider": "openai", "config": llm}, "max_tokens": 8, **options}
    return {"provider": "llm_reranker", "config": config}


def build(server: LlamaServer, **options: Any) -> LLMReranker:
    resolved = resolve_section("reranker", section(server, **options))
    reranker = get_reranker("llm_reranker").build(resolved.config)
    assert isinstance(reranker, LLMReranker)
    return reranker


def candidates() -> list[Candidate]:
    return [
        Candidate(text=d, vector_score=0.5, record=MemoryRecord(id=f"m{i}", memory=d, hash=f"h{i}"))
        for i, d in enumerate(DOCS)
    ]


def check_outcome(call: Any) -> dict[str, Any] | None:
    """Run ``call``: scores in [0, 1] with the call's details, or a RerankError that names
    the candidate (or window) and why its answer could not be read."""
    try:
        scores = call()
    except RerankError as exc:
        text = str(exc)
        assert exc.provider == "llm_reranker"
        assert ("candidate" in text or "window" in text) and any(r in text for r in REASONS), text
        return None
    assert len(scores) == len(DOCS)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    details: dict[str, Any] = scores.details
    assert details["requests"] >= len(DOCS) or details["method"] == "permutation"
    assert details["usage"]["prompt_tokens"] > 0
    return details


@pytest.mark.parametrize("logprobs", [None, False], ids=["as-detected", "scale"])
def test_pointwise(llama_server: LlamaServer, logprobs: bool | None) -> None:
    options: dict[str, Any] = {"max_concurrency": 3}
    if logprobs is False:
        options["llm"] = {"capabilities": {"logprobs": False}}
    reranker = build(llama_server, **options)
    try:
        details = check_outcome(lambda: reranker.score_candidates(QUERY, candidates()))
        if details is not None:
            assert details["method"] in ("logprobs", "scale", "logprobs+scale")
            if logprobs is False:
                assert details["method"] == "scale"
        check_outcome(lambda: asyncio.run(reranker.ascore_candidates(QUERY, candidates())))
    finally:
        reranker.close()


def test_listwise(llama_server: LlamaServer) -> None:
    reranker = build(llama_server, mode="listwise", max_tokens=24)
    try:
        details = check_outcome(lambda: reranker.score_candidates(QUERY, candidates()))
        if details is not None:
            assert details["method"] == "permutation" and details["requests"] == 1
        check_outcome(lambda: asyncio.run(reranker.ascore_candidates(QUERY, candidates())))
    finally:
        reranker.close()


@pytest.mark.parametrize("mode", ["pointwise", "listwise"])
def test_both_modes_in_memory(llama_server: LlamaServer, tmp_path: Path, mode: str) -> None:
    config = {
        "reranker": section(llama_server, mode=mode, max_tokens=24, timeout=600, cache_size=0),
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }
    with Memory.from_config(config) as memory:
        memory.add(DOCS, user_id="alice", infer=False)
        response = memory.search(QUERY, user_id="alice", top_k=3)
    block = response["rerank"]
    assert len(response["results"]) == 3
    if block["applied"]:
        assert all(0.0 <= h["rerank_score"] <= 1.0 for h in response["results"])
        assert block["requests"] >= 1 and block["usage"]["prompt_tokens"] > 0
    else:
        assert any(r in block["error"] for r in REASONS), block["error"]

    async def main() -> dict[str, Any]:
        async with AsyncMemory.from_config(
            {
                **config,
                "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "a")}},
            }
        ) as amemory:
            await amemory.add(DOCS, user_id="alice", infer=False)
            found: dict[str, Any] = await amemory.search(QUERY, user_id="alice", top_k=3)
            return found

    response = asyncio.run(main())
    assert len(response["results"]) == 3
    block = response["rerank"]
    assert block["applied"] or any(r in block["error"] for r in REASONS), block["error"]
