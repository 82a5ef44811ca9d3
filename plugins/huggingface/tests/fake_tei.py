"""A fake Text Embeddings Inference server's /rerank route, speaking TEI's wire format."""

from __future__ import annotations

import json
import math
import re

from werkzeug import Request, Response

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
