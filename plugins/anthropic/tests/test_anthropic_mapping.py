"""From memsift's chat messages to a Messages API request: the rules, and the wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_anthropic_api import FakeAnthropicAPI

from memsift import InvalidInputError
from memsift_anthropic import AnthropicLLM
from memsift_anthropic.mapping import map_messages


def test_system_messages_go_to_system_joined_in_order() -> None:
    turns = map_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Answer in English."},
        ]
    )
    assert turns.system == "Be brief.\n\nAnswer in English."
    assert turns.messages == [{"role": "user", "content": "Hi"}]


def test_no_system_message_gives_no_system() -> None:
    assert map_messages([{"role": "user", "content": "Hi"}]).system is None


def test_consecutive_same_role_messages_are_merged() -> None:
    turns = map_messages(
        [
            {"role": "user", "content": "I live in Lisbon."},
            {"role": "user", "content": "I like tea."},
            {"role": "assistant", "content": "Noted."},
            {"role": "assistant", "content": "Anything else?"},
            {"role": "user", "content": "No."},
        ]
    )
    assert turns.messages == [
        {"role": "user", "content": "I live in Lisbon.\n\nI like tea."},
        {"role": "assistant", "content": "Noted.\n\nAnything else?"},
        {"role": "user", "content": "No."},
    ]


def test_a_system_message_between_turns_does_not_split_a_merge() -> None:
    turns = map_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "system", "content": "s"},
            {"role": "user", "content": "b"},
        ]
    )
    assert turns.messages == [{"role": "user", "content": "a\n\nb"}]
    assert turns.system == "s"


def test_empty_messages_are_left_out() -> None:
    turns = map_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "  "},
            {"role": "user", "content": "b"},
            {"role": "system", "content": ""},
        ]
    )
    assert turns.messages == [{"role": "user", "content": "a\n\nb"}]
    assert turns.system is None


def test_the_conversation_must_start_with_the_user() -> None:
    with pytest.raises(InvalidInputError, match="start with a user message"):
        map_messages(
            [
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Hi"},
            ]
        )


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "only a system prompt"}],
        [{"role": "user", "content": ""}],
    ],
)
def test_a_user_message_is_required(messages: list[dict[str, str]]) -> None:
    with pytest.raises(InvalidInputError, match="at least one user message"):
        map_messages(messages)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ("hello", "list of"),
        ([("user", "hi")], r"messages\[0\] must be"),
        ([{"role": "tool", "content": "x"}], "one of system, user, assistant"),
        ([{"content": "x"}], "one of system, user, assistant"),
        ([{"role": "user", "content": 3}], "must be a string"),
        ([{"role": "user"}], "must be a string"),
    ],
)
def test_invalid_messages_are_invalid_input(messages: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        map_messages(messages)


def test_a_final_assistant_turn_is_a_prefill_without_trailing_whitespace() -> None:
    turns = map_messages(
        [{"role": "user", "content": "Greek for Sun?"}, {"role": "assistant", "content": "It is "}]
    )
    assert turns.ends_with_assistant
    assert turns.messages[-1] == {"role": "assistant", "content": "It is"}


def test_other_keys_are_ignored_and_the_input_is_not_changed() -> None:
    given = [{"role": "user", "content": "Hi", "name": "alice"}]
    turns = map_messages(given)
    assert turns.messages == [{"role": "user", "content": "Hi"}]
    turns.messages[0]["content"] += "!"
    assert given == [{"role": "user", "content": "Hi", "name": "alice"}]


# --------------------------------------------------------------------------- on the wire


def test_the_request_on_the_wire(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm(model="claude-haiku-5-5", max_tokens=300)
    answer = llm.complete(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": "Where do I live?"},
        ]
    )
    assert answer.text == "You said: Hi\n\nWhere do I live?"
    (request,) = fake_api.requests
    assert request.body == {
        "model": "claude-haiku-5-5",
        "max_tokens": 300,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi\n\nWhere do I live?"}],
    }
    assert request.headers["anthropic-version"]
    key = request.headers.get("x-api-key") or request.headers["authorization"].split()[-1]
    assert key == fake_api.api_key


def test_per_call_max_tokens_overrides_the_config(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    make_llm(max_tokens=300).complete([{"role": "user", "content": "Hi"}], max_tokens=7)
    assert fake_api.bodies[0]["max_tokens"] == 7


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_a_bad_max_tokens_is_invalid_input(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI, bad: Any
) -> None:
    with pytest.raises(InvalidInputError, match="max_tokens"):
        make_llm().complete([{"role": "user", "content": "Hi"}], max_tokens=bad)
    assert fake_api.requests == []


def test_an_unknown_response_format_is_invalid_input(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    with pytest.raises(InvalidInputError, match="response_format"):
        make_llm().complete([{"role": "user", "content": "Hi"}], response_format={"type": "xml"})
    assert fake_api.requests == []


def test_temperature_is_not_sent_unless_the_config_sets_one(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    """The Messages API of SDK 1.0 and later has no temperature: without one in the config,
    a per-call temperature is not sent (a model that takes none would answer 400)."""
    fake_api.accepts_temperature = False
    answer = make_llm().complete([{"role": "user", "content": "Hi"}], temperature=0.0)
    assert answer.text == "You said: Hi"
    assert "temperature" not in fake_api.bodies[0]


def test_a_configured_temperature_is_sent_and_a_per_call_one_overrides_it(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm(temperature=0.0)
    llm.complete([{"role": "user", "content": "Hi"}])
    llm.complete([{"role": "user", "content": "Hi"}], temperature=0.7)
    assert [b["temperature"] for b in fake_api.bodies] == [0.0, 0.7]
    for bad in (1.5, -1, "hot", True):
        with pytest.raises(InvalidInputError, match="temperature"):
            llm.complete([{"role": "user", "content": "Hi"}], temperature=bad)  # type: ignore[arg-type]
    assert len(fake_api.requests) == 2


def test_a_caller_prefill_is_continued(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    answer = make_llm().complete(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "You said: "}]
    )
    assert fake_api.bodies[0]["messages"][-1] == {"role": "assistant", "content": "You said:"}
    assert answer.text == " Hi"  # only the continuation, as the API returns it


def test_the_answer_carries_usage_finish_reason_and_model(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    from fake_anthropic_api import Reply

    fake_api.script(
        Reply(
            text="Lisbon.",
            usage={
                "input_tokens": 12,
                "output_tokens": 3,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 5,
            },
        ),
        Reply(text="Lis", stop_reason="max_tokens"),
    )
    llm = make_llm()
    first = llm.complete([{"role": "user", "content": "Where?"}], logprobs=5)
    assert first.text == "Lisbon."
    assert first.usage.prompt_tokens == 117 and first.usage.completion_tokens == 3
    assert first.finish_reason == "stop"
    assert first.model == llm.config.model
    assert first.logprobs is None  # the API has none
    second = llm.complete([{"role": "user", "content": "Where?"}])
    assert second.text == "Lis" and second.finish_reason == "length"  # free text: returned


def test_capabilities_declare_no_json_mode_and_no_logprobs(
    make_llm: Callable[..., AnthropicLLM],
) -> None:
    caps = make_llm().capabilities
    assert (caps.json_mode, caps.json_schema, caps.logprobs) == (False, False, False)
    assert make_llm(structured_outputs=True).capabilities.json_schema is True
