"""A test-only llm provider ``scripted`` (no API key, no log-probs): it answers the reranker's
prompts as :func:`llm_fakes.judge` would on the 0-10 scale, after ``delay`` seconds, and
records its calls, the response formats asked for and its cancellations; registered in
tests with ``memsift.testing.registered``. ``json_schema: true`` makes it say it takes a
JSON schema (and answer JSON when asked), without checking its answers against it as the
openai provider does: ``answers`` (a document, or ``WINDOW``, -> the raw answer) then
reach the reranker's own reader as they are."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from llm_fakes import prompt_data

import memsift
from memsift import LLM, Completion, LLMCapabilities, LLMConfig, Usage
from memsift.completions import ResponseFormat
from memsift.testing.fake_rerank_api import relevance

NAME = "scripted"
#: The key of ``answers`` that answers every listwise window.
WINDOW = "<window>"


class ScriptedConfig(LLMConfig):
    model: str = "scripted-1"
    delay: float = 0.0
    json_schema: bool = False
    answers: dict[str, str] = {}


class ScriptedLLM(LLM):
    config: ScriptedConfig
    calls: list[str] = []
    formats: list[ResponseFormat | None] = []
    cancelled: list[str] = []
    _lock = threading.Lock()

    @property
    def capabilities(self) -> LLMCapabilities:
        return LLMCapabilities(json_schema=self.config.json_schema)

    def _answer(
        self, messages: Sequence[Mapping[str, str]], response_format: ResponseFormat | None
    ) -> Completion:
        query, docs, listwise = prompt_data({"messages": [dict(m) for m in messages]})
        with self._lock:
            self.calls.extend(docs)
            self.formats.append(response_format)
        structured = response_format is not None
        if listwise:
            order = sorted(range(len(docs)), key=lambda i: (-relevance(query, docs[i]), i))
            ids = [i + 1 for i in order]
            text = json.dumps({"ranking": ids}) if structured else " > ".join(map(str, ids))
            text = self.config.answers.get(WINDOW, text)
        else:
            score = round(10 * relevance(query, docs[0]))
            text = json.dumps({"score": score}) if structured else str(score)
            text = self.config.answers.get(docs[0], text)
        return Completion(text=text, usage=Usage(prompt_tokens=10, completion_tokens=1))

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        time.sleep(self.config.delay)
        return self._answer(messages, response_format)

    async def acomplete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        try:
            await asyncio.sleep(self.config.delay)
        except asyncio.CancelledError:
            with self._lock:
                self.cancelled.append(messages[-1]["content"])
            raise
        return self._answer(messages, response_format)


@memsift.hookimpl
def register_llms(registry: memsift.ProviderRegistrar[Any]) -> None:
    registry.register(NAME, ScriptedLLM, ScriptedConfig, description="test-only scripted LLM")
