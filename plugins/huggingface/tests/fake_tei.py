"""Fakes of a Text Embeddings Inference server's /rerank route, speaking TEI's wire format:
a handler for pytest-httpserver, and :class:`FakeTEI` for the core's hosted suite."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from werkzeug import Request, Response

from memsift.testing.fake_rerank_api import FakeRerankAPI

_WORD = re.compile(r"\w+")


def overlap_logit(query: str, text: str) -> float:
    """A deterministic stand-in for a model: shared words minus a length penalty."""
    q = set(_WORD.findall(query.lower()))
    words = _WORD.findall(text.lower())
    return 2.0 * len(q & set(words)) - 0.05 * len(words) - 1.0


def tei_answer(body: dict[str, object]) -> list[dict[str, float]]:
    """What TEI answers to a /rerank body: items sorted by score, best first."""
    query = str(body["query"])
    texts = [str(t) for t in body["texts"]]  # type: ignore[attr-defined]
    raw = bool(body.get("raw_scores", False))
    items = []
    for i, text in enumerate(texts):
        logit = overlap_logit(query, text)
        items.append({"index": i, "score": logit if raw else 1 / (1 + math.exp(-logit))})
    return sorted(items, key=lambda item: -item["score"])


def tei_handler(request: Request) -> Response:
    body = json.loads(request.get_data())
    if not isinstance(body.get("texts"), list) or not body["texts"]:
        return Response(
            json.dumps({"error": "`texts` cannot be empty", "error_type": "Validation"}),
            status=422,
            content_type="application/json",
        )
    return Response(json.dumps(tei_answer(body)), status=200, content_type="application/json")


class FakeTEI(FakeRerankAPI):
    """TEI's ``/rerank`` as a scripted :class:`~memsift.testing.fake_rerank_api.FakeRerankAPI`
    (for the core's suites): ``texts`` in the body, a JSON list of ``{"index", "score"}`` in
    the answer, ``{"error", "error_type"}`` in an error, at most 32 texts per request (TEI's
    default ``max_client_batch_size``)."""

    path = "/rerank"
    documents_key = "texts"
    allowed_keys = frozenset({"query", "texts", "raw_scores", "truncate"})
    required_keys = frozenset({"query", "texts"})
    default_max_documents = 32
    malformed_body = '[{"index": 0, '

    def check_body(self, body: dict[str, Any]) -> str | None:
        for key in ("raw_scores", "truncate"):
            if key in body and not isinstance(body[key], bool):
                return f"{key} must be a boolean"
        return None

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        return [{"index": r["index"], "score": r["relevance_score"]} for r in results]

    def error_body(self, message: str) -> Any:
        return {"error": message, "error_type": "Backend"}
