"""The ``openai`` LLM against the fake API: the requests it sends, how it reads answers, what
it learns about the server, and its errors."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from openai_fakes import API_KEY

from memsift import InvalidInputError, LLMError, LLMResponseError
from memsift.completions import json_object, json_schema
from memsift.testing import assert_secret_absent
from memsift.testing.fake_openai_api import FakeOpenAI, Fault, Reply
from memsift_openai import OpenAILLM, OpenAILLMConfig

MakeLLM = Callable[..., OpenAILLM]
USER = [{"role": "user", "content": "Where do I live? Answer in JSON."}]
FACTS = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
    "additionalProperties": False,
}


def sent(fake: FakeOpenAI, i: int = -1) -> dict[str, Any]:
    return fake.chat_requests()[i]


# --------------------------------------------------------------------------- requests


def test_a_plain_request(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    answer = make_llm(model="gpt-4o-mini").complete(USER)
    body = sent(fake_api)
    assert body == {"model": "gpt-4o-mini", "messages": USER}
    assert fake_api.requests[-1].headers["Authorization"] == f"Bearer {API_KEY}"
    assert answer.text == f"You said: {USER[0]['content']}"
    assert answer.model == "gpt-4o-mini"
    assert answer.finish_reason == "stop"
    assert answer.usage.completion_tokens > 0 and answer.usage.prompt_tokens > 0


def test_the_config_and_the_call_set_the_sampling(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    llm = make_llm(temperature=0.3, top_p=0.9, max_tokens=64)
    llm.complete(USER)
    assert {k: sent(fake_api)[k] for k in ("temperature", "top_p", "max_tokens")} == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 64,
    }
    llm.complete(USER, temperature=0.0, max_tokens=8)
    assert sent(fake_api)["temperature"] == 0.0 and sent(fake_api)["max_tokens"] == 8


def test_response_formats_are_passed_through(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    llm = make_llm()
    fmt = json_schema("facts", FACTS)
    answer = llm.complete(USER, response_format=fmt)
    assert sent(fake_api)["response_format"] == fmt
    assert json.loads(answer.text) == {"facts": [USER[0]["content"]]}
    llm.complete(USER, response_format=json_object())
    assert sent(fake_api)["response_format"] == {"type": "json_object"}
    assert sent(fake_api)["messages"] == USER  # it names JSON already: no instruction added


def test_json_object_without_the_word_json_gets_an_instruction(
    fake_api: FakeOpenAI, make_llm: MakeLLM
) -> None:
    """OpenAI refuses json_object unless a message says "JSON" (the fake checks it)."""
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    make_llm().complete(chat, response_format=json_object())
    messages = sent(fake_api)["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "Be brief.\n\nAnswer with a JSON object."
    assert chat[0]["content"] == "Be brief."


def test_logprobs_are_asked_and_mapped(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    answer = make_llm().complete(USER, logprobs=3)
    assert sent(fake_api)["logprobs"] is True and sent(fake_api)["top_logprobs"] == 3
    assert answer.logprobs is not None
    assert "".join(t.token for t in answer.logprobs) == answer.text
    for token in answer.logprobs:
        assert token.logprob <= 0 and len(token.top) == 3
        assert (token.token, token.logprob) in token.top
        assert [lp for _, lp in token.top] == sorted((lp for _, lp in token.top), reverse=True)
    make_llm().complete(USER, logprobs=50)
    assert sent(fake_api)["top_logprobs"] == 20  # the API's most


def test_max_tokens_is_max_completion_tokens_for_openai() -> None:
    """OpenAI's current models take ``max_completion_tokens``; other servers ``max_tokens``."""
    llm = OpenAILLM(OpenAILLMConfig(api_key=API_KEY))  # api.openai.com: nothing is sent here
    args = llm._arguments(llm._ask(USER, None, None, 10, None))
    assert args["max_completion_tokens"] == 10 and "max_tokens" not in args
    llm.close()


