"""A connection reset, or closed before the answer, is retried like a refused one (a rerank
is read-only, so sending it again is safe): a transient reset costs no fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI
from pydantic import SecretStr

from memsift import RerankError
from memsift.drills.fault_proxy import Fault, FaultProxy
from memsift.testing.fake_rerank_api import threaded_server
from memsift_cohere import CohereConfig, CohereReranker

QUERY = "where does alice live"
DOCS = ["alice lives in lisbon", "bob likes tea"]
RESET = Fault("reset", action="reset")
HANG_UP = Fault("hang-up", action="hang", hang=0.0)  # read, then closed without an answer


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, FakeCohereAPI]]:
    with threaded_server() as server:
        fake = FakeCohereAPI(server, API_KEY)
        with FaultProxy(fake.base_url) as proxy:
            yield proxy, fake
        fake.verify()


def reranker(proxy: FaultProxy, **options: Any) -> CohereReranker:
    config = CohereConfig(
        api_key=SecretStr(API_KEY), base_url=proxy.base_url, timeout=5.0, **options
    )
    return CohereReranker(config)


@pytest.mark.parametrize("fault", [RESET, HANG_UP], ids=["reset", "closed"])
def test_a_broken_connection_is_retried(
    proxy: tuple[FaultProxy, FakeCohereAPI], fault: Fault
) -> None:
    front, fake = proxy
    front.script(fault, times=1)
    built = reranker(front, max_retries=1)
    try:
        scores = built.rerank(QUERY, DOCS)
        front.script(fault, times=1)
        again = asyncio.run(built.arerank(QUERY, DOCS))
    finally:
        built.close()
    assert scores == again and scores[0] > scores[1]
    assert front.by_name[fault.name] == 2 and len(fake.requests) == 2


def test_a_persistent_reset_fails_with_the_reason(proxy: tuple[FaultProxy, FakeCohereAPI]) -> None:
    front, fake = proxy
    front.script(RESET)
    built = reranker(front, max_retries=2)
    try:
        with pytest.raises(RerankError, match="could not reach the API"):
            built.rerank(QUERY, DOCS)
    finally:
        built.close()
    assert front.by_name["reset"] == 3 and not fake.requests  # tried 1 + 2 times
