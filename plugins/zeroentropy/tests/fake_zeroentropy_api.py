"""A fake of ZeroEntropy's rerank endpoint, served on 127.0.0.1 by pytest-httpserver.

It checks the request the real SDK sends (path, method, bearer token, JSON body) and
answers in the shape of the real API. Scores depend on the text of each document only,
never on its position, so the same document always gets the same score. Tests script
faults (429, 5xx, slow or malformed answers) with :meth:`FakeZeroEntropyAPI.fail`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PATH = "/v1/models/rerank"
API_KEY = "ze-test-key-8d2c4b6a1e0f"
MODELS = {"zerank-2", "zerank-1", "zerank-1-small"}
#: What the plugin may send; anything else in the body is a violation.
ALLOWED_KEYS = {"model", "query", "documents", "top_n", "latency"}
REQUIRED_KEYS = {"model", "query", "documents"}
_TOKEN = re.compile(r"\w+", re.UNICODE)


def relevance(query: str, document: str) -> float:
    """A deterministic score in [0, 1] from the texts alone: shared words, plus a small
    content hash so that different documents rarely tie."""
    q = set(_TOKEN.findall(query.casefold()))
    d = set(_TOKEN.findall(document.casefold()))
    overlap = len(q & d) / len(q) if q else 0.0
    jitter = int(hashlib.sha256(document.encode()).hexdigest()[:8], 16) % 1000 / 100_000
    return round(min(1.0, 0.9 * overlap + jitter), 6)


def request_bytes(query: str, documents: list[str]) -> int:
    """A request's size as the API counts it against its limits."""
    return sum(150 + len(query.encode()) + len(d.encode()) for d in documents)


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """A scripted answer: an HTTP status with a JSON (or raw) body and headers, a
    ``delay`` before answering, or a kind of broken success (``malformed_json``,
    ``bad_index``)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    kind: str | None = None


class FakeZeroEntropyAPI:
    """The fake endpoint. One per test session; :meth:`reset` between tests."""

    def __init__(self, server: HTTPServer, api_key: str) -> None:
        self.server = server
        self.api_key = api_key
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.reset()
        server.expect_request(PATH).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        """The base URL as the SDK takes it: with the API version, ``/v1``."""
        return f"http://127.0.0.1:{self.server.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.requests: list[Seen] = []
            self.violations: list[str] = []
            self.scores: dict[str, float] = {}
            self.faults: deque[Fault] = deque()
            self.always: Fault | None = None
            self.delay = 0.0
            self.in_flight = 0
            self.max_in_flight = 0
            self.max_bytes = 5_000_000
        self.release.clear()

    def fail(self, *faults: Fault, always: Fault | None = None) -> None:
        """Answer the next requests with ``faults`` (in order), then ``always`` if given."""
        with self._lock:
            self.faults.extend(faults)
            self.always = always

    def documents_sent(self) -> list[list[str]]:
        return [r.body["documents"] for r in self.requests if isinstance(r.body, dict)]

    # ------------------------------------------------------------------ serving

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        seen = Seen(request.method, request.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(seen)
            fault = self.faults.popleft() if self.faults else self.always
            delay = self.delay
        if request.method != "POST":
            return self._violation(f"method {request.method}, expected POST", status=405)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(401, {"detail": "Invalid API Key"})
        problem = self._check_body(request, body)
        if problem:
            return self._violation(problem)
        pause = max(delay, fault.delay if fault else 0.0)
        if pause:
            self.release.wait(pause)
        if fault is not None and fault.kind is None and fault.status != 200:
            if isinstance(fault.body, str):
                return Response(fault.body, status=fault.status, headers=fault.headers)
            payload = fault.body if fault.body is not None else {"detail": "fault"}
            return _json(fault.status, payload, fault.headers)
        if fault is not None and fault.kind == "malformed_json":
            return Response(
                '{"actual_latency_mode": "fast", "results": [{"index": 0, ',
                status=200,
                content_type="application/json",
            )
        results = self._rank(body)
        if fault is not None and fault.kind == "bad_index":
            results[0]["index"] = len(body["documents"]) + 5
        size = request_bytes(body["query"], body["documents"])
        return _json(
            200,
            {
                "actual_latency_mode": body.get("latency") or "fast",
                "e2e_latency": 0.012,
                "inference_latency": 0.008,
                "results": results,
                "total_bytes": size,
                "total_tokens": size // 4,
            },
        )

    def _check_body(self, request: Request, body: Any) -> str | None:
        if not (request.content_type or "").startswith("application/json"):
            return f"content type {request.content_type!r}, expected application/json"
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        unknown = set(body) - ALLOWED_KEYS
        if unknown:
            return f"unexpected keys in the body: {sorted(unknown)}"
        missing = REQUIRED_KEYS - set(body)
        if missing:
            return f"missing keys in the body: {sorted(missing)}"
        if body["model"] not in MODELS:
            return f"unknown model {body['model']!r}"
        if "latency" in body and body["latency"] not in ("fast", "slow"):
            return "latency must be 'fast' or 'slow'"
        if not isinstance(body["query"], str) or not body["query"].strip():
            return "query must be a non-empty string"
        docs = body["documents"]
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            return "documents must be a non-empty list of strings"
        size = request_bytes(body["query"], docs)
        if size > self.max_bytes:
            return f"the request counts {size} bytes; the limit is {self.max_bytes}"
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or not 1 <= top_n <= len(docs)):
            return f"top_n must be between 1 and {len(docs)}"
        return None

    def _rank(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        query, docs = body["query"], body["documents"]
        scored = [
            {"index": i, "relevance_score": self.scores.get(d, relevance(query, d))}
            for i, d in enumerate(docs)
        ]
        scored.sort(key=lambda r: -r["relevance_score"])
        return scored[: body.get("top_n") or len(docs)]

    def _violation(self, problem: str, status: int = 400) -> Response:
        with self._lock:
            self.violations.append(problem)
        return _json(status, {"detail": f"invalid request: {problem}"})


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def memory_config(path: Any, base_url: str, **options: Any) -> dict[str, Any]:
    """A Memory config: the FAISS store in ``path``, the zero_entropy reranker on the fake."""
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(path)}},
        "reranker": {
            "provider": "zero_entropy",
            "config": {"api_key": API_KEY, "base_url": base_url, **options},
        },
    }