def test_bad_input_is_refused_before_any_request(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    llm = make_llm()
    bad: list[Any] = [
        [],
        "hello",
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": 3}],
        [{"role": "user"}],
        ["hi"],
    ]
    for messages in bad:
        with pytest.raises(InvalidInputError):
            llm.complete(messages)
    with pytest.raises(InvalidInputError):
        llm.complete(USER, response_format={"type": "yaml"})
    with pytest.raises(InvalidInputError):
        llm.complete(USER, logprobs=-1)
    assert fake_api.requests == []


# --------------------------------------------------------------------------- answers


def test_one_fence_around_json_is_taken_off(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.reply('```json\n{"facts": ["a"]}\n```')
    answer = make_llm().complete(USER, response_format=json_object())
    assert answer.text == '{"facts": ["a"]}'


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (Fault(kind="no_choices"), "no choices"),
        (Fault(kind="null_content"), "no content"),
        (Reply(refusal="I can't help with that."), "refused: I can't help with that."),
        (Fault(kind="truncated"), "cut off at the token limit"),
        (Reply("the sky is blue"), "not JSON"),
        (Reply("[1, 2]"), "not an object"),
        (Fault(kind="malformed_json"), "malformed response"),
        (Fault(kind="html"), "malformed response"),
    ],
    ids=["no-choices", "null", "refusal", "truncated", "prose", "array", "malformed", "html"],
)
def test_an_answer_not_as_asked_is_a_response_error(
    fake_api: FakeOpenAI, make_llm: MakeLLM, script: Fault | Reply, says: str
) -> None:
    if isinstance(script, Fault):
        fake_api.fail(script)
    else:
        fake_api.reply(script)
    with pytest.raises(LLMResponseError, match=says) as info:
        make_llm().complete(USER, response_format=json_object())
    assert info.value.provider == "openai" and info.value.status is None
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_an_answer_invalid_for_the_schema_is_a_response_error(
    fake_api: FakeOpenAI, make_llm: MakeLLM
) -> None:
    fake_api.reply('{"facts": "not a list"}', '{"facts": [], "extra": 1}')
    llm = make_llm()
    with pytest.raises(LLMResponseError, match=r"\$.facts: expected array"):
        llm.complete(USER, response_format=json_schema("facts", FACTS))
    with pytest.raises(LLMResponseError, match="unexpected key 'extra'"):
        llm.complete(USER, response_format=json_schema("facts", FACTS))


