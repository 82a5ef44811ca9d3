"""The testing kit's fake OpenAI API, driven directly over HTTP: the wire format of chat
completions and embeddings, scripted replies and faults, and the checks of requests."""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pytest_httpserver import HTTPServer

from memsift.completions import schema_problem
from memsift.testing.fake_openai_api import (
    EMBEDDING_DIMS,
    FakeOpenAI,
    Fault,
    Reply,
    fake_embedding,
    threaded_server,
)

KEY = "sk-fake-test-key-987"
CHAT = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hello, JSON please"}]}
SCHEMA = {
    "type": "object",
    "properties": {
        "facts": {"type": "array", "items": {"type": "string"}},
        "n": {"type": "integer"},
    },
    "required": ["facts", "n"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with threaded_server() as server:
        yield server


@pytest.fixture(scope="module")
def _api(server: HTTPServer) -> FakeOpenAI:
    return FakeOpenAI(server, KEY)


@pytest.fixture
def api(_api: FakeOpenAI) -> Iterator[FakeOpenAI]:
    _api.reset()
    yield _api
    _api.release.set()


def post(
    api: FakeOpenAI, path: str, body: Any, *, key: str = KEY
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        f"{api.base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, headers, raw = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode()


def test_a_chat_completion_in_the_real_shape(api: FakeOpenAI) -> None:
    status, _, body = post(api, "/chat/completions", CHAT)
    assert status == 200
    assert body["object"] == "chat.completion" and body["model"] == "gpt-5-mini"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "You said: Hello, JSON please",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    api.verify()


def test_json_answers(api: FakeOpenAI) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "facts", "schema": SCHEMA, "strict": True},
    }
    _, _, body = post(api, "/chat/completions", {**CHAT, "response_format": fmt})
    value = json.loads(body["choices"][0]["message"]["content"])
    assert schema_problem(value, SCHEMA) is None
    _, _, body = post(
        api, "/chat/completions", {**CHAT, "response_format": {"type": "json_object"}}
    )
    assert json.loads(body["choices"][0]["message"]["content"]) == {"answer": "Hello, JSON please"}
    api.verify()


def test_logprobs(api: FakeOpenAI) -> None:
    _, _, body = post(api, "/chat/completions", {**CHAT, "logprobs": True, "top_logprobs": 3})
    entries = body["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == body["choices"][0]["message"]["content"]
    for entry in entries:
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 3
        assert sum(math.exp(t["logprob"]) for t in entry["top_logprobs"]) <= 1
    api.supports_logprobs = False
    _, _, body = post(api, "/chat/completions", {**CHAT, "logprobs": True})
    assert body["choices"][0]["logprobs"] is None
    api.verify()


def test_scripted_replies_and_faults(api: FakeOpenAI) -> None:
    api.reply("first", Reply("second", finish_reason="length"))
    api.fail(Fault(status=429, headers={"Retry-After": "7"}))
    status, headers, body = post(api, "/chat/completions", CHAT)
    assert status == 429 and headers["Retry-After"] == "7"
    assert body["error"]["code"] == "rate_limit_exceeded"
    texts = [post(api, "/chat/completions", CHAT)[2]["choices"][0] for _ in range(3)]
    assert [(t["message"]["content"], t["finish_reason"]) for t in texts] == [
        ("first", "stop"),
        ("second", "length"),
        ("You said: Hello, JSON please", "stop"),
    ]
    api.fail(Fault(kind="no_choices"), Fault(kind="malformed_json"), Fault(status=503))
    assert post(api, "/chat/completions", CHAT)[2]["choices"] == []
    assert post(api, "/chat/completions", CHAT)[2].startswith('{"id"')
    assert post(api, "/chat/completions", CHAT)[0] == 503
    api.verify()


def test_a_wrong_key_is_quoted_in_the_401(api: FakeOpenAI) -> None:
    status, _, body = post(api, "/chat/completions", CHAT, key="sk-wrong-key")
    assert status == 401 and "sk-wrong-key" in body["error"]["message"]
    api.verify()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"messages": []}, "messages must be a non-empty list"),
        ({"temperature": 3}, "temperature"),
        ({"top_logprobs": 2}, "top_logprobs needs logprobs"),
        ({"max_tokens": 5, "max_completion_tokens": 5}, "mutually exclusive"),
        ({"frobnicate": 1}, "unexpected keys"),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_object"},
            },
            "must contain the word 'json'",
        ),
    ],
)
def test_invalid_requests_are_violations(
    api: FakeOpenAI, change: dict[str, Any], problem: str
) -> None:
    status, _, _ = post(api, "/chat/completions", {**CHAT, **change})
    assert status == 400
    assert problem in api.violations[0]
    with pytest.raises(AssertionError, match="invalid requests"):
        api.verify()


def test_refusals_are_not_violations(api: FakeOpenAI) -> None:
    api.supports_json_schema = False
    api.rejected_params = {"temperature"}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    status, _, body = post(api, "/chat/completions", {**CHAT, "response_format": fmt})
    assert status == 400 and body["error"]["param"] == "response_format"
    status, _, body = post(api, "/chat/completions", {**CHAT, "temperature": 0})
    assert status == 400 and body["error"]["code"] == "unsupported_parameter"
    api.verify()


