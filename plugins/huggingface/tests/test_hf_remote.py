"""The ``huggingface`` reranker's remote mode against fake TEI servers on 127.0.0.1.

The core's hosted suite runs against :class:`fake_tei.FakeTEI` (the reranker alone, in
``Memory`` / ``AsyncMemory``, its retries within the budget, its secrets); the tests here
check what is TEI's own: the body, the answer's shapes, error bodies, URLs, and the modes.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_tei import FakeTEI, overlap_logit, tei_handler
from pytest_httpserver import HTTPServer

import memsift
from memsift import ConfigError, RerankError
from memsift.testing import RerankerConformance
from memsift.testing.fake_rerank_api import FakeRerankAPI
from memsift.testing.hosted_pipeline import HostedRerankerPipelineConformance
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig
from memsift_huggingface.remote import redact_url, rerank_url, retry_after

QUERY = "where does alice live"
DOCS = [
    "alice moved to lisbon in march",
    "the quarterly report is due on friday",
    "alice lives in lisbon",
    "bob prefers green tea",
    "where is lisbon",
]


def make(server: HTTPServer, **options: Any) -> HuggingFaceReranker:
    options.setdefault("backoff", 0.01)
    return HuggingFaceReranker(
        HuggingFaceRerankerConfig(endpoint_url=server.url_for("/"), **options)
    )


@pytest.fixture
def remote(tei: HTTPServer) -> Iterator[HuggingFaceReranker]:
    tei.expect_request("/rerank", method="POST").respond_with_handler(tei_handler)
    reranker = make(tei)
    yield reranker
    reranker.close()


def expected_scores(query: str, docs: list[str]) -> list[float]:
    return [1 / (1 + math.exp(-overlap_logit(query, d))) for d in docs]


def bodies(server: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(req.get_data()) for req, _ in server.log]


class TestRemote(HostedRerankerPipelineConformance, RerankerConformance):
    fake_api_class = FakeTEI
    api_key = "tei-test-key-4a3b2c1d"
    reranker_provider = "huggingface"
    base_url_field = "endpoint_url"
    base_options = {"backoff": 0.01}
    key_env = "HF_TOKEN"
    key_in_401_hint = False
    slow_answer_words = ("did not answer within 0.3 s",)
    unreachable_words = ("cannot reach",)
    malformed_words = {"malformed_json": "not JSON", "bad_index": "out of range"}

    def hosted_part(self, reranker: Any) -> Any:
        return reranker._remote

    def limit_requests(
        self, monkeypatch: pytest.MonkeyPatch, fake_api: FakeRerankAPI
    ) -> dict[str, Any]:
        fake_api.max_documents = 3
        return {"batch_size": 3}


# --------------------------------------------------------------------------- the wire


def test_request_shape_and_index_mapping(tei: HTTPServer) -> None:
    answer = [{"index": 2, "score": 0.9}, {"index": 0, "score": 0.5}, {"index": 1, "score": 0.1}]
    tei.expect_request(
        "/rerank",
        method="POST",
        json={"query": QUERY, "texts": DOCS[:3], "raw_scores": False, "truncate": True},
    ).respond_with_json(answer)
    reranker = make(tei)
    try:
        assert reranker.rerank(QUERY, DOCS[:3]) == [0.5, 0.1, 0.9]
    finally:
        reranker.close()
    ((request, _),) = tei.log
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers
    assert reranker.model_name == rerank_url(tei.url_for("/"))


def test_options_reach_the_body(tei: HTTPServer) -> None:
    tei.expect_request("/rerank").respond_with_handler(tei_handler)
    reranker = make(tei, normalize=False, truncate=False)
    try:
        raw = reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert bodies(tei)[0]["raw_scores"] is True and bodies(tei)[0]["truncate"] is False
    assert raw == pytest.approx([overlap_logit(QUERY, d) for d in DOCS])


def test_api_key_is_a_bearer_token(tei: HTTPServer) -> None:
    tei.expect_request(
        "/rerank", headers={"Authorization": "Bearer tei-secret"}
    ).respond_with_handler(tei_handler)
    reranker = make(tei, api_key="tei-secret")
    try:
        assert len(reranker.rerank(QUERY, DOCS)) == len(DOCS)
        assert "tei-secret" not in repr(reranker.config)
    finally:
        reranker.close()


def test_api_key_defaults_to_hf_token(tei: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    tei.expect_request(
        "/rerank", headers={"Authorization": "Bearer hf_from_env"}
    ).respond_with_handler(tei_handler)
    reranker = make(tei)
    try:
        assert len(reranker.rerank(QUERY, DOCS)) == len(DOCS)
    finally:
        reranker.close()


def test_batches_of_batch_size(tei: HTTPServer) -> None:
    tei.expect_request("/rerank").respond_with_handler(tei_handler)
    reranker = make(tei, batch_size=2)
    try:
        scores = reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert [b["texts"] for b in bodies(tei)] == [DOCS[0:2], DOCS[2:4], DOCS[4:5]]
    assert scores == pytest.approx(expected_scores(QUERY, DOCS))


# --------------------------------------------------------------------------- retries


def test_503_is_retried_then_fails(tei: HTTPServer) -> None:
    tei.expect_request("/rerank").respond_with_data("warming up", status=503)
    reranker = make(tei, max_retries=2)
    try:
        with pytest.raises(RerankError) as info:
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert info.value.status == 503 and "warming up" in str(info.value)
    assert len(tei.log) == 3


def test_424_is_not_retried(tei: HTTPServer) -> None:
    tei.expect_request("/rerank").respond_with_json(
        {"error": "inference failed", "error_type": "Backend"}, status=424
    )
    reranker = make(tei)
    try:
        with pytest.raises(RerankError, match="Backend: inference failed") as info:
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert info.value.status == 424 and len(tei.log) == 1


def test_an_unreachable_server_is_a_rerank_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reranker = HuggingFaceReranker(
        HuggingFaceRerankerConfig(
            endpoint_url=f"http://user:pw@127.0.0.1:{port}", max_retries=1, backoff=0.01
        )
    )
    try:
        with pytest.raises(RerankError, match="cannot reach") as info:
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert "pw" not in str(info.value) and "user" not in str(info.value)
    assert "pw" not in reranker.model_name


@pytest.mark.parametrize(
    "answer",
    [
        {"not": "a list"},
        [{"index": 0, "score": 0.5}],
        [{"index": i, "score": "high"} for i in range(5)],
        [{"index": 0, "score": 0.5}] * 5,
        [{"index": i + 1, "score": 0.5} for i in range(5)],
        [{"index": i, "score": 3.5} for i in range(5)],
    ],
    ids=["object", "too-few", "non-numeric", "repeated", "out-of-range", "not-normalised"],
)
def test_malformed_answers_are_rerank_errors(tei: HTTPServer, answer: Any) -> None:
    tei.expect_request("/rerank").respond_with_json(answer)
    reranker = make(tei)
    try:
        with pytest.raises(RerankError):
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()


def test_retry_after_parsing() -> None:
    def response(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after(response("2")) == 2.0
    assert retry_after(response("nonsense")) is None
    assert retry_after(response("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0
    assert retry_after(httpx.Response(429)) is None


def test_urls() -> None:
    assert rerank_url("http://tei:8080") == "http://tei:8080/rerank"
    assert rerank_url("http://tei:8080/rerank/") == "http://tei:8080/rerank"
    assert rerank_url("https://host/models/bge/") == "https://host/models/bge/rerank"
    assert redact_url("https://me:secret@host:9/rerank") == "https://host:9/rerank"


# --------------------------------------------------------------------------- async


def test_async_client_survives_a_new_event_loop(remote: HuggingFaceReranker) -> None:
    first = asyncio.run(remote.arerank(QUERY, DOCS))
    second = asyncio.run(remote.arerank(QUERY, DOCS))
    assert first == second


# --------------------------------------------------------------------------- through Memory


def _config(tmp_path: Path, reranker: dict[str, Any]) -> dict[str, Any]:
    return {
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        "reranker": {"provider": "huggingface", "config": reranker},
    }


@pytest.mark.parametrize("status", [424])
def test_server_errors_fall_back_to_vector_order(
    tmp_path: Path, tei: HTTPServer, status: int
) -> None:
    tei.expect_request("/rerank").respond_with_json(
        {"error": "no", "error_type": "Backend"}, status=status
    )
    memory = memsift.Memory.from_config(
        _config(tmp_path, {"endpoint_url": tei.url_for("/"), "max_retries": 1, "backoff": 0.01})
    )
    try:
        memory.add(DOCS, user_id="alice", infer=False)
        plain = memory.search(QUERY, user_id="alice", rerank=False)
        out = memory.search(QUERY, user_id="alice", rerank=True)
        assert out["rerank"]["applied"] is False
        assert f"HTTP {status}" in out["rerank"]["error"]
        assert [r["id"] for r in out["results"]] == [r["id"] for r in plain["results"]]
        assert all("rerank_score" not in r for r in out["results"])
    finally:
        memory.close()


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"model": "x", "endpoint_url": "http://tei"}, "not both"),
        ({"endpoint_url": "http://tei", "device": "cpu"}, "device is only for the local mode"),
        ({"endpoint_url": "http://tei", "max_length": 64}, "local mode"),
        ({"model": "x", "api_key": "k"}, "api_key is only for the remote mode"),
        (
            {"endpoint_url": "http://tei", "max_length": 64, "revision": "v1"},
            "max_length, revision are only for the local mode",
        ),
        ({"max_retries": 3}, "remote mode"),
        ({"endpoint_url": "ftp://tei"}, "http"),
        ({"endpoint_url": "http://tei", "timeout": 0}, "timeout"),
        ({"endpoint_url": "http://tei", "unknown": 1}, "unknown key 'unknown'"),
    ],
)
def test_mode_validation(config: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        memsift.MemoryConfig.from_dict({"reranker": {"provider": "huggingface", "config": config}})


def test_the_api_key_never_shows_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        memsift.MemoryConfig.from_dict(
            {"reranker": {"provider": "huggingface", "config": {"model": "x", "api_key": "sk-1"}}}
        )
    assert "sk-1" not in str(info.value)


def test_defaults_of_the_other_mode_are_accepted() -> None:
    """A dumped config (every key, defaults included) validates again."""
    for config in (HuggingFaceRerankerConfig(), HuggingFaceRerankerConfig(endpoint_url="http://t")):
        dumped = config.model_dump()
        assert HuggingFaceRerankerConfig.model_validate(dumped) == config


def test_modes() -> None:
    assert HuggingFaceRerankerConfig().mode == "local"
    assert HuggingFaceRerankerConfig().model_id == "BAAI/bge-reranker-base"
    remote = HuggingFaceRerankerConfig(endpoint_url="http://tei:8080")
    assert remote.mode == "remote"