def test_a_truncated_free_text_answer_is_returned(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.reply(Reply("The answer is", finish_reason="length"))
    answer = make_llm().complete(USER)
    assert answer.text == "The answer is" and answer.finish_reason == "length"


# --------------------------------------------------------------------------- detection


def test_a_server_that_ignores_logprobs_is_not_asked_again(
    fake_api: FakeOpenAI, make_llm: MakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_api.supports_logprobs = False
    llm = make_llm()
    assert llm.capabilities.logprobs is True  # until the server shows otherwise
    with caplog.at_level(logging.WARNING, logger="memsift_openai"):
        first = llm.complete(USER, logprobs=2)
    assert first.logprobs is None and first.text
    assert llm.capabilities.logprobs is False
    assert "log-probabilities" in caplog.text
    second = llm.complete(USER, logprobs=2)
    assert second.logprobs is None
    assert "logprobs" not in sent(fake_api) and "top_logprobs" not in sent(fake_api)


def test_garbage_logprobs_are_dropped(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.reply(Reply("yes", logprobs="garbage"))
    llm = make_llm()
    answer = llm.complete(USER, logprobs=1)
    assert answer.logprobs is None and answer.text == "yes"
    assert llm.capabilities.logprobs is False


def test_a_server_that_refuses_logprobs(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.rejected_params = {"logprobs"}
    llm = make_llm()
    answer = llm.complete(USER, logprobs=2)
    assert answer.logprobs is None and llm.capabilities.logprobs is False
    assert [("logprobs" in b) for b in fake_api.chat_requests()] == [True, False]


def test_logprobs_refused_with_a_server_error(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    """llama.cpp's server, without logits_all, answers a request for log-probs with a 500."""
    body = {
        "error": {
            "message": "logprobs is not supported for models created with logits_all=False",
            "type": "internal_server_error",
        }
    }
    fake_api.fail(Fault(status=500, body=body))
    llm = make_llm()
    answer = llm.complete(USER, logprobs=1)
    assert answer.logprobs is None and llm.capabilities.logprobs is False
    fake_api.fail(Fault(status=500))
    with pytest.raises(LLMError) as info:  # another server error is not taken for one
        llm.complete(USER)
    assert info.value.status == 500


def test_json_schema_refused_falls_back_step_by_step(
    fake_api: FakeOpenAI, make_llm: MakeLLM
) -> None:
    fake_api.supports_json_schema = False
    fake_api.accepts_schema_in_json_object = False
    fake_api.reply('{"facts": ["x"]}', '{"facts": []}')
    llm = make_llm()
    fmt = json_schema("facts", FACTS)
    answer = llm.complete(USER, response_format=fmt)
    assert json.loads(answer.text) == {"facts": ["x"]}
    formats = [b.get("response_format") for b in fake_api.chat_requests()]
    assert formats == [fmt, {"type": "json_object", "schema": FACTS}, {"type": "json_object"}]
    last = sent(fake_api)["messages"][0]
    assert last["role"] == "system" and json.dumps(FACTS) in last["content"]
    caps = llm.capabilities
    assert caps.json_schema is False and caps.json_mode is True
    llm.complete(USER, response_format=fmt)  # remembered: one request, the last shape
    assert sent(fake_api)["response_format"] == {"type": "json_object"}
    assert len(fake_api.chat_requests()) == 4


def test_json_schema_refused_uses_the_schema_hint(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    """llama.cpp takes ``{"type": "json_object", "schema": ...}`` and constrains to it."""
    fake_api.supports_json_schema = False
    llm = make_llm()
    llm.complete(USER, response_format=json_schema("facts", FACTS))
    llm.complete(USER, response_format=json_schema("facts", FACTS))
    formats = [b.get("response_format") for b in fake_api.chat_requests()]
    assert formats[1:] == [{"type": "json_object", "schema": FACTS}] * 2


def test_no_response_format_at_all(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.supports_json_schema = False
    fake_api.supports_json_object = False
    fake_api.reply(*['{"facts": ["x"]}'] * 4)
    llm = make_llm()
    assert (
        llm.complete(USER, response_format=json_schema("facts", FACTS)).text == '{"facts": ["x"]}'
    )
    assert "response_format" not in sent(fake_api)
    assert json.dumps(FACTS) in sent(fake_api)["messages"][0]["content"]
    assert llm.capabilities.json_mode is False and llm.capabilities.json_schema is False
    llm.complete(USER, response_format=json_object())
    assert "response_format" not in sent(fake_api)


def test_json_object_refused_uses_a_schema_of_any_object(
    fake_api: FakeOpenAI, make_llm: MakeLLM
) -> None:
    """LM Studio takes only json_schema."""
    fake_api.supports_json_object = False
    llm = make_llm()
    answer = llm.complete(USER, response_format=json_object())
    assert isinstance(json.loads(answer.text), dict)
    fmt = sent(fake_api)["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == {"type": "object"}
    assert llm.capabilities.json_mode is True


@pytest.mark.parametrize("param", ["temperature", "top_p"])
def test_refused_sampling_parameters_are_dropped(
    fake_api: FakeOpenAI, make_llm: MakeLLM, param: str
) -> None:
    """OpenAI's reasoning models take only their default temperature and top_p."""
    fake_api.rejected_params = {param}
    llm = make_llm(temperature=0.0, top_p=0.5)
    llm.complete(USER)
    llm.complete(USER)
    assert [param in b for b in fake_api.chat_requests()] == [True, False, False]


def test_a_refused_max_tokens_is_sent_as_max_completion_tokens(
    fake_api: FakeOpenAI, make_llm: MakeLLM
) -> None:
    fake_api.rejected_params = {"max_tokens"}
    llm = make_llm(max_tokens=32)
    llm.complete(USER)
    assert sent(fake_api)["max_completion_tokens"] == 32 and "max_tokens" not in sent(fake_api)
    fake_api.rejected_params = {"max_completion_tokens"}
    llm.complete(USER)
    assert sent(fake_api)["max_tokens"] == 32


def test_capability_overrides(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.supports_json_schema = False
    forced = make_llm(capabilities={"json_schema": True, "logprobs": False})
    assert forced.capabilities.json_schema is True and forced.capabilities.logprobs is False
    with pytest.raises(LLMError) as info:  # told it takes json_schema: no fallback
        forced.complete(USER, response_format=json_schema("facts", FACTS))
    assert info.value.status == 400
    forced.complete(USER, logprobs=2)
    assert "logprobs" not in sent(fake_api)
    off = make_llm(capabilities={"json_schema": False})
    off.complete(USER, response_format=json_schema("facts", FACTS))
    assert sent(fake_api)["response_format"]["type"] == "json_object"


def test_an_unrelated_400_is_an_error(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    body = {"error": {"message": "model 'nope' does not exist", "type": "invalid_request_error"}}
    fake_api.fail(Fault(status=400, body=body))
    with pytest.raises(LLMError, match="model 'nope' does not exist") as info:
        make_llm().complete(USER, response_format=json_object(), logprobs=1)
    assert info.value.status == 400 and len(fake_api.requests) == 1


# --------------------------------------------------------------------------- errors


def test_a_401_names_the_key_setting_and_hides_the_key(
    fake_api: FakeOpenAI, make_llm: MakeLLM
) -> None:
    fake_api.fail(Fault(status=401))
    with pytest.raises(LLMError) as info:
        make_llm().complete(USER)
    error = info.value
    assert error.status == 401 and error.provider == "openai"
    assert "Incorrect API key provided: ***" in error.message
    assert "OPENAI_API_KEY" in error.message
    assert_secret_absent(error, API_KEY)


def test_the_sdk_retries_429_honouring_retry_after(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.fail(Fault(status=429, headers={"Retry-After": "0.4"}))
    started = time.monotonic()
    answer = make_llm(max_retries=2).complete(USER)
    assert time.monotonic() - started >= 0.4
    assert answer.text and len(fake_api.requests) == 2


def test_the_sdk_retries_5xx(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.fail(Fault(status=503), Fault(status=500))
    assert make_llm(max_retries=2).complete(USER).text
    assert len(fake_api.requests) == 3


def test_retries_give_up_with_the_status(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.fail(always=Fault(status=429, headers={"Retry-After": "0"}))
    with pytest.raises(LLMError, match=r"retried up to 1 time") as info:
        make_llm(max_retries=1).complete(USER)
    assert info.value.status == 429 and len(fake_api.requests) == 2


def test_a_timeout_says_so(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.fail(Fault(delay=2.0))
    started = time.monotonic()
    with pytest.raises(LLMError, match="timed out") as info:
        make_llm(timeout=0.3).complete(USER)
    assert time.monotonic() - started < 1.5
    assert info.value.status is None and info.value.__context__ is None


def test_a_server_that_is_not_there(make_llm: MakeLLM) -> None:
    with pytest.raises(LLMError, match=r"could not connect to http://127\.0\.0\.1:9/v1") as info:
        make_llm(base_url="http://127.0.0.1:9/v1").complete(USER)
    assert info.value.status is None and info.value.__context__ is None


def test_no_key_is_sent_as_a_placeholder_to_a_local_server(fake_api: FakeOpenAI) -> None:
    fake_api.api_key = None  # a local server that takes any key
    try:
        llm = OpenAILLM(OpenAILLMConfig(base_url=fake_api.base_url, max_retries=0))
        assert llm.complete(USER).text
        assert fake_api.requests[-1].headers["Authorization"] == "Bearer no-key-required"
        llm.close()
    finally:
        fake_api.api_key = API_KEY


# --------------------------------------------------------------------------- async


def test_async_uses_one_client_per_event_loop(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    llm = make_llm()

    async def twice() -> tuple[int, int]:
        await llm.acomplete(USER)
        first = id(llm._clients.for_running_loop())
        await llm.acomplete(USER)
        return first, id(llm._clients.for_running_loop())

    a, b = asyncio.run(twice())
    assert a == b
    c, _ = asyncio.run(twice())
    assert c != a  # a new loop, a new client (the old one was bound to a closed loop)
    assert len(fake_api.chat_requests()) == 4


def test_async_calls_run_concurrently(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.delay = 0.3
    llm = make_llm()

    async def many() -> list[str]:
        answers = await asyncio.gather(*(llm.acomplete(USER) for _ in range(6)))
        return [a.text for a in answers]

    started = time.monotonic()
    assert len(asyncio.run(many())) == 6
    assert time.monotonic() - started < 1.5
    assert fake_api.max_in_flight >= 3


def test_async_detection_and_errors(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    fake_api.supports_json_schema = False
    llm = make_llm()
    answer = asyncio.run(llm.acomplete(USER, response_format=json_schema("facts", FACTS)))
    assert json.loads(answer.text)["facts"]
    fake_api.fail(Fault(status=401))
    with pytest.raises(LLMError) as info:
        asyncio.run(llm.acomplete(USER))
    assert info.value.status == 401
    assert_secret_absent(info.value, API_KEY)


def test_sync_calls_from_threads(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    llm = make_llm()
    texts: list[str] = []

    def call() -> None:
        texts.append(llm.complete(USER).text)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(texts) == 5


def test_close_then_use_again(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    llm = make_llm()
    llm.complete(USER)
    asyncio.run(llm.acomplete(USER))
    llm.close()
    assert llm.complete(USER).text
    asyncio.run(llm.aclose())


def test_json_schema_refused_with_llamacpps_500(fake_api: FakeOpenAI, make_llm: MakeLLM) -> None:
    """llama-cpp-python's server answers a json_schema response format with a 500 quoting
    its validation error (it takes only text and json_object)."""
    said = (
        "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', "
        "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
    )
    body = {"error": {"message": said, "type": "internal_server_error", "param": None}}
    fake_api.fail(Fault(status=500, body=body))
    llm = make_llm()
    answer = llm.complete(USER, response_format=json_schema("facts", FACTS))
    assert json.loads(answer.text)["facts"]
    assert llm.capabilities.json_schema is False
    assert sent(fake_api)["response_format"] == {"type": "json_object", "schema": FACTS}


def test_alternatives_are_cut_to_the_number_asked() -> None:
    """llama.cpp adds the chosen token to the N alternatives asked for."""
    from memsift_openai.llm import _tokens

    entries = [
        {
            "token": "A",
            "logprob": -3.0,
            "top_logprobs": [
                {"token": "B", "logprob": -0.5},
                {"token": "C", "logprob": -1.0},
                {"token": "A", "logprob": -3.0},
            ],
        }
    ]
    tokens = _tokens(entries, 2)
    assert tokens is not None and tokens[0].top == (("B", -0.5), ("C", -1.0))
    assert _tokens(entries, 0) is not None and _tokens(entries, 0)[0].top == ()  # type: ignore[index]
    assert _tokens([{"token": "A", "logprob": 0.5}], 1) is None  # not a log-probability
    assert _tokens("nope", 1) is None


def test_credentials_in_the_base_url_are_not_shown(make_llm: MakeLLM) -> None:
    llm = make_llm(base_url="http://user:pa55word@127.0.0.1:9/v1")
    assert "pa55word" not in repr(llm)
    with pytest.raises(LLMError) as info:
        llm.complete(USER)
    assert "127.0.0.1:9" in str(info.value)
    assert_secret_absent(info.value, "pa55word")
