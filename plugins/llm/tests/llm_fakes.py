"""What the tests share besides fixtures: the fake API's key, and a responder for the core's
fake OpenAI server that answers the reranker's prompts by their content (so concurrent
requests each get their own answer, whatever order they arrive in)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from memsift.testing.fake_openai_api import FakeOpenAI, Reply, Responder, last_user_text
from memsift.testing.fake_rerank_api import relevance

#: The key the reranker is given, and the fake API expects (and quotes in a 401).
API_KEY = "sk-test-llm-0123456789abcdefXYZ"
QUERY = "Where does Alice live?"

_TAG = re.compile(r"<(query|document)(?: id=\"(\d+)\")?>\n(.*?)\n</\1>", re.DOTALL)

Score = Callable[[str, str], float]
#: The nested ``capabilities`` of an openai llm that takes no JSON format: free-text answers.
TEXT_ONLY = {"json_schema": False, "json_object": False}


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def prompt_data(body: dict[str, Any]) -> tuple[str, list[str], bool]:
    """The query, the documents and whether it is a listwise request, read from the tags of
    a request's user message."""
    text = last_user_text(body.get("messages"))
    query = ""
    docs: list[str] = []
    listwise = False
    for match in _TAG.finditer(text):
        if match.group(1) == "query":
            query = unescape(match.group(3))
        else:
            docs.append(unescape(match.group(3)))
            listwise = listwise or match.group(2) is not None
    return query, docs, listwise


def yes_no(score: float) -> dict[str, float]:
    """The first token's alternatives for which P("yes") given yes or no is ``score``."""
    if score <= 0.0:
        return {"no": 0.0}
    if score >= 1.0:
        return {"yes": 0.0}
    return {"yes": math.log(score), "no": math.log(1.0 - score)}


def json_tokens(key: str, value: dict[str, float]) -> list[dict[str, float]]:
    """The tokens of ``{"<key>": "<value>"}``, ``value`` the alternatives at its position."""
    return [{'{"': 0.0}, {key: 0.0}, {'": "': 0.0}, value, {'"}': 0.0}]


def asked_json(body: dict[str, Any]) -> bool:
    """Whether a request asks for JSON: by a response format, or (a server that takes none)
    by the reranker's JSON instructions."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        return True
    messages = body.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else {}
    return isinstance(first, dict) and "the JSON object" in str(first.get("content", ""))


def judge(score: Score = relevance) -> Responder:
    """Answers as a model that follows the reranker's format: P("yes") = ``score`` when
    log-probs are asked, else ``round(10 * score)``; a listwise window ranked by ``score``;
    as JSON when the request asks for a JSON schema, else as free text."""

    def respond(body: dict[str, Any]) -> Reply:
        query, docs, listwise = prompt_data(body)
        structured = asked_json(body)
        if listwise:
            order = sorted(range(len(docs)), key=lambda i: (-score(query, docs[i]), i))
            if structured:
                return Reply(json.dumps({"ranking": [i + 1 for i in order]}))
            return Reply(" > ".join(f"[{i + 1}]" for i in order))
        value = score(query, docs[0])
        if body.get("logprobs"):
            if structured:
                return Reply(tokens=json_tokens("relevant", yes_no(value)))
            return Reply(tokens=[yes_no(value)])
        if structured:
            return Reply(json.dumps({"score": round(10 * value)}))
        return Reply(str(round(10 * value)))

    return respond


def scores_by_text(table: dict[str, float], default: float = 0.5) -> Score:
    def score(query: str, document: str) -> float:
        return table.get(document, default)

    return score


def section(
    fake_api: FakeOpenAI, llm: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """A reranker section for the fake: the seed-shaped flat keys, and ``base_url`` (and no
    retries unless asked) in the nested llm config, with ``llm`` merged into it."""
    nested = {"base_url": fake_api.base_url, "max_retries": 0, **(llm or {})}
    config = {
        "provider": "openai",
        "model": "gpt-5-mini",
        "api_key": API_KEY,
        "llm": {"provider": "openai", "config": nested},
        **options,
    }
    return {"provider": "llm_reranker", "config": config}
