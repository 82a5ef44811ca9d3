"""Both modes of the llm_reranker end to end through the ``openai`` llm provider against
llama.cpp's OpenAI-compatible server (see conftest.py).

The model is tiny (Gemma 3 270M): asked in free text it echoes the prompt, so these tests
rely on what the reranker does for a provider that takes a JSON schema. llama-cpp-python's
server refuses ``response_format: json_schema`` (a 500), the openai provider then sends
``{"type": "json_object", "schema": ...}``, which the server turns into a grammar: every
answer is in the format (``{"relevant": "yes"}``, ``{"score": 7}``, ``{"ranking": [2, 1,
3]}``), and every candidate gets a real score in [0, 1] -- no error is accepted. The quality
of the ranking is not checked. The scores seen are printed (run with ``-s``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llamacpp_server import LlamaServer
from memsift_llm import LLMReranker

from memsift import AsyncMemory, Memory
from memsift.config import resolve_section
from memsift.interfaces import Candidate
from memsift.records import MemoryRecord
from memsift.registry import get_reranker
from memsift.search import RerankScores

QUERY = "Where does Alice live?"
DOCS = [
    "Alice lives in Lisbon, near the river.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee.",
]


def section(server: LlamaServer, **options: Any) -> dict[str, Any]:
    llm = {
        "base_url": server.base_url,
        "model": server.model,
        "max_retries": 0,
        "timeout": 300.0,
        **options.pop("llm", {}),
    }
    # the grammar ends each answer; max_tokens only bounds a runaway one
    config = {"llm": {"provider": "openai", "config": llm}, "max_tokens": 48, **options}
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


def check_scores(scores: RerankScores, method: str, label: str) -> dict[str, Any]:
    """Real scores: one float in [0, 1] per candidate, read from JSON answers."""
    print(f"\n{label}: scores {[round(s, 4) for s in scores]} details {scores.details}")
    assert isinstance(scores, RerankScores) and len(scores) == len(DOCS)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores), list(scores)
    details: dict[str, Any] = scores.details
    assert details["method"] == method, details
    assert details["answer_format"] == "json_schema", details
    assert details["usage"]["prompt_tokens"] > 0
    return details


@pytest.mark.parametrize("logprobs", [None, False], ids=["logprobs-as-detected", "scale"])
def test_pointwise(llama_server: LlamaServer, logprobs: bool | None) -> None:
    options: dict[str, Any] = {"max_concurrency": 3}
    if logprobs is False:
        options["llm"] = {"capabilities": {"logprobs": False}}
    method = "scale" if logprobs is False else "logprobs"
    reranker = build(llama_server, **options)
    try:
        found = reranker.score_candidates(QUERY, candidates())
        details = check_scores(found, method, f"pointwise {method} sync")
        assert details["requests"] == len(DOCS)
        found = asyncio.run(reranker.ascore_candidates(QUERY, candidates()))
        check_scores(found, method, f"pointwise {method} async")
    finally:
        reranker.close()


def test_listwise(llama_server: LlamaServer) -> None:
    reranker = build(llama_server, mode="listwise")
    try:
        found = reranker.score_candidates(QUERY, candidates())
        details = check_scores(found, "permutation", "listwise sync")
        assert details["requests"] == 1
        assert sorted(found) == pytest.approx([1 / 3, 2 / 3, 1.0]), "a ranking of the three"
        found = asyncio.run(reranker.ascore_candidates(QUERY, candidates()))
        check_scores(found, "permutation", "listwise async")
        assert sorted(found) == pytest.approx([1 / 3, 2 / 3, 1.0])
    finally:
        reranker.close()


def check_block(response: dict[str, Any], label: str) -> None:
    block = response["rerank"]
    hits = response["results"]
    print(f"\n{label}: {[(h['memory'][:12], h.get('rerank_score')) for h in hits]} {block}")
    assert len(hits) == 3
    assert block["applied"] is True, block
    assert block["answer_format"] == "json_schema", block
    assert all(0.0 <= h["rerank_score"] <= 1.0 for h in hits)
    assert block["requests"] >= 1 and block["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("mode", ["pointwise", "listwise"])
def test_both_modes_in_memory(llama_server: LlamaServer, tmp_path: Path, mode: str) -> None:
    config = {
        "reranker": section(llama_server, mode=mode, timeout=600, cache_size=0),
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }
    with Memory.from_config(config) as memory:
        memory.add(DOCS, user_id="alice", infer=False)
        check_block(memory.search(QUERY, user_id="alice", top_k=3), f"Memory {mode}")

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

    check_block(asyncio.run(main()), f"AsyncMemory {mode}")
