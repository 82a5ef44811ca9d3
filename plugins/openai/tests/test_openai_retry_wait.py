"""The SDK's retries wait for a Retry-After of at most ``MAX_RETRY_WAIT`` (30 s): a longer one
fails at once with the server's status (the SDK alone would sleep up to 2 minutes), for the
LLM and the embedder, sync and async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from memsift import LLMError, ProviderError
from memsift.testing.fake_openai_api import FakeOpenAI, Fault
from memsift_openai import OpenAIEmbedder, OpenAILLM
from memsift_openai.config import MAX_RETRY_WAIT

USER = [{"role": "user", "content": "Where do I live?"}]


def test_a_retry_after_over_the_cap_fails_at_once(
    fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake_api.fail(always=Fault(status=429, headers={"Retry-After": "60"}))
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"Retry-After 60 s exceeds 30 s: not retried") as info:
        make_llm(max_retries=2).complete(USER)
    assert time.monotonic() - started < 5
    assert info.value.status == 429
    assert len(fake_api.requests) == 1  # not retried


def test_a_retry_after_within_the_cap_is_waited_for(
    fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake_api.fail(Fault(status=503, headers={"Retry-After": "0.3"}))
    started = time.monotonic()
    answer = make_llm(max_retries=1).complete(USER)
    assert answer.text and len(fake_api.requests) == 2
    assert time.monotonic() - started >= 0.3
    assert MAX_RETRY_WAIT == 30.0


def test_the_async_llm_fails_at_once_too(
    fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake_api.fail(always=Fault(status=429, headers={"Retry-After": "60"}))
    llm = make_llm(max_retries=2)
    started = time.monotonic()
    with pytest.raises(LLMError, match="exceeds 30 s: not retried") as info:
        asyncio.run(llm.acomplete(USER))
    assert time.monotonic() - started < 5
    assert info.value.status == 429 and len(fake_api.requests) == 1


def test_the_embedder_fails_at_once(
    fake_api: FakeOpenAI, make_embedder: Callable[..., OpenAIEmbedder]
) -> None:
    fake_api.fail(always=Fault(status=429, headers={"Retry-After": "60"}), endpoint="embeddings")
    embedder = make_embedder(max_retries=2)
    started = time.monotonic()
    with pytest.raises(ProviderError, match="exceeds 30 s: not retried") as info:
        embedder.embed(["a"])
    with pytest.raises(ProviderError, match="exceeds 30 s: not retried"):
        asyncio.run(embedder.aembed(["a"]))
    assert time.monotonic() - started < 5
    assert info.value.status == 429 and len(fake_api.requests) == 2
