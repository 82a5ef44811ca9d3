"""Endpoint mode: a connection reset, or closed before the answer, is retried like a refused
one (a rerank is read-only, so sending it again is safe); a 500 is not (TEI's 500 is a model
error, not a passing one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fake_tei import tei_handler
from pytest_httpserver import HTTPServer

from memsift import RerankError
from memsift.drills.fault_proxy import Fault, FaultProxy
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

QUERY = "where does alice live"
DOCS = ["alice lives in lisbon", "bob likes tea"]
RESET = Fault("reset", action="reset")
HANG_UP = Fault("hang-up", action="hang", hang=0.0)  # read, then closed without an answer


@pytest.fixture
def proxy(tei: HTTPServer) -> Iterator[FaultProxy]:
    tei.expect_request("/rerank", method="POST").respond_with_handler(tei_handler)
    with FaultProxy(tei.url_for("/").rstrip("/")) as front:
        yield front


def reranker(proxy: FaultProxy, **options: Any) -> HuggingFaceReranker:
    config = HuggingFaceRerankerConfig(endpoint_url=proxy.base_url, backoff=0.01, **options)
    return HuggingFaceReranker(config)


@pytest.mark.parametrize("fault", [RESET, HANG_UP], ids=["reset", "closed"])
def test_a_broken_connection_is_retried(proxy: FaultProxy, fault: Fault) -> None:
    proxy.script(fault, times=1)
    built = reranker(proxy, max_retries=1)
    try:
        scores = built.rerank(QUERY, DOCS)
        proxy.script(fault, times=1)
        again = asyncio.run(built.arerank(QUERY, DOCS))
    finally:
        built.close()
    assert scores == again and scores[0] > scores[1]
    assert proxy.by_name[fault.name] == 2 and proxy.forwarded == 2


def test_a_persistent_reset_fails_with_the_reason(proxy: FaultProxy) -> None:
    proxy.script(RESET)
    built = reranker(proxy, max_retries=2)
    try:
        with pytest.raises(RerankError, match="cannot reach"):
            built.rerank(QUERY, DOCS)
    finally:
        built.close()
    assert proxy.by_name["reset"] == 3 and proxy.forwarded == 0


def test_a_500_is_not_retried(proxy: FaultProxy) -> None:
    proxy.script(Fault("500", status=500), times=1)
    built = reranker(proxy, max_retries=2)
    try:
        with pytest.raises(RerankError) as info:
            built.rerank(QUERY, DOCS)
        assert built.rerank(QUERY, DOCS)  # the next call is answered
    finally:
        built.close()
    assert info.value.status == 500 and proxy.by_name["500"] == 1
