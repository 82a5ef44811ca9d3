"""The fakes of :mod:`providers`, served on 127.0.0.1: loaded by file path from the plugins'
test folders, wrapped as a :class:`Served` with one fault scripter for all of them, and the
target's wrong answers (the ``mutate`` functions of the catalogue).

The chat fakes answer as a cooperative model: the ``llm_reranker``'s prompts by their content
(scores from :func:`memsift.testing.fake_rerank_api.relevance`), and a memory-extraction
prompt with the user messages as facts (:func:`extraction_answer`).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from memsift.testing.fake_openai_api import FakeOpenAI, Reply
from memsift.testing.fake_openai_api import Fault as OpenAIFault
from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault, relevance, threaded_server

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"


def load(path: Path, name: str) -> ModuleType:
    """The module at ``path``, imported once under the unique name ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cohere_module() -> ModuleType:
    return load(PLUGINS / "cohere/tests/fake_cohere_api.py", "memsift_drill_fake_cohere")


def zeroentropy_module() -> ModuleType:
    return load(
        PLUGINS / "zeroentropy/tests/fake_zeroentropy_api.py", "memsift_drill_fake_zeroentropy"
    )


def tei_module() -> ModuleType:
    return load(PLUGINS / "huggingface/tests/fake_tei.py", "memsift_drill_fake_tei")


def _anthropic() -> ModuleType:
    return load(PLUGINS / "anthropic/tests/fake_anthropic_api.py", "memsift_drill_fake_anthropic")


def _llm_fakes() -> ModuleType:
    return load(PLUGINS / "llm/tests/llm_fakes.py", "memsift_drill_llm_fakes")


# --------------------------------------------------------------------------- served fakes


@dataclass
class Served:
    """A fake on a running server; see the module docstring."""

    fake: Any
    api_key: str
    base_url: str
    host: str
    port: int
    #: the generic fault scripter of this fake (see :meth:`fail`)
    _fail: Callable[[int, Any, dict[str, str], float, int, bool], None] = field(repr=False)

    @property
    def requests(self) -> list[Any]:
        return list(self.fake.requests)

    @property
    def request_count(self) -> int:
        return len(self.fake.requests)

    def reset(self) -> None:
        self.fake.reset()

    def verify(self) -> None:
        self.fake.verify()

    def fail(
        self,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
        always: bool = False,
    ) -> None:
        """Answer the next ``times`` requests (or, ``always``, every later one) with
        ``status``; see the module docstring."""
        self._fail(status, body, dict(headers or {}), delay, times, always)


def _rerank_fail(fake: FakeRerankAPI) -> Callable[..., None]:
    def fail(
        status: int, body: Any, headers: dict[str, str], delay: float, times: int, always: bool
    ) -> None:
        fault = Fault(status=status, body=body, headers=headers, delay=delay)
        if always:
            fake.fail(always=fault)
        else:
            fake.fail(*[fault] * times)

    return fail


def _openai_fail(fake: FakeOpenAI, endpoint: Literal["chat", "embeddings"]) -> Callable[..., None]:
    def fail(
        status: int, body: Any, headers: dict[str, str], delay: float, times: int, always: bool
    ) -> None:
        fault = OpenAIFault(status=status, body=body, headers=headers, delay=delay)
        if always:
            fake.fail(always=fault, endpoint=endpoint)
        else:
            fake.fail(*[fault] * times, endpoint=endpoint)

    return fail


def _anthropic_fail(fake: Any) -> Callable[..., None]:
    module = _anthropic()

    def fail(
        status: int, body: Any, headers: dict[str, str], delay: float, times: int, always: bool
    ) -> None:
        if body is None:
            reply = module.Reply(status=status, headers=headers, delay=delay, message="fault")
        else:
            raw = body if isinstance(body, str) else json.dumps(body)
            reply = module.Reply(status=status, headers=headers, delay=delay, body=raw)
        if always:
            fake.script(always=reply)
        else:
            fake.script(*[reply] * times)

    return fail


