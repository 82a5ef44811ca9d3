"""The key stays out of what a failed request leaves behind, frame locals included.

An error tracker shows the local variables of every frame a raised error passed through;
the translated failure of a request is such a local (the caller keeps it to recognise a
refused parameter), and it held the server's text lower-cased, with the echoed key in it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from openai_fakes import API_KEY

from memsift import LLMError, ProviderError
from memsift.drills.secret_scan import exception_leaks
from memsift.testing.fake_openai_api import FakeOpenAI, Fault
from memsift_openai import OpenAIEmbedder, OpenAILLM
from memsift_openai._client import translate

USER = [{"role": "user", "content": "Hi"}]
ECHO = {"error": {"message": f"bad key {API_KEY}", "type": "invalid_request_error"}}


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=401),  # the fake's 401 quotes the bearer key
        Fault(status=500, body=ECHO),
        Fault(status=400, body={"error": {**ECHO["error"], "param": f"key {API_KEY}"}}),
    ],
)
def test_a_failed_chat_leaves_the_key_nowhere(
    fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM], fault: Fault
) -> None:
    fake_api.fail(always=fault)
    with pytest.raises(LLMError) as info:
        make_llm().complete(USER)
    assert info.value.status == fault.status
    assert exception_leaks(info.value, API_KEY) == []


def test_a_failed_embedding_leaves_the_key_nowhere(
    fake_api: FakeOpenAI, make_embedder: Callable[..., OpenAIEmbedder]
) -> None:
    fake_api.fail(always=Fault(status=401), endpoint="embeddings")
    with pytest.raises(ProviderError) as info:
        make_embedder().embed(["a"])
    assert exception_leaks(info.value, API_KEY) == []


def test_the_translated_failure_is_scrubbed_before_it_is_lower_cased(
    fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM]
) -> None:
    import openai

    fake_api.fail(Fault(status=400, body={"error": {**ECHO["error"], "param": API_KEY}}))
    llm = make_llm()
    client = openai.OpenAI(api_key=API_KEY, base_url=fake_api.base_url, max_retries=0)
    try:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="gpt-5-mini", messages=USER)  # type: ignore[arg-type]
    finally:
        client.close()
    failure = translate(info.value, llm.config)
    assert API_KEY.lower() not in failure.detail and "***" in failure.detail
    assert failure.param == "***"
    assert API_KEY not in repr(failure) and API_KEY.lower() not in repr(failure)
