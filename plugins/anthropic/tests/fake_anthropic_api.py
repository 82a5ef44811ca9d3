"""A fake of Anthropic's Messages API (``POST /v1/messages``) on 127.0.0.1, for the real SDK.

It speaks the wire format: the key in ``x-api-key`` (or, as SDK 2.x sends it,
``Authorization: Bearer``), an ``anthropic-version`` header, a JSON body with ``model``,
``max_tokens``, ``messages`` (alternating turns, the first the user's), ``system`` and
``output_config``; an answer ``{"id", "type": "message", "role": "assistant", "content":
[{"type": "text", "text"}], "model", "stop_reason", "usage": {"input_tokens",
"output_tokens"}}``; errors ``{"type": "error", "error": {"type", "message"}}``.

Unscripted, it behaves like a cooperative model: asked for JSON (by a system prompt that
mentions JSON, an ``output_config`` schema, or a ``{`` prefill) it answers the first JSON
object of the last user message, or an instance of the schema it is shown (between
``<schema>`` tags, or in ``output_config``), or ``{"answer": ...}``; otherwise plain text.
A prefilled answer continues the prefill. Tests script replies with :meth:`script`: text,
stop reasons, HTTP errors with headers, delays, raw bodies.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API_KEY = "sk-ant-test-7c41e0b9d25f"
PATH = "/v1/messages"
ROLES = ("user", "assistant")
ALLOWED_KEYS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "output_config",
        "stop_sequences",
        "metadata",
        "stream",
    }
)
_SCHEMA = re.compile(r"<schema>\s*(.*?)\s*</schema>", re.DOTALL)


@dataclass
class Reply:
    """A scripted answer. ``text`` (None: the cooperative model's) with ``stop_reason``;
    or an HTTP ``status`` with an error of ``error_type`` saying ``message``; or a raw
    ``body`` (a str is sent as is, with ``content_type``). ``delay``: seconds to wait
    first (ended early by the fake's ``release``)."""

    text: str | None = None
    stop_reason: str = "end_turn"
    status: int = 200
    error_type: str = "api_error"
    message: str = "Internal server error"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"
    delay: float = 0.0
    usage: dict[str, int] | None = None


def error(status: int, error_type: str, message: str, **headers: str) -> Reply:
    """An HTTP error answer with the API's error body."""
    return Reply(status=status, error_type=error_type, message=message, headers=headers)


def rate_limited(retry_after: float | str | None = None) -> Reply:
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    return Reply(
        status=429,
        error_type="rate_limit_error",
        message="Number of request tokens has exceeded your per-minute rate limit",
        headers=headers,
    )


def overloaded() -> Reply:
    return error(529, "overloaded_error", "Overloaded")


def server_error() -> Reply:
    return error(500, "api_error", "Internal server error")


def malformed() -> Reply:
    """A 200 whose JSON body is cut off."""
    return Reply(body='{"id": "msg_01", "type": "message", "role": "assistant", "content": [')


@dataclass
class Received:
    """One request: its headers and parsed JSON body (None when not JSON)."""

    headers: dict[str, str]
    body: Any


class FakeAnthropicAPI:
    """The fake endpoint on ``server``. One per test session; :meth:`reset` between tests,
    :meth:`verify` after each."""

    requests: list[Received]
    violations: list[str]
    replies: deque[Reply]
    always: Reply | None
    accepts_temperature: bool
    prefill_supported: bool

    def __init__(self, server: HTTPServer, api_key: str = API_KEY) -> None:
        self.server = server
        self.api_key = api_key
        self._lock = threading.Lock()
        #: Set to end every pending delay now.
        self.release = threading.Event()
        self.reset()
        server.expect_request(PATH, method="POST").respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests = []
            self.violations = []
            self.replies = deque()
            self.always = None
            self.accepts_temperature = True
            self.prefill_supported = True
        self.release.clear()

    def script(self, *replies: Reply, always: Reply | None = None) -> None:
        """Answer the next requests with ``replies`` in order, then ``always`` if given."""
        with self._lock:
            self.replies.extend(replies)
            self.always = always

    def verify(self) -> None:
        """End pending delays, re-raise handler errors, fail on invalid requests."""
        self.release.set()
        self.server.check_handler_errors()
        with self._lock:
            violations = list(self.violations)
        assert not violations, f"the client sent invalid requests: {violations}"

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    # ------------------------------------------------------------------ the handler

    def _handle(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(Received(headers, body))
        given = headers.get("x-api-key")
        if given is None:
            auth = headers.get("authorization", "")
            given = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if given != self.api_key:
            return self._error(401, "authentication_error", f"invalid x-api-key: {given}")
        if not headers.get("anthropic-version"):
            return self._violation("the anthropic-version header is missing")
        problem = self._check(body)
        if problem is not None:
            return self._violation(problem)
        if not self.accepts_temperature and "temperature" in body:
            return self._error(
                400, "invalid_request_error", "temperature: Extra inputs are not permitted"
            )
        last = body["messages"][-1]
        if not self.prefill_supported and last["role"] == "assistant":
            return self._error(
                400,
                "invalid_request_error",
                "This model does not support assistant message prefill.",
            )
        with self._lock:
            reply = self.replies.popleft() if self.replies else self.always
        reply = reply or Reply()
        if reply.delay:
            self.release.wait(reply.delay)
        if reply.body is not None:
            raw = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            return Response(
                raw, status=reply.status, headers=reply.headers, content_type=reply.content_type
            )
        if reply.status != 200:
            return self._error(reply.status, reply.error_type, reply.message, reply.headers)
        text = reply.text if reply.text is not None else self._cooperative(body)
        usage = reply.usage or {
            "input_tokens": _words(json.dumps(body["messages"])) + _words(_system(body)),
            "output_tokens": max(1, _words(text)),
        }
        answer = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "model": body["model"],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        return Response(
            json.dumps(answer), status=200, headers=reply.headers, content_type="application/json"
        )

    def _error(
        self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return Response(
            json.dumps(body),
            status=status,
            headers=dict(headers or {}),
            mimetype="application/json",
        )

    def _violation(self, problem: str) -> Response:
        with self._lock:
            self.violations.append(problem)
        return self._error(400, "invalid_request_error", problem)

    def _check(self, body: Any) -> str | None:
        """What is wrong with a request body, as the real API would reject it; or None."""
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        extra = set(body) - ALLOWED_KEYS
        if extra:
            return f"unknown keys: {sorted(extra)}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: a non-empty string is required"
        tokens = body.get("max_tokens")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            return "max_tokens: a positive integer is required"
        if body.get("stream"):
            return "stream: this fake does not stream"
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            return "system: a string is expected"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: a non-empty list is required"
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or set(message) != {"role", "content"}:
                return f"messages.{index}: must be {{role, content}}"
            if message["role"] not in ROLES:
                return f"messages.{index}.role: must be user or assistant"
            content = message["content"]
            if not isinstance(content, str) or not content:
                return f"messages.{index}.content: a non-empty string is expected here"
            if index and messages[index - 1]["role"] == message["role"]:
                return f"messages.{index}: roles must alternate"
        if messages[0]["role"] != "user":
            return "messages.0.role: the first message must use the user role"
        if messages[-1]["role"] == "assistant" and messages[-1]["content"] != (
            messages[-1]["content"].rstrip()
        ):
            return "final assistant content cannot end with trailing whitespace"
        config = body.get("output_config")
        if config is not None:
            fmt = config.get("format") if isinstance(config, dict) else None
            if (
                not isinstance(fmt, dict)
                or fmt.get("type") != "json_schema"
                or not isinstance(fmt.get("schema"), dict)
            ):
                return "output_config.format: {type: json_schema, schema: {...}} expected"
        return None

    # ------------------------------------------------------------------ the "model"

    def _cooperative(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        system = _system(body)
        schema = _shown_schema(body)
        wants_json = schema is not None or "JSON" in system or prefill.startswith("{")
        if not wants_json:
            full = f"You said: {user}"
        elif schema is not None:
            full = json.dumps(instance(schema), ensure_ascii=False)
        else:
            found = first_json_object(user)
            full = json.dumps(found if found is not None else {"answer": user[:40]})
        return full[len(prefill) :] if prefill and full.startswith(prefill) else full


def _system(body: Mapping[str, Any]) -> str:
    system = body.get("system")
    return system if isinstance(system, str) else ""


def _words(text: str) -> int:
    return len(text.split())


def _shown_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    if isinstance(config, dict):
        schema = config["format"]["schema"]
        return schema if isinstance(schema, dict) else None
    match = _SCHEMA.search(_system(body))
    if match is None:
        return None
    try:
        schema = json.loads(match.group(1))
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object written in ``text``, or None."""
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char == "{":
            try:
                value, _ = decoder.raw_decode(text, index)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def instance(schema: Mapping[str, Any]) -> Any:
    """A minimal value valid against ``schema``'s structure (required keys, types, enums)."""
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required") or list(properties)
        return {k: instance(properties.get(k, {})) for k in required}
    if kind == "array":
        return []
    if kind == "string":
        return "text"
    if kind in ("number", "integer"):
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return {}
