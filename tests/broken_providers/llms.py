"""A correct scripted LLM, and LLMs that each break one rule."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from memsift.interfaces import LLM, LLMConfig


class ScriptedLLMConfig(LLMConfig):
    model: str = "scripted-llm"


class ScriptedLLM(LLM):
    """Answers with the last message's content, as a JSON object when asked for JSON."""

    config: ScriptedLLMConfig

    def generate(self, messages: Sequence[Mapping[str, str]], *, json_output: bool = False) -> str:
        content = messages[-1]["content"] if messages else ""
        return json.dumps({"answer": content}) if json_output else content


class ProseAroundJSON(ScriptedLLM):
    """Wraps the JSON answer in prose ("Sure! Here it is: {...}")."""

    def generate(self, messages: Sequence[Mapping[str, str]], *, json_output: bool = False) -> str:
        answer = super().generate(messages, json_output=json_output)
        return f"Sure! Here it is: {answer}" if json_output else answer


class MutatesMessages(ScriptedLLM):
    """Drops the system message from the caller's list."""

    def generate(self, messages: Sequence[Mapping[str, str]], *, json_output: bool = False) -> str:
        if isinstance(messages, list) and messages and messages[0].get("role") == "system":
            messages.pop(0)
        return super().generate(messages, json_output=json_output)


REFERENCE = ScriptedLLM

#: breakage id -> broken LLM class; the suite must fail each one.
BROKEN: dict[str, type[ScriptedLLM]] = {
    "prose-around-json": ProseAroundJSON,
    "mutates-messages": MutatesMessages,
}
