"""A correct scripted LLM, and LLMs that each break one rule."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from memsift.completions import Completion
from memsift.interfaces import LLM, LLMConfig


class ScriptedLLMConfig(LLMConfig):
    model: str = "scripted-llm"


class ScriptedLLM(LLM):
    """Answers with the last message's content, as a JSON object when asked for JSON."""

    config: ScriptedLLMConfig

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        content = messages[-1]["content"] if messages else ""
        return Completion(json.dumps({"answer": content}) if response_format else content)


class ProseAroundJSON(ScriptedLLM):
    """Wraps the JSON answer in prose ("Sure! Here it is: {...}")."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        answer = super().complete(messages, **options).text
        fmt = options.get("response_format")
        return Completion(f"Sure! Here it is: {answer}" if fmt else answer)


class MutatesMessages(ScriptedLLM):
    """Drops the system message from the caller's list."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        if isinstance(messages, list) and messages and messages[0].get("role") == "system":
            messages.pop(0)
        return super().complete(messages, **options)


REFERENCE = ScriptedLLM

#: breakage id -> broken LLM class; the suite must fail each one.
BROKEN: dict[str, type[ScriptedLLM]] = {
    "prose-around-json": ProseAroundJSON,
    "mutates-messages": MutatesMessages,
}
