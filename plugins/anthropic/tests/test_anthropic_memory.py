"""End to end: ``Memory`` with ``llm: anthropic`` on the fake API, the built-in embedder and
store, extracting facts with ``add(infer=True)``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic_api import API_KEY, FakeAnthropicAPI, Reply, error

from memsift import AsyncMemory, LLMError, Memory

FACTS = ["Alice lives in Lisbon", "Alice loves green tea"]


def memory_config(path: Path, base_url: str, **options: Any) -> dict[str, Any]:
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(path / "store")}},
        "llm": {
            "provider": "anthropic",
            "config": {"api_key": API_KEY, "base_url": base_url, "max_retries": 0, **options},
        },
    }


def test_add_with_infer_stores_the_extracted_facts(
    tmp_path: Path, fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text=json.dumps({"facts": FACTS})))
    with Memory.from_config(memory_config(tmp_path, fake_api.base_url)) as m:
        added = m.add(
            [
                {"role": "user", "content": "I moved to Lisbon last year."},
                {"role": "assistant", "content": "Nice! Anything else?"},
                {"role": "user", "content": "I drink green tea every morning."},
            ],
            user_id="alice",
            infer=True,
        )
        assert [r["memory"] for r in added["results"]] == FACTS
        assert {r["event"] for r in added["results"]} == {"ADD"}
        hits = m.search("Where does Alice live?", user_id="alice", top_k=1)["results"]
        assert hits[0]["memory"] == "Alice lives in Lisbon"
    (request,) = fake_api.requests
    body = request.body
    assert body["system"] and "facts" in body["system"]
    assert body["messages"][0]["role"] == "user"
    assert "I moved to Lisbon" in body["messages"][0]["content"]


def test_add_with_infer_through_structured_outputs(
    tmp_path: Path, fake_api: FakeAnthropicAPI
) -> None:
    """With ``structured_outputs`` the provider declares a native JSON schema, so the core
    asks with one and it goes in ``output_config``."""
    fake_api.script(Reply(text=json.dumps({"facts": FACTS[:1]})))
    config = memory_config(tmp_path, fake_api.base_url, structured_outputs=True)
    with Memory.from_config(config) as m:
        added = m.add("I moved to Lisbon last year.", user_id="alice", infer=True)
        assert [r["memory"] for r in added["results"]] == FACTS[:1]
    assert "output_config" in fake_api.bodies[0]


def test_an_llm_failure_stores_nothing(tmp_path: Path, fake_api: FakeAnthropicAPI) -> None:
    fake_api.script(always=error(401, "authentication_error", f"invalid x-api-key: {API_KEY}"))
    with Memory.from_config(memory_config(tmp_path, fake_api.base_url)) as m:
        with pytest.raises(LLMError) as info:
            m.add("I moved to Lisbon last year.", user_id="alice", infer=True)
        assert info.value.status == 401
        assert API_KEY not in str(info.value)
        assert m.get_all(user_id="alice")["results"] == []


def test_async_memory_add_with_infer(tmp_path: Path, fake_api: FakeAnthropicAPI) -> None:
    fake_api.script(Reply(text=f"```json\n{json.dumps({'facts': FACTS})}\n```"))

    async def run() -> list[str]:
        async with AsyncMemory.from_config(memory_config(tmp_path, fake_api.base_url)) as m:
            added = await m.add("I live in Lisbon and love green tea.", user_id="alice", infer=True)
        return [r["memory"] for r in added["results"]]

    assert asyncio.run(run()) == FACTS
    assert fake_api.requests[0].headers.get("x-stainless-async", "").startswith("async")
