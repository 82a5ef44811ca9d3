"""A test-only plugin, installed through a real entry point by the core's nox session.

Rerankers read their score from the document text: a marker ``[r=0.83]`` gives 0.83, any
other document scores 0.5. That lets a test decide the rerank order exactly.

Set ``MEMSIFT_TESTPLUGIN_FAIL_IMPORT=1`` to make importing this plugin raise.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

import memsift
from memsift.interfaces import check_rerank_input

if os.environ.get("MEMSIFT_TESTPLUGIN_FAIL_IMPORT") == "1":
    raise ImportError("memsift-testplugin was told to fail on import")

_MARK = re.compile(r"\[r=([0-9.]+)\]")


def scripted_score(document: str) -> float:
    found = _MARK.search(document)
    return float(found.group(1)) if found else 0.5


class ScriptedConfig(memsift.RerankerConfig):
    model: str = "scripted-v1"
    delay: float = Field(default=0.0, ge=0.0, description="seconds to sleep per call")


class ScriptedReranker(memsift.Reranker):
    """Scores from ``[r=...]`` markers; records every call (query, documents)."""

    config: ScriptedConfig
    calls: list[tuple[str, list[str]]] = []
    _lock = threading.Lock()

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        with self._lock:
            type(self).calls.append((query, docs))
        if self.config.delay:
            time.sleep(self.config.delay)
        return [scripted_score(d) for d in docs]


class FailingReranker(memsift.Reranker):
    """Always raises, like a provider whose service is down."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        check_rerank_input(query, documents)
        raise RuntimeError("scripted failure")


class BadScoresConfig(memsift.RerankerConfig):
    mode: str = Field(default="too_few", description="too_few, out_of_range or nan")


class BadScoresReranker(memsift.Reranker):
    """Breaks the score contract in a chosen way."""

    config: BadScoresConfig

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if self.config.mode == "too_few":
            return [0.5] * max(0, len(docs) - 1)
        if self.config.mode == "out_of_range":
            return [1.5] * len(docs)
        return [float("nan")] * len(docs)


class EchoLLMConfig(memsift.LLMConfig):
    model: str = "echo"


class EchoLLM(memsift.LLM):
    """Answers the extraction prompt with each user message as one fact."""

    calls: list[list[dict[str, str]]] = []

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> memsift.Completion:
        type(self).calls.append([dict(m) for m in messages])
        body = messages[-1]["content"]
        lines = [ln for ln in body.splitlines() if ln.startswith("{")]
        facts = [json.loads(ln)["content"] for ln in lines if json.loads(ln)["role"] == "user"]
        return memsift.Completion(json.dumps({"facts": facts}))


class HashingConfig(memsift.EmbedderConfig):
    model: str = "hashing-64"
    dims: int = Field(default=64, ge=8, le=1024)


class HashingEmbedder(memsift.Embedder):
    """A fast deterministic bag-of-words embedder (crc32 of each lowercased word)."""

    config: HashingConfig

    @property
    def dims(self) -> int:
        return self.config.dims

    def embed(self, texts: Sequence[str], *, purpose: str = "document") -> Any:
        import zlib

        import numpy as np

        if isinstance(texts, str) or any(not isinstance(t, str) for t in texts):
            raise memsift.InvalidInputError("texts must be a list of strings")
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dims] += 1.0
            out[i, 0] += 1e-3  # never a zero vector
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


SEARCH_EVENTS: list[Any] = []


@memsift.hookimpl
def register_rerankers(registry: memsift.ProviderRegistrar) -> None:
    registry.register(
        "scripted", ScriptedReranker, ScriptedConfig, description="scores from markers"
    )
    registry.register(
        "failing", FailingReranker, memsift.RerankerConfig, description="always fails"
    )
    registry.register(
        "bad_scores", BadScoresReranker, BadScoresConfig, description="breaks the contract"
    )


@memsift.hookimpl
def register_embedders(registry: memsift.ProviderRegistrar) -> None:
    registry.register("hashing", HashingEmbedder, HashingConfig, description="bag-of-words hashing")


@memsift.hookimpl
def register_llms(registry: memsift.ProviderRegistrar) -> None:
    registry.register("echo", EchoLLM, EchoLLMConfig, description="echoes user messages as facts")


@memsift.hookimpl
def memsift_search_completed(event: Any) -> None:
    SEARCH_EVENTS.append(event)
