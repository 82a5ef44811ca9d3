"""The API key never shows: not in reprs, dumped configs, errors, exception chains or logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from fake_anthropic_api import API_KEY, FakeAnthropicAPI, Reply, error, rate_limited

from memsift import ConfigError, LLMError, MemoryConfig
from memsift.testing import assert_secret_absent
from memsift_anthropic import AnthropicConfig, AnthropicLLM

HI = [{"role": "user", "content": "Hi"}]


def test_the_key_is_not_in_reprs_or_dumps(make_llm: Callable[..., AnthropicLLM]) -> None:
    llm = make_llm()
    config = llm.config
    for text in (repr(config), str(config), repr(llm), str(config.model_dump())):
        assert API_KEY not in text
    section = {"provider": "anthropic", "config": {"api_key": API_KEY}}
    memory_config = MemoryConfig.from_dict({"llm": section})
    assert API_KEY not in repr(memory_config)
    assert API_KEY not in str(memory_config.to_dict())


def test_a_config_error_does_not_quote_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        MemoryConfig.from_dict(
            {"llm": {"provider": "anthropic", "config": {"api_key": API_KEY, "timeout": -1}}}
        )
    assert_secret_absent(info.value, API_KEY)
    with pytest.raises(ConfigError) as info:
        MemoryConfig.from_dict(
            {"llm": {"provider": "anthropic", "config": {"api_key": API_KEY, "bogus": 1}}}
        )
    assert_secret_absent(info.value, API_KEY)


@pytest.mark.parametrize(
    "reply",
    [
        error(401, "authentication_error", f"invalid x-api-key: {API_KEY}"),
        error(403, "permission_error", f"key {API_KEY} may not use this model"),
        error(500, "api_error", f"upstream rejected {API_KEY}"),
        Reply(status=400, body=f"bad request for {API_KEY}", content_type="text/plain"),
    ],
)
def test_an_error_body_echoing_the_key_is_scrubbed_everywhere(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI, reply: Reply
) -> None:
    fake_api.script(always=reply)
    llm = make_llm(max_retries=0)
    with pytest.raises(LLMError) as info:
        llm.complete(HI)
    assert "***" in str(info.value)
    assert_secret_absent(info.value, API_KEY)
    assert info.value.__cause__ is None and info.value.__context__ is None

    async def run() -> LLMError:
        with pytest.raises(LLMError) as info:
            await llm.acomplete(HI)
        await llm.aclose()
        return info.value

    failure = asyncio.run(run())
    assert_secret_absent(failure, API_KEY)
    assert failure.__cause__ is None and failure.__context__ is None


def test_a_json_answer_echoing_the_key_is_scrubbed_from_the_parse_error(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text=f"the key is {API_KEY}"))
    with pytest.raises(LLMError) as info:
        make_llm().generate(HI, json_output=True)
    assert_secret_absent(info.value, API_KEY)


def test_the_key_is_not_logged(
    make_llm: Callable[..., AnthropicLLM],
    fake_api: FakeAnthropicAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    llm = make_llm(max_retries=1)
    fake_api.script(rate_limited(0.01))
    llm.complete(HI)
    fake_api.script(always=error(401, "authentication_error", f"invalid x-api-key: {API_KEY}"))
    with pytest.raises(LLMError):
        llm.complete(HI)
    fake_api.script(always=None)

    async def run() -> None:
        await llm.acomplete(HI)
        await llm.aclose()

    asyncio.run(run())
    assert caplog.records, "nothing was logged at DEBUG: the test checks nothing"
    assert any(r.name.startswith("anthropic") for r in caplog.records)
    for record in caplog.records:
        assert API_KEY not in record.getMessage(), f"logger {record.name} logged the key"
    assert API_KEY not in caplog.text


def test_the_key_is_sent_only_in_the_auth_header(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    make_llm().complete(HI)
    (request,) = fake_api.requests
    holding = [k for k, v in request.headers.items() if API_KEY in v]
    assert holding in (["x-api-key"], ["authorization"])
    assert API_KEY not in str(request.body)


def test_the_key_is_read_only_where_the_client_is_built(
    fake_api: FakeAnthropicAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key comes from $ANTHROPIC_API_KEY when the config has none; the SDK never reads
    credentials from the environment itself (the key is always given explicitly)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "a-token-that-must-not-be-sent")
    llm = AnthropicLLM(AnthropicConfig(base_url=fake_api.base_url))
    try:
        assert llm.complete(HI).text == "You said: Hi"
    finally:
        llm.close()
    headers = fake_api.requests[0].headers
    assert "a-token-that-must-not-be-sent" not in str(headers)
