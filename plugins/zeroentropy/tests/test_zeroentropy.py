"""The ``zero_entropy`` reranker against a fake of ZeroEntropy's API, through the real SDK.

The core's suites check the contract (the reranker alone, in ``Memory`` / ``AsyncMemory``,
its retries within the budget, its secrets and config, the README's example, the installed
package); the tests here check what is ZeroEntropy's own: the body on the wire and its
options, the API's byte limit, the server's ``x-should-retry``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_zeroentropy_api import API_KEY, FakeZeroEntropyAPI, Fault, relevance, request_bytes

import memsift_zeroentropy.reranker as reranker_module
from memsift import RerankError
from memsift.testing import PluginPackageConformance, RerankerConformance
from memsift.testing.fake_rerank_api import FakeRerankAPI
from memsift.testing.hosted_pipeline import HostedRerankerPipelineConformance

README = Path(__file__).resolve().parents[1] / "README.md"
QUERY = "Where does Alice live?"
DOCS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
]
BUDGET = 700  # bytes: about three of the suite's documents per request


class TestPackage(PluginPackageConformance):
    distribution = "memsift-zeroentropy"
    providers = {"reranker": ["zero_entropy"]}
    heavy_modules = ("zeroentropy",)


class TestZeroEntropy(HostedRerankerPipelineConformance, RerankerConformance):
    fake_api_class = FakeZeroEntropyAPI
    api_key = API_KEY
    reranker_provider = "zero_entropy"
    model_name = "zerank-2"
    base_url_env = "ZEROENTROPY_BASE_URL"
    key_env = "ZEROENTROPY_API_KEY"
    more_key_envs = ("ZERO_ENTROPY_API_KEY",)
    key_required = True
    slow_answer_words = ("timeout of 0.3 s",)
    unreachable_words = ("could not reach the API",)
    client_headers = {"X-Client-Name": "memsift"}
    readme = README
    readme_env = {"ZEROENTROPY_API_KEY": "api_key", "ZEROENTROPY_BASE_URL": "base_url"}

    def limit_requests(
        self, monkeypatch: pytest.MonkeyPatch, fake_api: FakeRerankAPI
    ) -> dict[str, Any]:
        assert isinstance(fake_api, FakeZeroEntropyAPI)
        monkeypatch.setattr(reranker_module, "MAX_REQUEST_BYTES", BUDGET)
        fake_api.max_bytes = BUDGET
        return {}

    # ------------------------------------------------------------------ the wire

    def test_the_body_is_what_the_api_expects(
        self, build_reranker: Any, _api: FakeZeroEntropyAPI
    ) -> None:
        scores = build_reranker().rerank(QUERY, DOCS)
        expected = {"model": "zerank-2", "query": QUERY, "documents": DOCS, "top_n": 3}
        assert _api.requests[0].body == expected
        assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS])

    def test_model_and_latency_are_sent_latency_only_when_set(
        self, build_reranker: Any, _api: FakeZeroEntropyAPI
    ) -> None:
        build_reranker(model="zerank-1-small", latency="slow").rerank(QUERY, DOCS[:2])
        build_reranker(model="zerank-1").rerank(QUERY, DOCS[:2])
        first, second = (r.body for r in _api.requests)
        assert (first["model"], first["latency"]) == ("zerank-1-small", "slow")
        assert second["model"] == "zerank-1" and "latency" not in second

    def test_requests_stay_within_the_byte_limit(
        self, build_reranker: Any, _api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.limit_requests(monkeypatch, _api)
        build_reranker().rerank(QUERY, DOCS * 3)
        sent = _api.documents_sent()
        assert len(sent) >= 3 and all(request_bytes(QUERY, batch) <= BUDGET for batch in sent)

    def test_a_document_over_the_limit_goes_alone(
        self, build_reranker: Any, _api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(reranker_module, "MAX_REQUEST_BYTES", BUDGET)
        big = "Alice " * 200
        build_reranker().rerank(QUERY, [DOCS[0], big, DOCS[1]])
        assert _api.documents_sent() == [[DOCS[0]], [big], [DOCS[1]]]

    @pytest.mark.parametrize(("verdict", "sent"), [("false", 1), ("true", 2)])
    def test_the_servers_x_should_retry_is_obeyed(
        self, build_reranker: Any, _api: FakeZeroEntropyAPI, verdict: str, sent: int
    ) -> None:
        # 503 is retryable and 400 is not, unless the server says otherwise (the SDK's rule)
        status = 503 if verdict == "false" else 400
        _api.fail(always=Fault(status, {"detail": "no"}, {"x-should-retry": verdict}))
        with pytest.raises(RerankError) as info:
            build_reranker(max_retries=1).rerank(QUERY, DOCS)
        assert info.value.status == status
        assert len(_api.requests) == sent
