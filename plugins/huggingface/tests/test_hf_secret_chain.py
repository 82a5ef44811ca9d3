"""The remote mode's ``api_key`` and the local mode's ``token`` appear nowhere in a raised
error's chain: not in its message (a server may echo the key), not in the exception it came
from (``__cause__`` / ``__context__``, recursively), not in exceptions held by its
traceback's frames, not in ``traceback.format_exception``."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import memsift
from memsift import ConfigError, ModelNotFoundError, RerankError
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

KEY = "hf_chain_7c6b5a4d3e2f1a0b"
QUERY = "where does alice live"
DOCS = ["alice moved to lisbon in march", "the quarterly report is due on friday"]
ECHO = f"invalid api token: got 'Bearer {KEY}'"


def reachable(error: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    out: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        stack.extend((current.__cause__, current.__context__))
        tb = current.__traceback__
        while tb is not None:
            stack.extend(v for v in tb.tb_frame.f_locals.values() if isinstance(v, BaseException))
            tb = tb.tb_next
    return out


def assert_no_secret(error: BaseException, secret: str = KEY) -> None:
    for found in reachable(error):
        for text in (str(found), repr(found), repr(found.args)):
            assert secret not in text, f"{type(found).__name__} in the chain holds the key"
    assert secret not in "".join(traceback.format_exception(error))


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, str):
        return Response(body, status=status, headers=headers)
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


# (name, answer, status of the error)
ANSWERS: list[tuple[str, Response, int]] = [
    ("401-echo", _answer(401, {"error": ECHO, "error_type": "Unauthorized"}), 401),
    ("401-text-body", _answer(401, ECHO), 401),
    ("500-echo", _answer(500, {"error": f"backend failed for {KEY}"}), 500),
    ("429-long-wait", _answer(429, {"error": ECHO}, {"Retry-After": "120"}), 429),
    ("503-exhausted", _answer(503, {"error": ECHO}, {"Retry-After": "0"}), 503),
]


def _authorised(answer: Response) -> Any:
    def handler(request: Request) -> Response:
        assert request.headers.get("Authorization") == f"Bearer {KEY}"
        return answer

    return handler


def _call(reranker: HuggingFaceReranker, mode: str) -> list[float]:
    if mode == "sync":
        return reranker.rerank(QUERY, DOCS)
    return asyncio.run(reranker.arerank(QUERY, DOCS))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("name", "answer", "status"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_an_error_body_echoing_the_key_stays_out_of_the_chain(
    tei: HTTPServer, mode: str, name: str, answer: Response, status: int
) -> None:
    tei.expect_request("/rerank").respond_with_handler(_authorised(answer))
    reranker = HuggingFaceReranker(
        HuggingFaceRerankerConfig(
            endpoint_url=tei.url_for("/"), api_key=KEY, timeout=2.0, max_retries=1, backoff=0.01
        )
    )
    try:
        with pytest.raises(RerankError) as info:
            _call(reranker, mode)
    finally:
        reranker.close()
    assert info.value.status == status
    assert "***" in str(info.value)  # the echo is there, scrubbed
    assert_no_secret(info.value)


def test_an_unreachable_server_keeps_the_key_out_of_the_chain() -> None:
    reranker = HuggingFaceReranker(
        HuggingFaceRerankerConfig(endpoint_url="http://127.0.0.1:9", api_key=KEY, max_retries=0)
    )
    try:
        with pytest.raises(RerankError, match="cannot reach") as info:
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert_no_secret(info.value)


def test_a_key_from_hf_token_stays_out_of_the_chain(
    tei: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", KEY)
    tei.expect_request("/rerank").respond_with_handler(_authorised(_answer(401, {"error": ECHO})))
    reranker = HuggingFaceReranker(HuggingFaceRerankerConfig(endpoint_url=tei.url_for("/")))
    try:
        with pytest.raises(RerankError) as info:
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert info.value.status == 401
    assert_no_secret(info.value)


@pytest.mark.parametrize("field", ["api_key", "token"])
@pytest.mark.parametrize("wrong", [[KEY], {"key": KEY}, 918273645546372819])
def test_a_wrong_typed_secret_stays_out_of_the_chain(field: str, wrong: Any) -> None:
    config = {"endpoint_url": "http://tei:8080"} if field == "api_key" else {}
    config[field] = wrong
    with pytest.raises(ConfigError) as info:
        memsift.MemoryConfig.from_dict({"reranker": {"provider": "huggingface", "config": config}})
    assert field in str(info.value)
    assert_no_secret(info.value, KEY)
    assert_no_secret(info.value, "918273645546372819")


def test_a_model_that_cannot_load_keeps_the_token_out_of_the_chain(tmp_path: Path) -> None:
    config = HuggingFaceRerankerConfig(
        model=str(tmp_path / "no-such-model"), token=KEY, local_files_only=True, device="cpu"
    )
    with pytest.raises(ModelNotFoundError) as info:
        HuggingFaceReranker(config)
    assert_no_secret(info.value)


@pytest.fixture
def memories(tei: HTTPServer, tmp_path: Path) -> Iterator[dict[str, memsift.Memory]]:
    built = {}
    for on_error in ("fallback", "raise"):
        reranker = {
            "endpoint_url": tei.url_for("/"),
            "api_key": KEY,
            "max_retries": 0,
            "on_error": on_error,
        }
        config = {
            "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / on_error)}},
            "reranker": {"provider": "huggingface", "config": reranker},
        }
        built[on_error] = memsift.Memory.from_config(config)
    for memory in built.values():
        memory.add(DOCS, user_id="alice", infer=False)
    tei.expect_request("/rerank").respond_with_handler(_authorised(_answer(401, {"error": ECHO})))
    yield built
    for memory in built.values():
        memory.close()


def test_searches_keep_the_key_out_of_errors_blocks_and_logs(
    memories: dict[str, memsift.Memory], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RerankError) as info:
        memories["raise"].search(QUERY, user_id="alice", rerank=True)
    assert_no_secret(info.value)
    with caplog.at_level(logging.DEBUG):
        block = memories["fallback"].search(QUERY, user_id="alice", rerank=True)["rerank"]
    assert block["applied"] is False and "HTTP 401" in block["error"]
    assert KEY not in block["error"] and KEY not in caplog.text
