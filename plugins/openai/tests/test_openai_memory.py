"""The full stack: ``Memory`` / ``AsyncMemory`` with the ``openai`` LLM and embedder against
the fake API (and the built-in ``bm25`` reranker: the plugins stay independent; a test with
the ``cohere`` reranker lives with the cross-package tests)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from openai_fakes import API_KEY

from memsift import AsyncMemory, LLMError, LLMResponseError, Memory
from memsift.testing.fake_openai_api import FakeOpenAI, Fault, Reply

FACTS = '{"facts": ["Moved to Lisbon in March", "Loves green tea"]}'
SAID = "I moved to Lisbon in March and I love green tea"


def stack(fake: FakeOpenAI, path: Path, **llm: Any) -> dict[str, Any]:
    """The README's full-stack config, pointed at the fake."""
    common = {"api_key": API_KEY, "base_url": fake.base_url, "max_retries": 0}
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(path)}},
        "llm": {"provider": "openai", "config": {"model": "gpt-5-mini", **common, **llm}},
        "embedder": {
            "provider": "openai",
            "config": {"model": "text-embedding-3-small", **common},
        },
        "reranker": {"provider": "bm25"},
    }


def test_add_with_inference_then_search(fake_api: FakeOpenAI, tmp_path: Path) -> None:
    fake_api.reply(FACTS)
    with Memory.from_config(stack(fake_api, tmp_path)) as m:
        added = m.add(SAID, user_id="u", infer=True)
        events = [(r["event"], r["memory"]) for r in added["results"]]
        assert events == [("ADD", "Moved to Lisbon in March"), ("ADD", "Loves green tea")]
        chats = fake_api.chat_requests()
        assert len(chats) == 1  # one LLM call
        fmt = chats[0]["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["schema"]["required"] == ["facts"]
        assert SAID in json.dumps(chats[0]["messages"])
        found = m.search("Where do I live?", user_id="u", top_k=2)
        assert found["results"][0]["memory"] == "Moved to Lisbon in March"
        assert found["rerank"]["applied"] is True
        assert all(len(b["input"]) >= 1 for b in fake_api.embedding_requests())


def test_async_memory(fake_api: FakeOpenAI, tmp_path: Path) -> None:
    fake_api.reply(FACTS)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncMemory.from_config(stack(fake_api, tmp_path)) as m:
            added = await m.add(SAID, user_id="u", infer=True)
            found = await m.search("green tea", user_id="u", top_k=1)
            return added, found

    added, found = asyncio.run(run())
    assert len(added["results"]) == 2
    assert found["results"][0]["memory"] == "Loves green tea"


def test_a_server_without_json_schema(fake_api: FakeOpenAI, tmp_path: Path) -> None:
    """An OpenAI-compatible server that refuses json_schema: the same add, one retry."""
    fake_api.supports_json_schema = False
    fake_api.reply(FACTS)
    with Memory.from_config(stack(fake_api, tmp_path)) as m:
        added = m.add(SAID, user_id="u", infer=True)
        assert len(added["results"]) == 2
    kinds = [c["response_format"]["type"] for c in fake_api.chat_requests()]
    assert kinds == ["json_schema", "json_object"]


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (Fault(status=500), LLMError),
        (Fault(status=401), LLMError),
        (Reply("I could not find any facts."), LLMResponseError),
        (Reply('{"facts": [1, 2]}'), LLMResponseError),
        (Fault(kind="truncated"), LLMResponseError),
    ],
    ids=["500", "401", "prose", "wrong-shape", "truncated"],
)
def test_a_failed_extraction_writes_nothing(
    fake_api: FakeOpenAI, tmp_path: Path, script: Fault | Reply, error: type[Exception]
) -> None:
    with Memory.from_config(stack(fake_api, tmp_path)) as m:
        if isinstance(script, Fault):
            fake_api.fail(script)
        else:
            fake_api.reply(script)
        with pytest.raises(error):
            m.add(SAID, user_id="u", infer=True)
        assert m.get_all(user_id="u")["results"] == []
