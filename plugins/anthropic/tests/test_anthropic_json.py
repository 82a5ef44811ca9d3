"""JSON by instruction, prefill and structured outputs; the strict parse of the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from fake_anthropic_api import FakeAnthropicAPI, Reply

from memsift import LLMResponseError
from memsift.completions import json_object, json_schema
from memsift_anthropic import AnthropicLLM
from memsift_anthropic.mapping import (
    JSON_OBJECT_INSTRUCTION,
    JSON_SCHEMA_INSTRUCTION,
    parse_json_answer,
)

ASK = [
    {"role": "system", "content": "You extract facts."},
    {"role": "user", "content": "I live in Lisbon."},
]
FACTS_SCHEMA = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
    "additionalProperties": False,
}


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"facts": []}', '{"facts": []}'),
        ('  \n{"facts": ["a"]}\n ', '{"facts": ["a"]}'),
        ('```json\n{"facts": ["a"]}\n```', '{"facts": ["a"]}'),
        ('```JSON\n{"facts": ["a"]}```', '{"facts": ["a"]}'),
        ('```\n{"facts": ["a"]}\n```\n', '{"facts": ["a"]}'),
    ],
)
def test_one_json_object_is_accepted_bare_or_in_one_fence(answer: str, expected: str) -> None:
    assert parse_json_answer(answer, "json_object") == expected


@pytest.mark.parametrize(
    "answer",
    [
        'Here you are: {"facts": []}',
        '{"facts": []} Hope this helps!',
        '{"facts": []}\n{"facts": []}',
        '```python\n{"facts": []}\n```',
        'Sure!\n```json\n{"facts": []}\n```',
        '```json\n{"facts": []}\n```\nDone.',
        '{"facts": [',
        '{"score": NaN}',
        "",
        "   ",
        '["an", "array"]',
        '"a string"',
    ],
)
def test_anything_but_one_json_object_is_rejected(answer: str) -> None:
    with pytest.raises(ValueError):
        parse_json_answer(answer, "json_object")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ('{"facts": ["a"]}', None),
        ('{"facts": []}', None),
        ("{}", "missing required key 'facts'"),
        ('{"facts": "a"}', "$.facts: expected array"),
        ('{"facts": [1]}', "$.facts[0]: expected string"),
        ('{"facts": [], "extra": 1}', "unexpected key 'extra'"),
        ('["facts"]', "expected object"),
    ],
)
def test_a_json_schema_answer_is_validated(answer: str, problem: str | None) -> None:
    if problem is None:
        assert parse_json_answer(answer, "json_schema", FACTS_SCHEMA) == answer
    else:
        with pytest.raises(ValueError, match="does not match the schema") as info:
            parse_json_answer(answer, "json_schema", FACTS_SCHEMA)
        assert problem in str(info.value)


def test_a_json_schema_answer_may_be_any_json_value_the_schema_allows() -> None:
    integers = {"type": "array", "items": {"type": "integer"}}
    assert parse_json_answer("```json\n[1, 2.0]\n```", "json_schema", integers) == "[1, 2.0]"
    for bad in ("[true]", '[1, "x"]', "[1.5]", "Here: [1]"):
        with pytest.raises(ValueError):
            parse_json_answer(bad, "json_schema", integers)
    assert parse_json_answer('"b"', "json_schema", {"enum": ["a", "b"]}) == '"b"'
    with pytest.raises(ValueError):
        parse_json_answer('"c"', "json_schema", {"enum": ["a", "b"]})


# --------------------------------------------------------------------------- on the wire


def test_json_object_is_asked_by_instruction_and_parsed(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text='{"facts": ["lives in Lisbon"]}'))
    answer = make_llm().complete(ASK, response_format=json_object())
    assert json.loads(answer.text) == {"facts": ["lives in Lisbon"]}
    body = fake_api.bodies[0]
    assert body["system"] == f"You extract facts.\n\n{JSON_OBJECT_INSTRUCTION}"
    assert "output_config" not in body
    assert body["messages"] == [{"role": "user", "content": "I live in Lisbon."}]


def test_json_output_without_a_system_message_gets_one(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    make_llm().generate([{"role": "user", "content": 'Say {"ok": true}'}], json_output=True)
    assert fake_api.bodies[0]["system"] == JSON_OBJECT_INSTRUCTION


def test_json_schema_is_asked_with_the_schema_and_checked(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm()
    answer = llm.complete(ASK, response_format=json_schema("facts", FACTS_SCHEMA))
    assert json.loads(answer.text) == {"facts": []}  # the fake's instance of the schema
    system = fake_api.bodies[0]["system"]
    assert JSON_SCHEMA_INSTRUCTION in system
    assert json.dumps(FACTS_SCHEMA, sort_keys=True) in system
    fake_api.script(Reply(text='{"facts": "lives in Lisbon"}'))
    with pytest.raises(LLMResponseError, match=r"does not match the schema: \$\.facts: expected"):
        llm.complete(ASK, response_format=json_schema("facts", FACTS_SCHEMA))


@pytest.mark.parametrize(
    "answer",
    [
        'Sure! Here are the facts: {"facts": ["lives in Lisbon"]}',
        '{"facts": ["lives in Lisbon"]}\n\nLet me know if you need more.',
        "I cannot find any facts.",
    ],
)
def test_prose_around_the_json_is_a_response_error(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI, answer: str
) -> None:
    fake_api.script(Reply(text=answer))
    with pytest.raises(LLMResponseError, match="not exactly one JSON value") as info:
        make_llm().complete(ASK, response_format=json_object())
    assert info.value.provider == "anthropic"


def test_fenced_json_is_accepted_and_returned_without_the_fence(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text='```json\n{"facts": ["lives in Lisbon"]}\n```'))
    answer = make_llm().complete(ASK, response_format=json_object())
    assert answer.text == '{"facts": ["lives in Lisbon"]}'


def test_a_truncated_json_answer_is_a_response_error(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text='{"facts": ["lives in Lis', stop_reason="max_tokens"))
    with pytest.raises(LLMResponseError, match=r"truncated answer.*max_tokens 50"):
        make_llm(max_tokens=50).complete(ASK, response_format=json_object())


def test_a_truncated_answer_is_an_error_even_when_it_parses(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text="{}", stop_reason="max_tokens"))
    with pytest.raises(LLMResponseError, match="truncated"):
        make_llm().complete(ASK, response_format=json_object())


def test_a_refusal_is_a_response_error_when_json_was_asked(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text="", stop_reason="refusal"))
    with pytest.raises(LLMResponseError, match="refused"):
        make_llm().complete(ASK, response_format=json_object())


def test_json_prefill_sends_an_open_brace_and_prepends_it(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text='"facts": ["lives in Lisbon"]}'))
    answer = make_llm(json_prefill=True).complete(ASK, response_format=json_object())
    assert answer.text == '{"facts": ["lives in Lisbon"]}'
    assert fake_api.bodies[0]["messages"][-1] == {"role": "assistant", "content": "{"}


def test_json_prefill_with_the_cooperative_fake(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm(json_prefill=True)
    answer = llm.complete(ASK, response_format=json_schema("facts", FACTS_SCHEMA))
    assert json.loads(answer.text) == {"facts": []}
    # not for a schema whose answer is no object, nor after the caller's own prefill
    llm.complete(ASK, response_format=json_schema("list", {"type": "array"}))
    assert fake_api.bodies[1]["messages"][-1]["role"] == "user"
    fake_api.script(Reply(text='"a": 1}'))
    own = [*ASK, {"role": "assistant", "content": "{"}]
    assert llm.complete(own, response_format=json_object()).text == '{"a": 1}'
    assert fake_api.bodies[2]["messages"][-1] == {"role": "assistant", "content": "{"}


def test_a_caller_prefill_is_part_of_a_json_answer(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    """With a JSON format the text is the whole JSON value, the caller's prefill included;
    free text is only the continuation."""
    fake_api.script(Reply(text=' ["lives in Lisbon"]}'), Reply(text=" tea."))
    llm = make_llm()
    prefilled = [*ASK, {"role": "assistant", "content": '{"facts": '}]
    answer = llm.complete(prefilled, response_format=json_object())
    assert answer.text == '{"facts": ["lives in Lisbon"]}'
    assert fake_api.bodies[0]["messages"][-1] == {"role": "assistant", "content": '{"facts":'}
    assert llm.complete([*ASK, {"role": "assistant", "content": "I like"}]).text == " tea."


def test_json_prefill_on_a_model_without_prefill_is_an_llm_error(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.prefill_supported = False
    with pytest.raises(Exception, match="does not support assistant message prefill") as info:
        make_llm(json_prefill=True).complete(ASK, response_format=json_object())
    assert getattr(info.value, "status", None) == 400


def test_structured_outputs_send_the_schema_in_output_config(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm(structured_outputs=True, json_prefill=True)
    answer = llm.complete(ASK, response_format=json_schema("facts", FACTS_SCHEMA))
    assert json.loads(answer.text) == {"facts": []}
    body = fake_api.bodies[0]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": FACTS_SCHEMA}}
    assert body["system"] == "You extract facts."  # no instruction, no prefill
    assert body["messages"][-1]["role"] == "user"
    # json_object has no native mode: still by instruction
    llm.complete(ASK, response_format=json_object())
    assert "output_config" not in fake_api.bodies[1]
    assert JSON_OBJECT_INSTRUCTION in fake_api.bodies[1]["system"]


def test_free_text_is_not_parsed(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text="Sure! {not json"))
    assert make_llm().complete(ASK).text == "Sure! {not json"


def test_async_json_by_instruction(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    fake_api.script(Reply(text="```json\n[1]\n```"), Reply(text='Here: {"a": 1}'))
    llm = make_llm()

    async def run() -> None:
        fmt = json_schema("list", {"type": "array", "items": {"type": "integer"}})
        assert (await llm.acomplete(ASK, response_format=fmt)).text == "[1]"
        with pytest.raises(LLMResponseError):
            await llm.acomplete(ASK, response_format=json_object())
        await llm.aclose()

    asyncio.run(run())