def test_embeddings(api: FakeOpenAI) -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": ["Alice", "Bob"],
        "encoding_format": "float",
    }
    status, _, answer = post(api, "/embeddings", body)
    assert status == 200 and answer["object"] == "list"
    rows = answer["data"]
    assert [r["index"] for r in rows] == [0, 1]
    assert len(rows[0]["embedding"]) == EMBEDDING_DIMS["text-embedding-3-small"]
    np.testing.assert_allclose(rows[0]["embedding"], fake_embedding("Alice", 1536), atol=1e-9)
    _, _, short = post(api, "/embeddings", {**body, "dimensions": 8, "encoding_format": "base64"})
    vector = np.frombuffer(base64.b64decode(short["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (8,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    status, _, refused = post(
        api, "/embeddings", {"model": "text-embedding-ada-002", "input": "a", "dimensions": 8}
    )
    assert status == 400 and refused["error"]["param"] == "dimensions"
    api.verify()


def test_embedding_limits(api: FakeOpenAI) -> None:
    for inputs, problem in [
        (["a"] * 2049, "2049 inputs"),
        (["x" * 8193], "longer than 8192 tokens"),
        ([""], "empty string"),
    ]:
        status, _, _ = post(api, "/embeddings", {"model": "m", "input": inputs})
        assert status == 400 and problem in api.violations[-1]
    api.violations.clear()
    api.fail(Fault(kind="wrong_dimensions"), endpoint="embeddings")
    _, _, answer = post(api, "/embeddings", {"model": "m", "input": ["a"]})
    assert len(answer["data"][0]["embedding"]) == FakeOpenAI.default_embedding_dims - 1
    api.verify()


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5-mini", "messages": [{"role": "user", "content": text}], **extra}


def test_a_responder_answers_each_request_by_its_content(api: FakeOpenAI) -> None:
    def respond(body: dict[str, Any]) -> Reply | Fault | str | None:
        said = body["messages"][-1]["content"]
        if said == "fail":
            return Fault(503)
        if said == "default":
            return None
        return Reply(f"echo {said}") if said.startswith("r") else said.upper()

    api.responder = respond
    answers = {}
    for text in ("red", "green", "default"):
        status, _, body = post(api, "/chat/completions", chat(text))
        assert status == 200
        answers[text] = body["choices"][0]["message"]["content"]
    assert answers == {"red": "echo red", "green": "GREEN", "default": "You said: default"}
    status, _, body = post(api, "/chat/completions", chat("fail"))
    assert status == 503 and "server had an error" in body["error"]["message"]
    # scripted replies and queued faults come first, then the responder again
    api.reply("scripted")
    api.fail(Fault(429))
    assert post(api, "/chat/completions", chat("red"))[0] == 429
    assert post(api, "/chat/completions", chat("red"))[2]["choices"][0]["message"]["content"] == (
        "scripted"
    )
    assert post(api, "/chat/completions", chat("red"))[2]["choices"][0]["message"]["content"] == (
        "echo red"
    )
    api.reset()
    assert api.responder is None


def test_concurrent_requests_each_get_their_answer_and_are_counted(api: FakeOpenAI) -> None:
    import concurrent.futures

    api.delay = 0.3
    api.responder = lambda body: body["messages"][-1]["content"][::-1]
    texts = [f"request {i}" for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda t: post(api, "/chat/completions", chat(t)), texts))
    assert [r[2]["choices"][0]["message"]["content"] for r in results] == [t[::-1] for t in texts]
    assert api.max_in_flight == 12, "every request was answered after the same delay, together"
    assert api.in_flight == 0


def test_scripted_token_logprobs(api: FakeOpenAI) -> None:
    tokens = [{"Yes": math.log(0.6), "No": math.log(0.3), " yes": math.log(0.05)}, {"!": -0.01}]
    api.reply(Reply(tokens=tokens), Reply(tokens=tokens), Reply(tokens=tokens, logprobs="omit"))
    _, _, body = post(api, "/chat/completions", chat("q", logprobs=True, top_logprobs=2))
    choice = body["choices"][0]
    assert choice["message"]["content"] == "Yes!"
    first, second = choice["logprobs"]["content"]
    assert first["token"] == "Yes" and first["logprob"] == pytest.approx(math.log(0.6))
    assert [t["token"] for t in first["top_logprobs"]] == ["Yes", "No"], "cut to top_logprobs"
    assert second["token"] == "!"
    _, _, body = post(api, "/chat/completions", chat("q"))  # not asked: none
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["message"]["content"] == "Yes!"
    _, _, body = post(api, "/chat/completions", chat("q", logprobs=True))
    assert body["choices"][0]["logprobs"] is None, "'omit' is a server that ignores the request"
    api.supports_logprobs = False
    api.reply(Reply("No", tokens=tokens))
    _, _, body = post(api, "/chat/completions", chat("q", logprobs=True, top_logprobs=2))
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["message"]["content"] == "No", "content wins over the tokens"
