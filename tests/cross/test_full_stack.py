"""The full-stack config users copy from the best-known memory layer: the ``openai`` LLM and
embedder with the ``cohere`` reranker, every hosted API a loopback fake speaking its real wire
format, the real SDKs pointed at them. Runs in the nox session ``cross`` (the core's session
leaves ``tests/cross`` out: it needs the plugin packages installed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memsift import AsyncMemory, Memory
from memsift.testing.fake_openai_api import FakeOpenAI
from memsift.testing.fake_openai_api import threaded_server as openai_server
from memsift.testing.fake_rerank_api import FakeRerankAPI, threaded_server

OPENAI_KEY = "sk-cross-test-3f9a0c1d2b"
COHERE_KEY = "co-cross-test-8e7d6c5b4a"
FACTS = '{"facts": ["Moved to Lisbon in March", "Loves green tea", "Works as a nurse"]}'


class CohereV2(FakeRerankAPI):
    """Cohere's v2 rerank endpoint: its path and its answer's shape."""

    path = "/v2/rerank"
    allowed_keys = frozenset({"model", "query", "documents", "top_n", "max_tokens_per_doc"})

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        return {"id": str(uuid.uuid4()), "results": results, "meta": {"api_version": {}}}


@pytest.fixture
def openai_api() -> Iterator[FakeOpenAI]:
    with openai_server() as server:
        api = FakeOpenAI(server, OPENAI_KEY)
        yield api
        api.verify()


@pytest.fixture
def cohere_api() -> Iterator[CohereV2]:
    with threaded_server() as server:
        api = CohereV2(server, COHERE_KEY)
        yield api
        api.verify()


def full_stack(openai: FakeOpenAI, cohere: CohereV2, path: Path) -> dict[str, Any]:
    """The issue's config, word for word, plus the fakes' base URLs and a store path."""
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(path)}},
        "llm": {
            "provider": "openai",
            "config": {"model": "gpt-5-mini", "api_key": OPENAI_KEY, "base_url": openai.base_url},
        },
        "embedder": {
            "provider": "openai",
            "config": {
                "model": "text-embedding-3-small",
                "api_key": OPENAI_KEY,
                "base_url": openai.base_url,
            },
        },
        "reranker": {
            "provider": "cohere",
            "config": {
                "model": "rerank-english-v3.0",
                "api_key": COHERE_KEY,
                "top_k": 15,
                "return_documents": True,
                "base_url": cohere.base_url,
            },
        },
    }


def test_add_with_inference_then_a_reranked_search(
    openai_api: FakeOpenAI, cohere_api: CohereV2, tmp_path: Path
) -> None:
    openai_api.reply(FACTS)
    with Memory.from_config(full_stack(openai_api, cohere_api, tmp_path)) as m:
        added = m.add("I moved to Lisbon in March. I love green tea; I'm a nurse.", user_id="u")
        assert [r["event"] for r in added["results"]] == ["ADD", "ADD", "ADD"]
        assert len(openai_api.chat_requests()) == 1
        cohere_api.scores = {"Loves green tea": 0.9, "Moved to Lisbon in March": 0.2}
        found = m.search("what do I drink?", user_id="u", top_k=2)
    assert found["rerank"]["applied"] is True
    assert found["rerank"]["provider"] == "cohere"
    assert found["results"][0]["memory"] == "Loves green tea"
    assert found["results"][0]["rerank_score"] == pytest.approx(0.9)
    sent = cohere_api.requests[-1].body
    assert sent["model"] == "rerank-english-v3.0"
    assert sorted(sent["documents"]) == sorted(
        ["Moved to Lisbon in March", "Loves green tea", "Works as a nurse"]
    )


def test_the_same_stack_under_async_memory(
    openai_api: FakeOpenAI, cohere_api: CohereV2, tmp_path: Path
) -> None:
    openai_api.reply(FACTS)
    cohere_api.scores = {"Works as a nurse": 0.95}

    async def run() -> dict[str, Any]:
        async with AsyncMemory.from_config(full_stack(openai_api, cohere_api, tmp_path)) as m:
            await m.add("I moved to Lisbon. I love green tea. I'm a nurse.", user_id="u")
            return await m.search("job", user_id="u", top_k=3)

    found = asyncio.run(run())
    assert found["rerank"]["applied"] is True
    assert found["results"][0]["memory"] == "Works as a nurse"
