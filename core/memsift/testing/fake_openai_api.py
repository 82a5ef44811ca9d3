"""A scripted fake of OpenAI's chat-completions and embeddings API, for testing offline.

It speaks the real wire format (``POST /v1/chat/completions``, ``POST /v1/embeddings``,
bearer-token auth, OpenAI's error bodies), so the official ``openai`` SDK, or any client of an
OpenAI-compatible server, can be pointed at it through its base-URL option. It is served by
pytest-httpserver (in ``memsift[testing]``) and is opt-in: import it from this module, not from
:mod:`memsift.testing`::

    from memsift.testing.fake_openai_api import FakeOpenAI, Fault, Reply, threaded_server

    with threaded_server() as server:
        api = FakeOpenAI(server, "test-key")
        api.reply(Reply('{"facts": ["likes tea"]}'))
        ...  # point the client at api.base_url, then look at api.requests
        api.verify()

Chat answers are scripted per request with :meth:`FakeOpenAI.reply` (text, log-probs or none,
scripted token log-probs, a finish reason, a delay), or by content with
:attr:`FakeOpenAI.responder`, a function of the request body that returns the reply (or a
fault) for it, so that concurrent requests each get their own answer whatever the order
they arrive in; without either the fake answers deterministically (a JSON document
valid for the requested schema, a JSON object, or an echo of the last user message). Faults are
scripted with :meth:`FakeOpenAI.fail`: an HTTP status with OpenAI's error body (401 echoing the
bearer key, as a worst case for secret scrubbing; 429 with ``Retry-After``; 5xx), a delay
longer than the client's timeout, a malformed JSON body, an answer without choices or content,
a truncated answer (``finish_reason: "length"``), and for embeddings vectors of the wrong
dimension. What an OpenAI-compatible server may lack is switched per test: log-probs ignored
(:attr:`~FakeOpenAI.supports_logprobs`), ``json_schema`` or ``json_object`` refused with a 400
(:attr:`~FakeOpenAI.supports_json_schema`, :attr:`~FakeOpenAI.supports_json_object`), or any
parameter refused as unsupported (:attr:`~FakeOpenAI.rejected_params`).

Embedding vectors depend on the text only (a signed bag of hashed words, L2-normalised), so
the same text always gets the same vector, in any batch and any process; ``dimensions``
shortens them the way the text-embedding-3 models do (the first ``dimensions`` components,
normalised again). Request limits follow the API's: at most :attr:`~FakeOpenAI.max_inputs`
inputs per request, each at most :attr:`~FakeOpenAI.max_input_tokens` tokens and all together
at most :attr:`~FakeOpenAI.max_request_tokens`; the fake counts a token per UTF-8 byte, an
upper bound of what OpenAI's tokenizers count, so a client within the fake's limits is within
the real ones. A request that breaks the API's rules is answered 400 and recorded in
:attr:`~FakeOpenAI.violations`; :meth:`~FakeOpenAI.verify` fails the test if there are any.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from memsift.testing.fake_openai_wire import (
    EMBEDDING_DIMS,
    PIECE,
    WORD,
    Fault,
    RecordedRequest,
    Reply,
    check_chat,
    check_embeddings,
    content_text,
    error_response,
    fake_embedding,
    fake_logprobs,
    fault_response,
    json_response,
    last_user_text,
    schema_instance,
    scripted_logprobs,
    shorten,
)

__all__ = [
    "EMBEDDING_DIMS",
    "FakeOpenAI",
    "Fault",
    "RecordedRequest",
    "Reply",
    "Responder",
    "fake_embedding",
    "last_user_text",
    "threaded_server",
]

#: What :attr:`FakeOpenAI.responder` is: the JSON body of a chat request -> its answer (a
#: :class:`Reply`, a ``str`` for ``Reply(text)``, a :class:`Fault`, or None for the fake's
#: own answer).
Responder = Callable[[dict[str, Any]], Reply | Fault | str | None]


@contextmanager
def threaded_server(host: str = "127.0.0.1") -> Iterator[HTTPServer]:
    """A started, threaded HTTPServer on a free port (threaded, so that concurrent requests
    overlap); stopped on exit."""
    server = HTTPServer(host=host, port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


class FakeOpenAI:
    """The fake API on ``server``: ``/v1/chat/completions`` and ``/v1/embeddings``.

    Build one per server (it registers handlers on it); :meth:`reset` between tests and
    :meth:`verify` after each. ``api_key=None`` accepts any key or none (a local server).

    Switches (restored by :meth:`reset`): ``supports_logprobs``, ``supports_json_schema``,
    ``supports_json_object``, ``accepts_schema_in_json_object`` (llama.cpp's extension: a
    ``schema`` beside ``{"type": "json_object"}``), ``rejected_params`` (parameter names
    answered with 400 ``unsupported_parameter``), ``delay`` (seconds before every answer),
    ``responder`` (the answer of each chat request without a queued fault or scripted reply,
    from its body; None: the fake's own). Observed: ``requests``, ``violations``,
    ``in_flight`` and ``max_in_flight`` (the most requests being answered at once).
    """

    base_path: ClassVar[str] = "/v1"
    #: Most inputs of one embeddings request, and tokens (counted as UTF-8 bytes) of one
    #: input and of one request.
    max_inputs: ClassVar[int] = 2048
    max_input_tokens: ClassVar[int] = 8192
    max_request_tokens: ClassVar[int] = 300_000
    #: Dimensions of an embedding model the fake does not know.
    default_embedding_dims: ClassVar[int] = 64
    #: The body of a ``malformed_json`` fault.
    malformed_body: ClassVar[str] = '{"id": "chatcmpl-fake", "choices": [{"index": 0, '

    requests: list[RecordedRequest]
    violations: list[str]
    chat_script: deque[Reply]
    faults: dict[str, deque[Fault]]
    always: dict[str, Fault | None]
    supports_logprobs: bool
    supports_json_schema: bool
    supports_json_object: bool
    accepts_schema_in_json_object: bool
    rejected_params: set[str]
    delay: float
    responder: Responder | None
    in_flight: int
    max_in_flight: int

    def __init__(self, server: HTTPServer, api_key: str | None) -> None:
        self.server = server
        self.api_key = api_key
        self._lock = threading.Lock()
        self._counter = 0
        #: Set it to end every pending delay now (e.g. in a fixture's teardown).
        self.release = threading.Event()
        self.reset()
        server.expect_request(f"{self.base_path}/chat/completions").respond_with_handler(
            self._handle_chat
        )
        server.expect_request(f"{self.base_path}/embeddings").respond_with_handler(
            self._handle_embeddings
        )

    @property
    def base_url(self) -> str:
        """The base URL to give the client (``http://127.0.0.1:PORT/v1``)."""
        return f"http://{self.server.host}:{self.server.port}{self.base_path}"

    def reset(self) -> None:
        """Forget requests, violations, scripts and faults; restore the switches."""
        with self._lock:
            self.requests = []
            self.violations = []
            self.chat_script = deque()
            self.faults = {"chat": deque(), "embeddings": deque()}
            self.always = {"chat": None, "embeddings": None}
            self.supports_logprobs = True
            self.supports_json_schema = True
            self.supports_json_object = True
            self.accepts_schema_in_json_object = True
            self.rejected_params = set()
            self.delay = 0.0
            self.responder = None
            self.in_flight = 0
            self.max_in_flight = 0
        self.release.clear()

    def reply(self, *replies: Reply | str) -> None:
        """Answer the next chat requests with ``replies`` (a ``str`` is ``Reply(text)``)."""
        with self._lock:
            self.chat_script.extend(Reply(r) if isinstance(r, str) else r for r in replies)

    def fail(
        self,
        *faults: Fault,
        always: Fault | None = None,
        endpoint: Literal["chat", "embeddings"] = "chat",
    ) -> None:
        """Answer the next requests to ``endpoint`` with ``faults`` (in order, before any
        scripted reply), then every later one with ``always`` if given."""
        with self._lock:
            self.faults[endpoint].extend(faults)
            self.always[endpoint] = always

    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat requests received, in order."""
        return [
            r.body
            for r in self.requests
            if r.path.endswith("/chat/completions") and isinstance(r.body, dict)
        ]

    def embedding_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the embeddings requests received, in order."""
        return [
            r.body
            for r in self.requests
            if r.path.endswith("/embeddings") and isinstance(r.body, dict)
        ]

    def verify(self) -> None:
        """Let slow answers finish, re-raise errors from the handlers, and fail if the
        client sent an invalid request."""
        self.release.set()
        with self._lock:
            violations = list(self.violations)
        self.server.check_handler_errors()
        assert not violations, f"the client sent invalid requests: {violations}"

    # ------------------------------------------------------------------ hooks

    def answer_text(self, body: dict[str, Any]) -> str:
        """The text of an unscripted chat answer to ``body``. Override to change it.

        A ``json_schema`` request gets a small document valid against its schema, a
        ``json_object`` request (or a request whose messages ask for JSON while the
        fake refuses response formats) gets ``{"answer": <last user message>}``, any other an
        echo of the last user message.
        """
        last = last_user_text(body.get("messages"))
        fmt = body.get("response_format")
        fmt = fmt if isinstance(fmt, dict) else {}
        kind = fmt.get("type")
        if kind == "json_schema":
            return json.dumps(schema_instance(fmt["json_schema"]["schema"], last))
        if kind == "json_object" and isinstance(fmt.get("schema"), dict):
            return json.dumps(schema_instance(fmt["schema"], last))
        if kind == "json_object":
            return json.dumps({"answer": last})
        return f"You said: {last}" if last else "Hello."

    # ------------------------------------------------------------------ serving

    def _handle_chat(self, request: Request) -> Response:
        return self._serve(request, "chat")

    def _handle_embeddings(self, request: Request) -> Response:
        return self._serve(request, "embeddings")

    def _serve(self, request: Request, endpoint: str) -> Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer(request, endpoint)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: Request, endpoint: str) -> Response:
        body: Any = request.get_json(silent=True)
        seen = RecordedRequest(request.method, request.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(seen)
            self._counter += 1
            number = self._counter
            queue = self.faults[endpoint]
            fault = queue.popleft() if queue else self.always[endpoint]
            delay = self.delay
            responder = self.responder if endpoint == "chat" and not self.chat_script else None
        if request.method != "POST":
            return self._violation(f"method {request.method}, expected POST", status=405)
        token = request.headers.get("Authorization", "")
        if self.api_key is not None and token != f"Bearer {self.api_key}":
            given = token.removeprefix("Bearer ")
            return error_response(
                401,
                f"Incorrect API key provided: {given}. You can find your API key in your "
                "account settings.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        if not (request.content_type or "").startswith("application/json"):
            return self._violation(f"content type {request.content_type!r}")
        if not isinstance(body, dict):
            return self._violation("the body is not a JSON object")
        answer: Reply | None = None
        if fault is None and responder is not None:
            produced = responder(body)
            if isinstance(produced, Fault):
                fault = produced
            else:
                answer = Reply(produced) if isinstance(produced, str) else produced
        if fault is not None and fault.delay:
            self.release.wait(fault.delay)
        if fault is not None and fault.kind is None and fault.status != 200:
            if delay:
                self.release.wait(delay)
            return fault_response(fault, token)
        if endpoint == "chat":
            return self._chat(body, fault, number, delay, answer)
        if delay:
            self.release.wait(delay)
        return self._embeddings(body, fault)

    # ------------------------------------------------------------------ chat

    def _chat(
        self,
        body: dict[str, Any],
        fault: Fault | None,
        number: int,
        delay: float,
        scripted: Reply | None = None,
    ) -> Response:
        problem = check_chat(body)
        if problem:
            return self._violation(problem)
        rejected = self._rejected(body)
        if rejected is not None:
            return rejected
        item = scripted
        with self._lock:  # a scripted reply answers the first request that gets an answer
            if item is None and fault is None and self.chat_script:
                item = self.chat_script.popleft()
        pause = max(delay, item.delay if item is not None else 0.0)
        if pause:
            self.release.wait(pause)
        reply = item if item is not None else Reply()
        if fault is not None and fault.kind == "malformed_json":
            return Response(self.malformed_body, status=200, content_type="application/json")
        if fault is not None and fault.kind == "html":
            page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(page, status=200, content_type="text/html")
        if item is not None and item.refusal is not None:
            text: str | None = None
        elif item is not None and item.text() is not None:
            text = item.text()
        else:
            text = self.answer_text(body)
        finish = reply.finish_reason
        if fault is not None and fault.kind == "truncated":
            full = self.answer_text(body)
            text, finish = full[: max(1, len(full) // 2)], "length"
        if fault is not None and fault.kind == "null_content":
            text = None
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": reply.refusal}
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": finish,
            "logprobs": self._logprobs(body, text or "", reply),
        }
        prompt_tokens = sum(
            len(WORD.findall(content_text(m.get("content"))))
            for m in body.get("messages", [])
            if isinstance(m, dict)
        )
        completion_tokens = len(PIECE.findall(text or ""))
        answer = {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": 1_700_000_000 + number,
            "model": body["model"],
            "choices": [] if fault is not None and fault.kind == "no_choices" else [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_fake",
        }
        return json_response(200, answer)

    def _rejected(self, body: dict[str, Any]) -> Response | None:
        """A 400 for what this server is switched to refuse, as OpenAI words it."""
        for name in sorted(self.rejected_params & set(body)):
            return error_response(
                400,
                f"Unsupported parameter: '{name}' is not supported with this model.",
                "invalid_request_error",
                "unsupported_parameter",
                param=name,
            )
        fmt = body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_schema" and not self.supports_json_schema:
            return error_response(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                "with this model.",
                "invalid_request_error",
                None,
                param="response_format",
            )
        if kind == "json_object" and not self.supports_json_object:
            return error_response(
                400,
                "'response_format.type' must be 'json_schema' or 'text'",
                "invalid_request_error",
                None,
                param="response_format",
            )
        schema_hint = isinstance(fmt, dict) and "schema" in fmt
        if kind == "json_object" and schema_hint and not self.accepts_schema_in_json_object:
            return error_response(
                400,
                "Unrecognized request argument supplied: response_format.schema",
                "invalid_request_error",
                None,
                param="response_format",
            )
        return None

    def _logprobs(self, body: dict[str, Any], text: str, reply: Reply) -> dict[str, Any] | None:
        mode = reply.logprobs
        if not body.get("logprobs") or not self.supports_logprobs or mode == "omit" or not text:
            return None
        top_n = int(body.get("top_logprobs") or 0)
        if reply.tokens is not None and mode == "auto":
            return scripted_logprobs(reply.tokens, top_n)
        return fake_logprobs(text, top_n, garbage=mode == "garbage")

    # ------------------------------------------------------------------ embeddings

    def _embeddings(self, body: dict[str, Any], fault: Fault | None) -> Response:
        problem = check_embeddings(
            body,
            max_inputs=self.max_inputs,
            max_input_tokens=self.max_input_tokens,
            max_request_tokens=self.max_request_tokens,
        )
        if problem:
            return self._violation(problem)
        rejected = self._rejected_embedding(body)
        if rejected is not None:
            return rejected
        if fault is not None and fault.kind == "malformed_json":
            return Response(
                '{"object": "list", "data": [{"emb', status=200, content_type="application/json"
            )
        model = body["model"]
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        native = EMBEDDING_DIMS.get(model, self.default_embedding_dims)
        dims = body.get("dimensions") or native
        rows = []
        for i, text in enumerate(texts):
            vector = shorten(fake_embedding(text, native), dims)
            if fault is not None and fault.kind == "wrong_dimensions":
                vector = vector[:-1]
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            else:
                encoded = vector
            rows.append({"object": "embedding", "index": i, "embedding": encoded})
        if fault is not None and fault.kind == "missing_rows":
            rows = rows[:-1]
        tokens = sum(len(WORD.findall(t)) for t in texts)
        answer = {
            "object": "list",
            "data": rows,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return json_response(200, answer)

    def _rejected_embedding(self, body: dict[str, Any]) -> Response | None:
        dims = body.get("dimensions")
        if dims is None:
            return None
        model = body["model"]
        native = EMBEDDING_DIMS.get(model, self.default_embedding_dims)
        if model == "text-embedding-ada-002":
            message = "This model does not support specifying dimensions."
            return error_response(400, message, "invalid_request_error", None, param="dimensions")
        if dims > native:
            message = f"dimensions must be at most {native} for {model}"
            return error_response(400, message, "invalid_request_error", None, param="dimensions")
        return None

    def _violation(self, problem: str, status: int = 400) -> Response:
        with self._lock:
            self.violations.append(problem)
        return error_response(status, f"invalid request: {problem}", "invalid_request_error", None)
