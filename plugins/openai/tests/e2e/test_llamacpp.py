"""End to end against llama.cpp's OpenAI-compatible server (see conftest.py): chat, JSON,
log-probs, embeddings, the LLM conformance suite, and ``Memory.add(..., infer=True)``.

The model is tiny (Gemma 3 270M, a base model): these tests check the plumbing, what the
server takes and how the plugin adapts, and the strict validation of answers; never the
quality of what the model says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llamacpp_server import LlamaServer

from memsift import LLM, LLMResponseError, Memory
from memsift.completions import json_object, json_schema, schema_problem
from memsift.testing import LLMConformance
from memsift.testing.llm import FACTS_SCHEMA, MESSAGE_SHAPES, check_logprobs, messages
from memsift_openai import OpenAIEmbedder, OpenAIEmbedderConfig, OpenAILLM, OpenAILLMConfig

#: Short answers: the model rambles, and log-probs cost llama-cpp-python ~0.3 s a token.
MAX_TOKENS = 16


def make_llm(server: LlamaServer, **options: Any) -> OpenAILLM:
    config = {
        "base_url": server.base_url,
        "model": server.model,
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "max_retries": 0,
        "timeout": 300.0,
        **options,
    }
    return OpenAILLM(OpenAILLMConfig(**config))


@pytest.fixture
def llm(llama_server: LlamaServer) -> Iterator[OpenAILLM]:
    provider = make_llm(llama_server)
    yield provider
    provider.close()


def test_chat(llm: OpenAILLM, llama_server: LlamaServer) -> None:
    answer = llm.complete(MESSAGE_SHAPES["multi-turn"])
    assert isinstance(answer.text, str)
    assert answer.finish_reason in ("stop", "length")
    assert answer.model == llama_server.model
    assert answer.usage.prompt_tokens > 10 and answer.usage.completion_tokens > 0
    assert answer.usage.completion_tokens <= MAX_TOKENS


def test_json_schema_falls_back_to_llamacpps_grammar(llm: OpenAILLM) -> None:
    """llama.cpp refuses ``json_schema`` (a 500); the plugin then sends the schema beside
    ``json_object``, which llama.cpp turns into a grammar: the answer is valid."""
    assert llm.capabilities.json_schema is True
    answer = llm.complete(messages(), response_format=json_schema("facts", FACTS_SCHEMA))
    assert llm.capabilities.json_schema is False and llm.capabilities.json_mode is True
    assert schema_problem(json.loads(answer.text), FACTS_SCHEMA) is None
    again = llm.complete(messages(), response_format=json_schema("facts", FACTS_SCHEMA))
    assert schema_problem(json.loads(again.text), FACTS_SCHEMA) is None


def test_json_object_is_grammar_constrained(llama_server: LlamaServer) -> None:
    """Plain JSON mode gives JSON, but this model may ramble past the token limit: then the
    answer is a documented LLMResponseError, never text that is not JSON."""
    llm = make_llm(llama_server, max_tokens=128)
    try:
        answer = llm.complete(messages(), response_format=json_object())
    except LLMResponseError as exc:
        assert "cut off at the token limit" in str(exc)
    else:
        assert isinstance(json.loads(answer.text), dict)
    finally:
        llm.close()


def test_logprobs(llm: OpenAILLM) -> None:
    """llama-cpp-python 0.3.36 returns log-probs for chat completions (with one more
    alternative than asked: the chosen token; the plugin keeps the N likeliest)."""
    answer = llm.complete(MESSAGE_SHAPES["user"], logprobs=2, max_tokens=8)
    assert llm.capabilities.logprobs is True
    assert answer.logprobs is not None
    check_logprobs(answer.logprobs, answer.text, 2)
    assert "".join(t.token for t in answer.logprobs).strip() == answer.text.strip()


def test_embeddings(llama_server: LlamaServer) -> None:
    config = OpenAIEmbedderConfig(
        base_url=llama_server.base_url,
        model=llama_server.model,
        max_retries=0,
        timeout=300.0,
        max_input_tokens=2000,  # the server's context is 2048 tokens
    )
    embedder = OpenAIEmbedder(config)
    try:
        assert embedder.dims == 640  # learned from the server (Gemma 3 270M's hidden size)
        texts = ["Alice moved to Lisbon.", "Bob likes green tea.", "The sky is blue."]
        vectors = embedder.embed(texts)
        assert vectors.shape == (3, 640) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        singles = np.vstack([embedder.embed([t], purpose="query") for t in texts])
        assert np.all(np.sum(vectors * singles, axis=1) > 0.999)
        assert embedder.embed(["word " * 3000]).shape == (1, 640)  # cut, not refused
    finally:
        embedder.close()


class TestLlamaCppConformance(LLMConformance):
    """The whole LLM suite against the served model (the faults are the fake's job)."""

    fault_matrix = False
    fault_matrix_reason = (
        "a real local server cannot be told to fail; the fault matrix runs against the fake "
        "OpenAI API in plugins/openai/tests"
    )
    reliable_json = False
    reliable_json_reason = (
        f"Gemma 3 270M often rambles in plain JSON mode past {MAX_TOKENS} tokens: the answer "
        "is then an LLMResponseError"
    )

    @pytest.fixture
    def llm(self, llama_server: LlamaServer) -> Iterator[LLM]:
        provider = make_llm(llama_server)
        yield provider
        provider.close()


def test_memory_add_with_inference(llama_server: LlamaServer, tmp_path: Path) -> None:
    """The public API end to end, last: one LLM call, its answer validated strictly; either
    memories were added (each with an event) or a documented LLMResponseError was raised and
    nothing was written."""
    common = {"base_url": llama_server.base_url, "model": llama_server.model, "max_retries": 0}
    config = {
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        "llm": {
            "provider": "openai",
            "config": {**common, "temperature": 0.0, "max_tokens": 256, "timeout": 300.0},
        },
        "embedder": {
            "provider": "openai",
            "config": {**common, "timeout": 300.0, "max_input_tokens": 2000},
        },
    }
    with Memory.from_config(config) as m:
        assert isinstance(m.llm, OpenAILLM)
        calls: list[Any] = []
        complete = m.llm.complete

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("response_format"))
            return complete(*args, **kwargs)

        m.llm.complete = counted  # type: ignore[method-assign]
        try:
            added = m.add(
                "I moved to Lisbon in March and I love green tea", user_id="u", infer=True
            )
        except LLMResponseError as exc:
            print(f"the model's answer was refused: {exc}")
            assert m.get_all(user_id="u")["results"] == []
        else:
            print(f"added: {added}")
            results = added["results"]
            assert all(r["event"] == "ADD" and r["memory"].strip() for r in results)
            stored = {r["memory"] for r in m.get_all(user_id="u")["results"]}
            assert stored == {r["memory"] for r in results}
            if results:
                found = m.search("Where do I live?", user_id="u", top_k=3)
                assert found["results"]
        assert len(calls) == 1, f"add(infer=True) made {len(calls)} LLM calls"
        assert calls[0] is not None and calls[0]["type"] == "json_schema"
