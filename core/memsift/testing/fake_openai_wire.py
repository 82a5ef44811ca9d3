"""What the fake OpenAI API (:mod:`memsift.testing.fake_openai_api`) accepts and answers:
the scripted replies and faults, the checks of a request by the API's rules, and the pieces
of its answers (error bodies, log-probs, deterministic embeddings, a document valid for a
JSON schema).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from werkzeug import Response

__all__ = [
    "EMBEDDING_DIMS",
    "Fault",
    "RecordedRequest",
    "Reply",
    "check_chat",
    "check_embeddings",
    "chosen_token",
    "content_text",
    "error_response",
    "fake_embedding",
    "fake_logprobs",
    "fault_response",
    "json_response",
    "last_user_text",
    "schema_instance",
    "scripted_logprobs",
    "shorten",
]

#: Native dimensions of the embedding models the fake knows; others get
#: :attr:`FakeOpenAI.default_embedding_dims`.
EMBEDDING_DIMS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
CHAT_KEYS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
EMBEDDING_KEYS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
PIECE = re.compile(r"\s*\S+|\s+")


@dataclass
class RecordedRequest:
    """One request the fake received; ``body`` is the parsed JSON, or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """A scripted chat answer.

    ``content``: the message text (``None``: the fake's own answer, see
    :meth:`FakeOpenAI.answer_text`); ``finish_reason``; ``logprobs``: ``"auto"`` gives
    log-probs when the request asks and the fake supports them, ``"omit"`` never (a server
    that ignores the request), ``"garbage"`` sends entries that are not log-probabilities
    (positive, for a client to reject); ``refusal``: a refusal message (the content is then
    ``null``); ``delay``: seconds before answering; ``tokens``: the answer's log-probs as
    they must be, one mapping per token of alternatives to their log-probabilities (the
    likeliest is the chosen token; without ``content`` the text is the chosen tokens
    joined), e.g. ``Reply(tokens=[{"yes": math.log(0.8), "no": math.log(0.2)}])``, sent
    when the request asks for log-probs (cut to its ``top_logprobs``), as ``"auto"`` says.
    """

    content: str | None = None
    finish_reason: str = "stop"
    logprobs: Literal["auto", "omit", "garbage"] = "auto"
    refusal: str | None = None
    delay: float = 0.0
    tokens: Sequence[Mapping[str, float]] | None = None

    def text(self) -> str | None:
        """The content to send: ``content``, else the chosen ``tokens`` joined, else None."""
        if self.content is not None or self.tokens is None:
            return self.content
        return "".join(chosen_token(alternatives) for alternatives in self.tokens)


