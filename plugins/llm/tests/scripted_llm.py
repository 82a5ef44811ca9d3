"""A test-only llm provider ``scripted`` (no API key, no log-probs): it answers the reranker's
prompts as :func:`llm_fakes.judge` would on the 0-10 scale, after ``DELAY`` seconds, and
records its calls and cancellations; registered in tests with ``memsift.testing.registered``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from llm_fakes import prompt_data

import memsift
from memsift import LLM, Completion, LLMConfig, Usage
from memsift.completions import ResponseFormat
from memsift.testing.fake_rerank_api import relevance

NAME = "scripted"


class ScriptedConfig(LLMConfig):
    model: str = "scripted-1"
    delay: float = 0.0


class ScriptedLLM(LLM):
    config: ScriptedConfig
    calls: list[str] = []
    cancelled: list[str] = []
    _lock = threading.Lock()

    def _answer(self, messages: Sequence[Mapping[str, str]]) -> Completion:
        query, docs, listwise = prompt_data({"messages": [dict(m) for m in messages]})
        with self._lock:
            self.calls.extend(docs)
        if listwise:
            order = sorted(range(len(docs)), key=lambda i: (-relevance(query, docs[i]), i))
            text = " > ".join(str(i + 1) for i in order)
        else:
            text = str(round(10 * relevance(query, docs[0])))
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
        return self._answer(messages)

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
        return self._answer(messages)


@memsift.hookimpl
def register_llms(registry: memsift.ProviderRegistrar[Any]) -> None:
    registry.register(NAME, ScriptedLLM, ScriptedConfig, description="test-only scripted LLM")
