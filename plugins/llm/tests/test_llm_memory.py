"""The ``llm_reranker`` in ``Memory`` and ``AsyncMemory``, with the seed-shaped config, on the
fake OpenAI server: it reranks by the fake's answers, reports its method, requests and
token usage in the ``rerank`` block, a repeated query is a cache hit with no request, and a
garbage answer falls back to the vector order with the reason (or raises)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_fakes import QUERY, TEXT_ONLY, judge, prompt_data, scores_by_text, section

from memsift import AsyncMemory, Memory, RerankError
from memsift.testing.fake_openai_api import FakeOpenAI, Fault, Reply

MEMORIES = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "Alice lives in a flat near the river in Lisbon.",
    "Alice grew up in Porto and visits her parents there.",
    "Alice prefers green tea over coffee in the morning.",
    "Alice's quarterly report is due on Friday.",
    "Alice adopted a cat called Miso last year.",
]


class Driver:
    """A filled Memory or AsyncMemory, driven synchronously."""

    def __init__(self, config: dict[str, Any], mode: str) -> None:
        self.loop = asyncio.new_event_loop() if mode == "async" else None
        self.memory: Memory | AsyncMemory = (
            AsyncMemory.from_config(config) if self.loop else Memory.from_config(config)
        )
        self.run(self.memory.add(MEMORIES, user_id="alice", infer=False))

    def run(self, value: Any) -> Any:
        return value if self.loop is None else self.loop.run_until_complete(value)

    def search(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("user_id", "alice")
        out: dict[str, Any] = self.run(self.memory.search(QUERY, **kwargs))
        return out

    def close(self) -> None:
        if isinstance(self.memory, AsyncMemory):
            assert self.loop is not None
            self.loop.run_until_complete(self.memory.aclose())
            self.loop.close()
        else:
            self.memory.close()


@pytest.fixture(params=["sync", "async"])
def open_memory(
    request: pytest.FixtureRequest, fake_api: FakeOpenAI, tmp_path: Path
) -> Iterator[Callable[..., Driver]]:
    opened: list[Driver] = []

    def open_(**options: Any) -> Driver:
        config = {
            "reranker": section(fake_api, **options),
            "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        }
        driver = Driver(config, str(request.param))
        opened.append(driver)
        fake_api.reset()
        fake_api.responder = judge()
        return driver

    yield open_
    fake_api.release.set()
    for driver in opened:
        driver.close()


def test_the_seed_config_reranks_by_the_answers(
    open_memory: Callable[..., Driver], fake_api: FakeOpenAI
) -> None:
    memory = open_memory(top_k=5)
    vector = memory.search(top_k=5, rerank=False)["results"]
    table = {h["memory"]: round(0.1 + 0.15 * i, 2) for i, h in enumerate(vector)}
    fake_api.reset()
    fake_api.responder = judge(scores_by_text(table))
    response = memory.search(top_k=3, rerank=True)
    hits = response["results"]
    assert [h["memory"] for h in hits] == [h["memory"] for h in vector[::-1][:3]]
    for hit in hits:
        assert hit["rerank_score"] == pytest.approx(table[hit["memory"]])
    block = response["rerank"]
    assert block["applied"] is True and block["provider"] == "llm_reranker"
    assert block["model"] == "gpt-5-mini" and block["candidates"] == 5
    assert block["method"] == "logprobs" and block["requests"] == 5
    assert block["answer_format"] == "json_schema"
    usage = block["usage"]
    # the fake counts two completion tokens in {"relevant": "yes"}
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] == 10
    assert len(fake_api.chat_requests()) == 5


def test_a_repeated_query_is_a_cache_hit_with_no_request(
    open_memory: Callable[..., Driver], fake_api: FakeOpenAI
) -> None:
    memory = open_memory()
    first = memory.search(top_k=3)
    sent = len(fake_api.requests)
    assert first["rerank"]["applied"] and sent == len(MEMORIES)
    again = memory.search(top_k=3)
    assert again["rerank"]["cache_hits"] == len(MEMORIES)
    assert len(fake_api.requests) == sent, "a cached search made a request"
    assert [h["memory"] for h in again["results"]] == [h["memory"] for h in first["results"]]


def test_a_garbage_answer_falls_back_with_the_reason(
    open_memory: Callable[..., Driver], fake_api: FakeOpenAI
) -> None:
    memory = open_memory(cache_size=0, llm={"capabilities": TEXT_ONLY})
    vector = memory.search(top_k=4, rerank=False)["results"]
    fake_api.supports_logprobs = False

    def respond(body: dict[str, Any]) -> Reply | Fault | str | None:
        if prompt_data(body)[1] == [MEMORIES[3]]:
            return Reply("I would rate this a solid eight")
        return judge()(body)

    fake_api.responder = respond
    response = memory.search(top_k=4, rerank=True)
    assert [h["memory"] for h in response["results"]] == [h["memory"] for h in vector]
    assert all("rerank_score" not in h for h in response["results"])
    block = response["rerank"]
    assert block["applied"] is False
    assert "not a number from 0 to 10" in block["error"] and "solid eight" in block["error"]


def test_on_error_raise_raises(open_memory: Callable[..., Driver], fake_api: FakeOpenAI) -> None:
    memory = open_memory(on_error="raise", cache_size=0, llm={"capabilities": TEXT_ONLY})
    fake_api.responder = lambda body: Reply(tokens=[{"perhaps": -0.1}])
    with pytest.raises(RerankError, match="neither yes nor no"):
        memory.search(top_k=3, rerank=True)


def test_a_slow_llm_falls_back_within_the_stage_timeout(
    open_memory: Callable[..., Driver], fake_api: FakeOpenAI
) -> None:
    memory = open_memory(timeout=0.3, cache_size=0)
    fake_api.delay = 2.0
    response = memory.search(top_k=3, rerank=True)
    assert response["rerank"]["applied"] is False
    assert "timeout" in response["rerank"]["error"]
    assert response["timings"]["rerank_ms"] < 1500


def test_rerank_false_sends_nothing(
    open_memory: Callable[..., Driver], fake_api: FakeOpenAI
) -> None:
    response = open_memory().search(top_k=3, rerank=False)
    assert fake_api.requests == [] and response["rerank"]["applied"] is False


def test_listwise_in_memory(open_memory: Callable[..., Driver], fake_api: FakeOpenAI) -> None:
    memory = open_memory(mode="listwise", window_size=4, step=2, cache_size=0)
    vector = memory.search(top_k=6, rerank=False)["results"]
    table = {h["memory"]: 0.1 * (i + 1) for i, h in enumerate(vector)}
    fake_api.responder = judge(scores_by_text(table))
    response = memory.search(top_k=6, rerank=True)
    # one pass of windows (2, 6) then (0, 4): the best window_size - step are on top, in order
    v = [h["memory"] for h in vector]
    assert [h["memory"] for h in response["results"]] == [v[5], v[4], v[1], v[0], v[3], v[2]]
    scores = [h["rerank_score"] for h in response["results"]]
    assert scores == pytest.approx([6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    block = response["rerank"]
    assert block["method"] == "permutation" and block["requests"] == 2
