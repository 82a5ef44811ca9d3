"""``LLMConformance``: the contract every LLM provider must keep."""

from __future__ import annotations

import asyncio
import json

import pytest

from memsift.interfaces import LLM

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": 'Reply with the JSON object {"facts": ["the sky is blue"]}.'},
]


class LLMConformance:
    """Subclass it and provide an ``llm`` fixture returning a ready provider instance."""

    @pytest.fixture
    def llm(self) -> LLM:
        raise NotImplementedError("provide an `llm` fixture in your test class")

    def test_generate_returns_text(self, llm: LLM) -> None:
        answer = llm.generate(MESSAGES)
        assert isinstance(answer, str)

    def test_json_output_is_json(self, llm: LLM) -> None:
        answer = llm.generate(MESSAGES, json_output=True)
        assert isinstance(json.loads(answer), dict | list)

    def test_async_twin_returns_text(self, llm: LLM) -> None:
        answer = asyncio.run(llm.agenerate(MESSAGES))
        assert isinstance(answer, str)

    def test_model_name_is_a_string(self, llm: LLM) -> None:
        assert isinstance(llm.model_name, str)