@dataclass
class Fault:
    """A scripted failure: an HTTP status with a JSON body (a ``str`` body is sent raw) and
    headers such as ``Retry-After``; a ``delay`` in seconds before answering (longer than
    the client's timeout: a slow server); or a broken success: ``malformed_json`` (a
    truncated body), ``no_choices``, ``null_content``, ``truncated`` (half the answer,
    ``finish_reason: "length"``), ``html`` (a 200 text/html page, as from a proxy),
    ``wrong_dimensions`` (embeddings one component short) or ``missing_rows`` (embeddings
    without their last row). ``Fault(status=200)`` with no kind answers normally.

    An error status without a body gets OpenAI's error body: for 401 it quotes the bearer
    key the client sent (the real API masks part of it; the fake does not, so a client that
    shows the body verbatim leaks the key).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    kind: (
        Literal[
            "malformed_json",
            "no_choices",
            "null_content",
            "truncated",
            "html",
            "wrong_dimensions",
            "missing_rows",
        ]
        | None
    ) = None


@lru_cache(maxsize=65536)
def _word_vector(word: str, dims: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    vector: np.ndarray = np.random.default_rng(seed).standard_normal(dims)
    vector.flags.writeable = False
    return vector


def fake_embedding(text: str, dims: int) -> list[float]:
    """The fake's vector of ``text`` at ``dims`` components: the sum of a pseudo-random
    vector per lower-cased word (or punctuation mark), L2-normalised; a text without any
    gets the vector of its whole string. Depends on the text only."""
    words = WORD.findall(text.lower()) or [f"\x00{text}"]
    total = np.zeros(dims)
    for word in words:
        total += _word_vector(word, dims)
    norm = float(np.linalg.norm(total))
    return (total / norm).tolist() if norm > 0 else [1.0] + [0.0] * (dims - 1)


def shorten(vector: list[float], dims: int) -> list[float]:
    head = np.asarray(vector[:dims])
    norm = float(np.linalg.norm(head))
    return (head / norm).tolist() if norm > 0 else [1.0] + [0.0] * (dims - 1)


def check_chat(body: dict[str, Any]) -> str | None:
    """What is wrong with a chat-completions request body by the API's rules, or None."""
    unknown = set(body) - CHAT_KEYS
    if unknown:
        return f"unexpected keys in the body: {sorted(unknown)}"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model must be a non-empty string"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            return f"messages[{i}] must be an object with a valid role"
        content = msg.get("content")
        if not isinstance(content, str | list) and not (
            content is None and msg.get("role") == "assistant"
        ):
            return f"messages[{i}].content must be a string or a list of parts"
    if body.get("stream"):
        return "the fake does not stream"
    if body.get("n") not in (None, 1):
        return "n must be 1"
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        return "temperature must be a number in [0, 2]"
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            return f"{key} must be a positive integer"
    if "max_tokens" in body and "max_completion_tokens" in body:
        return "max_tokens and max_completion_tokens are mutually exclusive"
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        return "logprobs must be a boolean"
    top = body.get("top_logprobs")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
            return "top_logprobs must be an integer in [0, 20]"
        if not logprobs:
            return "top_logprobs needs logprobs: true"
    return check_format(body)


def check_format(body: dict[str, Any]) -> str | None:
    """What is wrong with a request's ``response_format``, or None."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        return "response_format.type must be text, json_object or json_schema"
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or set(spec) - {
            "name",
            "schema",
            "strict",
            "description",
        }:
            return "response_format.json_schema must hold name, schema, strict, description"
        if not isinstance(spec.get("name"), str) or not SCHEMA_NAME.match(spec["name"]):
            return "response_format.json_schema.name must match ^[A-Za-z0-9_-]{1,64}$"
        if not isinstance(spec.get("schema"), dict):
            return "response_format.json_schema.schema must be an object"
    if fmt["type"] == "json_object":
        extra = set(fmt) - {"type", "schema"}
        if extra:
            return f"unexpected keys in response_format: {sorted(extra)}"
        said = " ".join(content_text(m.get("content")) for m in body["messages"])
        if "json" not in said.lower():
            return "'messages' must contain the word 'json' to use response_format json_object"
    return None


def check_embeddings(
    body: dict[str, Any], *, max_inputs: int, max_input_tokens: int, max_request_tokens: int
) -> str | None:
    """What is wrong with an embeddings request body by the API's rules, or None (tokens
    counted as UTF-8 bytes)."""
    unknown = set(body) - EMBEDDING_KEYS
    if unknown:
        return f"unexpected keys in the body: {sorted(unknown)}"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model must be a non-empty string"
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "input must be a string or a non-empty list of strings"
    if len(texts) > max_inputs:
        return f"{len(texts)} inputs in one request; the limit is {max_inputs}"
    for i, text in enumerate(texts):
        if not text:
            return f"input[{i}] is an empty string"
        if len(text.encode("utf-8", "surrogatepass")) > max_input_tokens:
            return f"input[{i}] is longer than {max_input_tokens} tokens"
    total = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    if total > max_request_tokens:
        return f"{total} tokens in one request; the limit is {max_request_tokens}"
    if body.get("encoding_format") not in (None, "float", "base64"):
        return "encoding_format must be float or base64"
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        return "dimensions must be a positive integer"
    return None


def fake_logprobs(text: str, top_n: int, *, garbage: bool = False) -> dict[str, Any]:
    """The ``logprobs`` of an answer ``text``: one entry per piece (a word with the space
    before it), a log-probability from its hash, and ``top_n`` alternatives (the piece among
    them) whose probabilities sum to less than 1, likeliest first. ``garbage``: entries
    that are not log-probabilities."""
    entries = []
    for piece in PIECE.findall(text):
        digest = hashlib.sha256(piece.encode("utf-8", "surrogatepass")).digest()
        chosen = -(digest[0] / 255) * 2.0 - 0.01
        if garbage:
            entries.append({"token": piece, "logprob": 3.5, "bytes": None, "top_logprobs": []})
            continue
        top = [{"token": piece, "logprob": chosen, "bytes": list(piece.encode())}]
        rest = 1.0 - math.exp(chosen)
        for k in range(1, top_n):
            share = rest * (0.5**k)
            alt = f"{piece.strip()}~{k}"
            top.append({"token": alt, "logprob": math.log(share), "bytes": list(alt.encode())})
        top = sorted(top[:top_n], key=lambda alt: -float(alt["logprob"]))
        entries.append(
            {
                "token": piece,
                "logprob": chosen,
                "bytes": list(piece.encode()),
                "top_logprobs": top,
            }
        )
    return {"content": entries, "refusal": None}


def chosen_token(alternatives: Mapping[str, float]) -> str:
    """The likeliest token of one position's ``alternatives`` (the first of equals)."""
    if not alternatives:
        raise ValueError("a token position needs at least one alternative")
    return max(alternatives, key=lambda token: alternatives[token])


