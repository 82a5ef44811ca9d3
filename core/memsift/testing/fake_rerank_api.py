"""A scripted fake of a hosted rerank HTTP API, for testing reranker plugins offline.

The fake is served by pytest-httpserver (install ``memsift[test]`` or ``pytest-httpserver``)
and is opt-in: import it from this module, not from :mod:`memsift.testing`::

    from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault, threaded_server

    with threaded_server() as server:
        api = FakeRerankAPI(server, "test-key", path="/v1/rerank")
        ...  # point the plugin at api.base_url, then look at api.requests
        api.verify()

It records every request (method, path, headers, JSON body), checks the bearer token and the
body, and answers ``{"results": [{"index", "relevance_score"}, ...]}`` sorted by score. Scores
depend on the text of each document only, so the same document always gets the same score.
Tests script faults (429, 5xx, slow or malformed answers) with :meth:`FakeRerankAPI.fail`.

To mimic a particular provider, subclass it and set :attr:`~FakeRerankAPI.path`,
:attr:`~FakeRerankAPI.documents_key`, :attr:`~FakeRerankAPI.allowed_keys` and friends, or
override :meth:`~FakeRerankAPI.check_body`, :meth:`~FakeRerankAPI.response_body` and
:meth:`~FakeRerankAPI.error_body`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

__all__ = [
    "FakeRerankAPI",
    "Fault",
    "RecordedRequest",
    "relevance",
    "threaded_server",
]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def relevance(query: str, document: str) -> float:
    """A deterministic score in [0, 1] from the texts alone: shared words, plus a small
    content hash so that different documents rarely tie."""
    q = set(_TOKEN.findall(query.casefold()))
    d = set(_TOKEN.findall(document.casefold()))
    overlap = len(q & d) / len(q) if q else 0.0
    jitter = int(hashlib.sha256(document.encode()).hexdigest()[:8], 16) % 1000 / 100_000
    return round(min(1.0, 0.9 * overlap + jitter), 6)


@dataclass
class RecordedRequest:
    """One request the fake received; ``body`` is the parsed JSON, or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """A scripted answer: an HTTP status with a JSON body (a ``str`` body is sent raw) and
    headers such as ``Retry-After``, a ``delay`` in seconds before answering, or a kind of
    broken success: ``malformed_json`` (a truncated body) or ``bad_index`` (a result that
    points past the documents). ``Fault(status=200)`` answers normally."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    kind: Literal["malformed_json", "bad_index"] | None = None


@contextmanager
def threaded_server(host: str = "127.0.0.1") -> Iterator[HTTPServer]:
    """A started, threaded HTTPServer on a free port (threaded, so that concurrent
    requests overlap); stopped on exit."""
    server = HTTPServer(host=host, port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


class FakeRerankAPI:
    """A fake rerank endpoint on ``server``. Build one per server; :meth:`reset` between
    tests and :meth:`verify` after each.

    Tunable per test (reset by :meth:`reset`): ``delay`` (seconds before every answer),
    ``scores`` (document text -> score, overriding :func:`relevance`) and ``max_documents``.
    Observed: ``requests``, ``violations`` (invalid requests, answered 4xx) and
    ``max_in_flight`` (the most requests served at once).
    """

    #: The endpoint's path on the server.
    path: str = "/rerank"
    #: Appended to the server's address in :attr:`base_url`, e.g. an API version ``/v1``.
    base_path: ClassVar[str] = ""
    #: The header that carries the key, and what precedes the key in it.
    auth_header: ClassVar[str] = "Authorization"
    auth_scheme: ClassVar[str] = "Bearer "
    #: The message of the 401 answer to a wrong or missing key.
    auth_error: ClassVar[str] = "invalid api token"
    #: The body key that holds the documents (a list of strings).
    documents_key: ClassVar[str] = "documents"
    #: What a client may send; anything else in the body is a violation.
    allowed_keys: ClassVar[frozenset[str]] = frozenset({"model", "query", "documents", "top_n"})
    required_keys: ClassVar[frozenset[str]] = frozenset({"model", "query", "documents"})
    #: The accepted models; None accepts any non-empty string.
    models: ClassVar[frozenset[str] | None] = None
    #: The default of ``max_documents`` after :meth:`reset`; None for no limit.
    default_max_documents: ClassVar[int | None] = 1000
    #: The body of a ``malformed_json`` fault.
    malformed_body: ClassVar[str] = '{"results": [{"index": 0, '

    requests: list[RecordedRequest]
    violations: list[str]
    scores: dict[str, float]
    faults: deque[Fault]
    always: Fault | None
    delay: float
    in_flight: int
    max_in_flight: int
    max_documents: int | None

    def __init__(self, server: HTTPServer, api_key: str, *, path: str | None = None) -> None:
        self.server = server
        self.api_key = api_key
        if path is not None:
            self.path = path
        self._lock = threading.Lock()
        #: Set it to end every pending ``delay`` now (e.g. in a fixture's teardown).
        self.release = threading.Event()
        self.reset()
        server.expect_request(self.path).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        """The URL to give the client under test."""
        return f"http://{self.server.host}:{self.server.port}{self.base_path}"

    def reset(self) -> None:
        """Forget requests, violations and scripted faults; restore the defaults."""
        with self._lock:
            self.requests = []
            self.violations = []
            self.scores = {}
            self.faults = deque()
            self.always = None
            self.delay = 0.0
            self.in_flight = 0
            self.max_in_flight = 0
            self.max_documents = self.default_max_documents
        self.release.clear()

    def fail(self, *faults: Fault, always: Fault | None = None) -> None:
        """Answer the next requests with ``faults`` (in order), then ``always`` if given."""
        with self._lock:
            self.faults.extend(faults)
            self.always = always

    def documents_sent(self) -> list[list[str]]:
        """The documents (:attr:`documents_key`) of each well-formed request, in order."""
        key = self.documents_key
        return [r.body[key] for r in self.requests if isinstance(r.body, dict) and key in r.body]

    def verify(self) -> None:
        """Let slow answers finish, re-raise errors from the handler, and fail if the
        client sent an invalid request."""
        self.release.set()
        with self._lock:
            violations = list(self.violations)
        self.server.check_handler_errors()
        assert not violations, f"the client sent invalid requests: {violations}"

    # ------------------------------------------------------------------ hooks

    def check_body(self, body: dict[str, Any]) -> str | None:
        """A provider's own checks of a body that passed the common ones; the problem, or
        None. Override to add some (call ``super()``); the default accepts all."""
        return None

    def score(self, query: str, document: str) -> float:
        """The relevance score of ``document``: ``scores`` if set there, else
        :func:`relevance`."""
        return self.scores.get(document, relevance(query, document))

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        """The JSON of a successful answer to ``body``, given its ranked ``results``
        (``{"index", "relevance_score"}`` each, best first, cut to ``top_n``)."""
        return {"results": results}

    def error_body(self, message: str) -> Any:
        """The JSON of an error answer."""
        return {"message": message}

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
        body: Any = request.get_json(silent=True)
        seen = RecordedRequest(request.method, request.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(seen)
            fault = self.faults.popleft() if self.faults else self.always
            delay = self.delay
        if request.method != "POST":
            return self._violation(f"method {request.method}, expected POST", status=405)
        if request.headers.get(self.auth_header) != f"{self.auth_scheme}{self.api_key}":
            return _json(401, self.error_body(self.auth_error))
        problem = self._check(request, body)
        if problem:
            return self._violation(problem)
        pause = max(delay, fault.delay if fault else 0.0)
        if pause:
            self.release.wait(pause)
        if fault is not None and fault.kind is None and fault.status != 200:
            if isinstance(fault.body, str):
                return Response(fault.body, status=fault.status, headers=fault.headers)
            payload = fault.body if fault.body is not None else self.error_body("fault")
            return _json(fault.status, payload, fault.headers)
        if fault is not None and fault.kind == "malformed_json":
            return Response(self.malformed_body, status=200, content_type="application/json")
        results = self._rank(body)
        if fault is not None and fault.kind == "bad_index":
            results[0]["index"] = len(body[self.documents_key]) + 5
        return _json(200, self.response_body(body, results))

    def _check(self, request: Request, body: Any) -> str | None:
        if not (request.content_type or "").startswith("application/json"):
            return f"content type {request.content_type!r}, expected application/json"
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        unknown = set(body) - self.allowed_keys
        if unknown:
            return f"unexpected keys in the body: {sorted(unknown)}"
        missing = self.required_keys - set(body)
        if missing:
            return f"missing keys in the body: {sorted(missing)}"
        if "model" in body:
            model = body["model"]
            if not isinstance(model, str) or not model:
                return "model must be a non-empty string"
            if self.models is not None and model not in self.models:
                return f"unknown model {model!r}"
        if not isinstance(body.get("query"), str) or not body["query"].strip():
            return "query must be a non-empty string"
        docs = body.get(self.documents_key)
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            return f"{self.documents_key} must be a non-empty list of strings"
        if self.max_documents is not None and len(docs) > self.max_documents:
            return f"{len(docs)} documents in one request; the limit is {self.max_documents}"
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or not 1 <= top_n <= len(docs)):
            return f"top_n must be between 1 and {len(docs)}"
        return self.check_body(body)

    def _rank(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        query, docs = body["query"], body[self.documents_key]
        scored = [{"index": i, "relevance_score": self.score(query, d)} for i, d in enumerate(docs)]
        scored.sort(key=lambda r: -r["relevance_score"])
        return scored[: body.get("top_n") or len(docs)]

    def _violation(self, problem: str, status: int = 400) -> Response:
        with self._lock:
            self.violations.append(problem)
        return _json(status, self.error_body(f"invalid request: {problem}"))


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=headers, content_type="application/json"
    )
