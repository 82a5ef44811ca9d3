"""``LLMConformance``: the contract every LLM provider must keep."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from memsift.interfaces import LLM

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": 'Reply with the JSON object {"facts": ["the sky is blue"]}.'},
]


def messages() -> list[dict[str, str]]:
    """A fresh copy of :data:`MESSAGES` (so a provider that mutates it cannot hide it)."""
    return copy.deepcopy(MESSAGES)


UNICODE_MESSAGES = [
    {"role": "user", "content": "Zoë wohnt in Köln 🏠. 東京は日本の首都です. Reply in JSON."},
]


class LLMConformance:
    """The contract of :class:`memsift.LLM`, for LLM plugins.

    Subclass it and provide one fixture:

    ``llm``
        a fixture returning a ready provider instance (for a hosted provider: pointed at a
        fake or a local OpenAI-compatible server on 127.0.0.1).

    What is checked: ``generate`` returns a string, with ``json_output=True`` a JSON object
    or array, also for unicode input; the async twin does the same, also concurrently; the
    messages are not mutated; ``model_name`` is a string; ``close`` can be called twice.
    """

    @pytest.fixture
    def llm(self) -> LLM:
        raise NotImplementedError("provide an `llm` fixture in your test class")

    def test_generate_returns_text(self, llm: LLM) -> None:
        answer = llm.generate(messages())
        assert isinstance(answer, str)

    def test_json_output_is_json(self, llm: LLM) -> None:
        answer = llm.generate(messages(), json_output=True)
        assert isinstance(answer, str), f"generate must return a str, got {type(answer)}"
        assert isinstance(json.loads(answer), dict | list)

    def test_json_output_with_unicode_input(self, llm: LLM) -> None:
        answer = llm.generate(copy.deepcopy(UNICODE_MESSAGES), json_output=True)
        assert isinstance(json.loads(answer), dict | list)

    def test_messages_are_not_mutated(self, llm: LLM) -> None:
        given = messages()
        llm.generate(given, json_output=True)
        assert given == messages(), "generate changed the messages it was given"
        asyncio.run(llm.agenerate(given))
        assert given == messages(), "agenerate changed the messages it was given"

    def test_async_twin_returns_text(self, llm: LLM) -> None:
        answer = asyncio.run(llm.agenerate(messages()))
        assert isinstance(answer, str)

    def test_async_json_output_is_json(self, llm: LLM) -> None:
        async def run() -> list[str]:
            calls = [llm.agenerate(messages(), json_output=True) for _ in range(3)]
            return list(await asyncio.gather(*calls))

        for answer in asyncio.run(run()):
            assert isinstance(json.loads(answer), dict | list)

    def test_model_name_is_a_string(self, llm: LLM) -> None:
        assert isinstance(llm.model_name, str)

    def test_close_is_idempotent(self, llm: LLM) -> None:
        llm.generate(messages())
        llm.close()
        llm.close()