def scripted_logprobs(tokens: Sequence[Mapping[str, float]], top_n: int) -> dict[str, Any]:
    """The ``logprobs`` of an answer whose tokens are scripted (see :attr:`Reply.tokens`):
    per position the likeliest token, and the ``top_n`` likeliest alternatives."""
    entries = []
    for alternatives in tokens:
        token = chosen_token(alternatives)
        ranked = sorted(alternatives.items(), key=lambda pair: -pair[1])[:top_n]
        entries.append(
            {
                "token": token,
                "logprob": float(alternatives[token]),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": float(lp), "bytes": list(t.encode())}
                    for t, lp in ranked
                ],
            }
        )
    return {"content": entries, "refusal": None}


def fault_response(fault: Fault, token: str) -> Response:
    """The answer of an error ``fault``, with OpenAI's error body unless it gives one; a
    401 quotes the bearer ``token`` the client sent."""
    if isinstance(fault.body, str):
        return Response(fault.body, status=fault.status, headers=fault.headers)
    if fault.body is not None:
        return json_response(fault.status, fault.body, fault.headers)
    if fault.status == 401:
        given = token.removeprefix("Bearer ")
        message = f"Incorrect API key provided: {given}."
        return error_response(
            401, message, "invalid_request_error", "invalid_api_key", fault.headers
        )
    if fault.status == 429:
        message = "Rate limit reached for requests. Please try again later."
        return error_response(429, message, "requests", "rate_limit_exceeded", fault.headers)
    if fault.status >= 500:
        message = "The server had an error while processing your request."
        return error_response(fault.status, message, "server_error", None, fault.headers)
    return error_response(fault.status, "fault", "invalid_request_error", None, fault.headers)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def error_response(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    headers: Mapping[str, str] | None = None,
    *,
    param: str | None = None,
) -> Response:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json_response(status, {"error": error}, headers)


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return content_text(msg.get("content"))
    return ""


def schema_instance(schema: Mapping[str, Any], text: str, depth: int = 0) -> Any:
    """A small JSON value valid against ``schema`` (the keywords of
    :func:`memsift.completions.schema_problem`), built from ``text``."""
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
        return schema_instance(schema["anyOf"][0], text, depth)
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        found = schema.get("properties")
        props: dict[str, Any] = found if isinstance(found, dict) else {}
        keys = list(schema.get("required", ())) or list(props)[:1]
        return {k: schema_instance(props.get(k, {"type": "string"}), text, depth + 1) for k in keys}
    if kind == "array":
        given = schema.get("items")
        items: dict[str, Any] = given if isinstance(given, dict) else {"type": "string"}
        count = max(int(schema.get("minItems", 0)), 1 if depth < 3 else 0)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [schema_instance(items, text, depth + 1) for _ in range(count)]
    if kind == "string":
        value = (text or "fact").strip()[:80] or "fact"
        if "maxLength" in schema:
            value = value[: int(schema["maxLength"])]
        return value.ljust(int(schema.get("minLength", 0)), "x")
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        return math.ceil(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return True
    return None