def quiet_server_logs() -> None:
    """Keep the servers' access log (one line per request) out of the test output."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def _served(fake: Any, api_key: str, fail: Callable[..., None]) -> Served:
    quiet_server_logs()
    server = fake.server
    return Served(fake, api_key, fake.base_url, server.host, server.port, fail)


def _facts_of(text: str) -> list[str]:
    """The facts a cooperative model extracts from an extraction prompt: the user messages
    of its ``<new_messages>`` section (one JSON object per line), at most three."""
    section = text.split("<new_messages>", 1)[-1].split("</new_messages>", 1)[0]
    facts: list[str] = []
    for line in section.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("role") == "user":
            facts.append(str(message.get("content", "")).strip()[:200])
    return [f for f in facts if f][:3] or ["fact"]


def extraction_answer(system: str, user: str) -> str | None:
    """The JSON answer of a cooperative model to a memory-extraction request (its system and
    last user message), or None when the request is not one: the user messages as facts, and
    no update or delete in reconcile mode."""
    if "<new_messages>" not in user:
        return None
    answer: dict[str, Any] = {"facts": _facts_of(user)}
    if '"update"' in system:
        answer.update(update=[], delete=[])
    return json.dumps(answer)


def _system_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    return "\n".join(
        str(m.get("content", ""))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "system"
    )


def _openai_responder(reranking: bool) -> Any:
    judge = _llm_fakes().judge() if reranking else None
    from memsift.testing.fake_openai_api import last_user_text

    def respond(body: dict[str, Any]) -> Reply | None:
        if judge is not None:
            answer: Reply = judge(body)
            return answer
        messages = body.get("messages")
        text = extraction_answer(_system_text(messages), last_user_text(messages))
        return None if text is None else Reply(text)

    return respond


@contextmanager
def serve_rerank(fake_class: Callable[[], type[FakeRerankAPI]], api_key: str) -> Iterator[Served]:
    with threaded_server() as server:
        fake = fake_class()(server, api_key)
        try:
            yield _served(fake, api_key, _rerank_fail(fake))
        finally:
            fake.release.set()


@contextmanager
def serve_openai(
    api_key: str, endpoint: Literal["chat", "embeddings"], reranking: bool = False
) -> Iterator[Served]:
    with threaded_server() as server:
        fake = _DrillOpenAI(server, api_key)
        fake.drill_responder = _openai_responder(reranking)
        fake.reset()
        try:
            yield _served(fake, api_key, _openai_fail(fake, endpoint))
        finally:
            fake.release.set()


class _DrillOpenAI(FakeOpenAI):
    """The core's fake, whose chat answers survive :meth:`reset`: the reranker's judge, or
    facts extracted from the last user message."""

    drill_responder: Any = None

    def reset(self) -> None:
        super().reset()
        self.responder = self.drill_responder


def _anthropic_class() -> type[Any]:
    module = _anthropic()

    class DrillAnthropic(module.FakeAnthropicAPI):  # type: ignore[name-defined,misc]
        """The plugin's fake, answering the reranker's prompts by their content and an
        extraction prompt with the user's sentences."""

        def _cooperative(self, body: dict[str, Any]) -> str:
            messages = body["messages"]
            prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
            user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            system = module._system(body)
            query, docs, listwise = _llm_fakes().prompt_data({"messages": messages})
            full: str | None = None
            if docs and not listwise:
                value = round(10 * relevance(query, docs[0]))
                structured = "output_config" in body or "JSON object" in system + user
                full = json.dumps({"score": value}) if structured else str(value)
            else:
                full = extraction_answer(system, user)
            if full is None:
                text: str = super()._cooperative(body)
                return text
            return full[len(prefill) :] if prefill and full.startswith(prefill) else full

    return DrillAnthropic


@contextmanager
def serve_anthropic(api_key: str) -> Iterator[Served]:
    with threaded_server() as server:
        fake = _anthropic_class()(server, api_key)
        try:
            yield _served(fake, api_key, _anthropic_fail(fake))
        finally:
            fake.release.set()


# --------------------------------------------------------------------------- wrong answers

#: The wrong answers of a hosted reranker: a result missing, an index past the documents, and
#: an index repeated (another one missing).
RERANK_MUTATIONS = ("wrong_count", "bad_index", "dup_index")
#: The wrong answers of an LLM: text that is no answer at all, and JSON of the wrong shape.
LLM_MUTATIONS = ("bad_answer", "wrong_shape")
#: The wrong answers of an embedder: a vector missing, and vectors one dimension short.
EMBED_MUTATIONS = ("wrong_count", "wrong_dims")


def _mutate_results(results: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    results = [dict(r) for r in results]
    if kind == "wrong_count":
        return results[:-1]
    if kind == "bad_index":
        results[0]["index"] = len(results) + 5
    elif kind == "dup_index" and len(results) > 1:
        results[1]["index"] = results[0]["index"]
    return results


def mutate_rerank(kind: str, answer: Any) -> Any:
    """A rerank answer (``{"results": [...]}``, or TEI's bare list) made wrong."""
    if isinstance(answer, list):
        return _mutate_results(answer, kind)
    return {**answer, "results": _mutate_results(answer["results"], kind)}


WRONG_SHAPE = {"facts": "not a list", "score": "high", "relevant": 3}
NO_ANSWER = "I am not able to help with that."


def mutate_openai_chat(kind: str, answer: Any) -> Any:
    """A chat completion whose message is no answer (``bad_answer``) or JSON of the wrong
    shape (``wrong_shape``), without log-probs."""
    text = NO_ANSWER if kind == "bad_answer" else json.dumps(WRONG_SHAPE)
    choices = [
        {**c, "message": {**c["message"], "content": text}, "logprobs": None}
        for c in answer["choices"]
    ]
    return {**answer, "choices": choices}


def mutate_anthropic(kind: str, answer: Any) -> Any:
    """A message whose text is no answer, or JSON of the wrong shape."""
    text = NO_ANSWER if kind == "bad_answer" else json.dumps(WRONG_SHAPE)
    return {**answer, "content": [{"type": "text", "text": text}]}


def mutate_embeddings(kind: str, answer: Any) -> Any:
    """An embeddings answer with a row missing, or every vector one component short."""
    rows = [dict(r) for r in answer["data"]]
    if kind == "wrong_count":
        rows = rows[:-1]
    else:
        for row in rows:
            vector = row["embedding"]
            if isinstance(vector, str):
                values = np.frombuffer(base64.b64decode(vector), dtype=np.float32)[:-1]
                row["embedding"] = base64.b64encode(values.tobytes()).decode()
            else:
                row["embedding"] = vector[:-1]
    return {**answer, "data": rows}


__all__ = [
    "EMBED_MUTATIONS",
    "LLM_MUTATIONS",
    "RERANK_MUTATIONS",
    "Served",
    "extraction_answer",
    "load",
    "mutate_anthropic",
    "mutate_embeddings",
    "mutate_openai_chat",
    "mutate_rerank",
    "quiet_server_logs",
    "serve_anthropic",
    "serve_openai",
    "serve_rerank",
]
