"""What the API can do wrong, with the real SDK: errors, retries, Retry-After, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from fake_anthropic_api import (
    API_KEY,
    FakeAnthropicAPI,
    Reply,
    error,
    malformed,
    overloaded,
    rate_limited,
    server_error,
)

from memsift import LLMError, LLMResponseError
from memsift.testing import assert_secret_absent
from memsift_anthropic import AnthropicConfig, AnthropicLLM

HI = [{"role": "user", "content": "Hi"}]


def _fails(llm: AnthropicLLM) -> LLMError:
    with pytest.raises(LLMError) as info:
        llm.complete(HI)
    assert info.value.provider == "anthropic"
    assert_secret_absent(info.value, API_KEY)
    assert info.value.__cause__ is None and info.value.__context__ is None
    return info.value


def test_401_echoing_the_key_is_scrubbed_and_not_retried(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=error(401, "authentication_error", f"invalid x-api-key: {API_KEY}"))
    failure = _fails(make_llm(max_retries=3))
    assert failure.status == 401
    assert "authentication_error: invalid x-api-key: ***" in str(failure)
    assert "ANTHROPIC_API_KEY" in str(failure)
    assert len(fake_api.requests) == 1


def test_a_wrong_key_is_a_401(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    failure = _fails(make_llm(api_key="sk-ant-wrong-key-0000"))
    assert failure.status == 401
    assert "sk-ant-wrong-key-0000" not in str(failure)


def test_429_with_a_short_retry_after_is_retried_after_waiting(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(rate_limited(0.4))
    start = time.monotonic()
    answer = make_llm(max_retries=2).complete(HI)
    took = time.monotonic() - start
    assert answer.text == "You said: Hi"
    assert len(fake_api.requests) == 2
    assert took >= 0.35, "the SDK did not wait for the Retry-After"
    assert fake_api.requests[1].headers["x-stainless-retry-count"] == "1"


def test_retry_after_ms_is_honoured(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(
        Reply(status=429, error_type="rate_limit_error", headers={"retry-after-ms": "50"})
    )
    assert make_llm().complete(HI).text == "You said: Hi"
    assert len(fake_api.requests) == 2


def test_429_retried_until_the_retries_run_out(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=rate_limited(0.01))
    failure = _fails(make_llm(max_retries=2))
    assert failure.status == 429
    assert "rate_limit_error" in str(failure) and "after 2 retries" in str(failure)
    assert len(fake_api.requests) == 3


def test_a_retry_after_over_max_retry_wait_fails_at_once(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=rate_limited(120))
    start = time.monotonic()
    failure = _fails(make_llm(max_retries=3, max_retry_wait=5))
    assert time.monotonic() - start < 5
    assert failure.status == 429
    assert "Retry-After 120 s exceeds max_retry_wait 5 s: not retried" in str(failure)
    assert len(fake_api.requests) == 1


def test_a_retry_after_date_far_ahead_fails_at_once(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=rate_limited("Wed, 21 Oct 2099 07:28:00 GMT"))
    failure = _fails(make_llm(max_retries=3))
    assert failure.status == 429 and "not retried" in str(failure)
    assert len(fake_api.requests) == 1


def test_a_server_asking_to_retry_within_the_cap_is_retried(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(rate_limited(0.05), rate_limited(0.05))
    assert make_llm(max_retries=2, max_retry_wait=0.1).complete(HI).text == "You said: Hi"
    assert len(fake_api.requests) == 3


@pytest.mark.parametrize(
    ("reply", "status", "words"),
    [(server_error(), 500, "api_error"), (overloaded(), 529, "overloaded_error: Overloaded")],
)
def test_5xx_and_overloaded_are_retried_then_reported(
    make_llm: Callable[..., AnthropicLLM],
    fake_api: FakeAnthropicAPI,
    reply: Reply,
    status: int,
    words: str,
) -> None:
    fake_api.script(reply)
    assert make_llm(max_retries=1).complete(HI).text == "You said: Hi"
    fake_api.reset()
    fake_api.script(always=reply)
    failure = _fails(make_llm(max_retries=1))
    assert failure.status == status and words in str(failure)
    assert "after 1 retry" in str(failure)


def test_a_400_is_not_retried(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=error(400, "invalid_request_error", "max_tokens: too large"))
    failure = _fails(make_llm(max_retries=3))
    assert failure.status == 400
    assert str(failure) == "anthropic (HTTP 400): invalid_request_error: max_tokens: too large"
    assert len(fake_api.requests) == 1


def test_a_plain_text_error_body(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(
        always=Reply(status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    )
    failure = _fails(make_llm(max_retries=0))
    assert failure.status == 502 and "Bad Gateway" in str(failure)


def test_a_slow_answer_is_a_timeout(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=Reply(delay=5.0))
    start = time.monotonic()
    failure = _fails(make_llm(timeout=0.3, max_retries=0))
    assert time.monotonic() - start < 3
    assert failure.status is None
    assert "timed out" in str(failure) and "0.3 s" in str(failure)


def test_a_timeout_is_retried_by_the_sdk(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(delay=5.0))
    assert make_llm(timeout=0.3, max_retries=1).complete(HI).text == "You said: Hi"
    assert len(fake_api.requests) == 2


def test_malformed_json_is_a_response_error(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(always=malformed())
    failure = _fails(make_llm())
    assert isinstance(failure, LLMResponseError)
    assert "malformed response" in str(failure)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"id": "msg_1", "type": "message"}', "application/json"),
        ('{"content": [{"type": "text"}]}', "application/json"),
        ("[1, 2, 3]", "application/json"),
        ("just text", "text/plain"),
    ],
)
def test_a_body_that_is_no_message_is_a_response_error(
    make_llm: Callable[..., AnthropicLLM],
    fake_api: FakeAnthropicAPI,
    body: str,
    content_type: str,
) -> None:
    fake_api.script(always=Reply(body=body, content_type=content_type))
    failure = _fails(make_llm())
    assert isinstance(failure, LLMResponseError)
    assert "malformed response" in str(failure)


def test_non_text_blocks_are_skipped(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "Lis"},
            {"type": "text", "text": "bon"},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    fake_api.script(Reply(body=body))
    assert make_llm().complete(HI).text == "Lisbon"


def test_an_unreachable_server_is_an_llm_error() -> None:
    llm = AnthropicLLM(
        AnthropicConfig(api_key=API_KEY, base_url="http://127.0.0.1:9", max_retries=0)
    )
    try:
        failure = _fails(llm)
    finally:
        llm.close()
    assert failure.status is None and "could not reach the API at http://127.0.0.1:9" in str(
        failure
    )


def test_the_fault_matrix_async(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm(max_retries=1, timeout=0.3, max_retry_wait=1)

    async def fails() -> LLMError:
        with pytest.raises(LLMError) as info:
            await llm.acomplete(HI)
        assert_secret_absent(info.value, API_KEY)
        assert info.value.__cause__ is None and info.value.__context__ is None
        return info.value

    async def run() -> None:
        fake_api.script(always=error(401, "authentication_error", f"bad key {API_KEY}"))
        assert (await fails()).status == 401
        fake_api.script(always=rate_limited(30))
        assert "not retried" in str(await fails())
        fake_api.script(rate_limited(0.05))  # and no fault after it
        assert (await llm.acomplete(HI)).text == "You said: Hi"
        fake_api.script(always=overloaded())
        assert (await fails()).status == 529
        fake_api.script(always=Reply(delay=5.0))
        assert "timed out" in str(await fails())
        fake_api.script(always=malformed())
        assert isinstance(await fails(), LLMResponseError)
        await llm.aclose()

    asyncio.run(run())
