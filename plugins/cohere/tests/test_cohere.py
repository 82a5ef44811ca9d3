"""The ``cohere`` reranker against a fake of Cohere's v2 API, through the real cohere SDK.

The core's suites check the contract (the reranker alone, in ``Memory`` / ``AsyncMemory``,
its retries within the budget, its secrets and config, the README's example, the installed
package); the tests here check what is Cohere's own: the body on the wire, its options, the
documents per request, ``return_documents``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cohere  # noqa: F401  (loaded first: the SDK reads CO_API_URL once, when it loads)
import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI, relevance

import memsift_cohere.reranker as reranker_module
from memsift.testing import PluginPackageConformance, RerankerConformance
from memsift.testing.fake_rerank_api import FakeRerankAPI
from memsift.testing.hosted_pipeline import HostedRerankerPipelineConformance

README = Path(__file__).resolve().parents[1] / "README.md"
QUERY = "Where does Alice live?"
DOCS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
    "Lisbon is the capital of Portugal.",
]


class TestPackage(PluginPackageConformance):
    distribution = "memsift-cohere"
    providers = {"reranker": ["cohere"]}
    heavy_modules = ("cohere",)


class TestCohere(HostedRerankerPipelineConformance, RerankerConformance):
    fake_api_class = FakeCohereAPI
    api_key = API_KEY
    reranker_provider = "cohere"
    model_name = "rerank-v3.5"
    base_url_env = "CO_API_URL"
    key_env = "CO_API_KEY"
    more_key_envs = ("COHERE_API_KEY",)
    key_required = True
    slow_answer_words = ("timeout of 0.3 s",)
    unreachable_words = ("could not reach the API",)
    client_headers = {"X-Client-Name": "memsift"}
    readme = README
    readme_env = {"CO_API_KEY": "api_key", "CO_API_URL": "base_url"}

    def limit_requests(
        self, monkeypatch: pytest.MonkeyPatch, fake_api: FakeRerankAPI
    ) -> dict[str, Any]:
        monkeypatch.setattr(reranker_module, "MAX_DOCUMENTS_PER_REQUEST", 3)
        fake_api.max_documents = 3
        return {}

    # ------------------------------------------------------------------ the wire

    def test_the_body_is_what_the_api_expects(
        self, build_reranker: Any, _api: FakeCohereAPI
    ) -> None:
        scores = build_reranker().rerank(QUERY, DOCS[:3])
        assert _api.requests[0].body == {
            "model": "rerank-v3.5",
            "query": QUERY,
            "documents": DOCS[:3],
            "top_n": 3,
        }
        assert scores == pytest.approx([relevance(QUERY, d) for d in DOCS[:3]])

    def test_model_and_max_tokens_per_doc_are_sent(
        self, build_reranker: Any, _api: FakeCohereAPI
    ) -> None:
        build_reranker(model="rerank-english-v3.0", max_tokens_per_doc=512).rerank(QUERY, DOCS[:2])
        body = _api.requests[0].body
        assert body["model"] == "rerank-english-v3.0"
        assert body["max_tokens_per_doc"] == 512

    def test_requests_hold_at_most_max_documents_per_request(
        self, build_reranker: Any, _api: FakeCohereAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.limit_requests(monkeypatch, _api)
        build_reranker().rerank(QUERY, DOCS * 2)
        assert [len(d) for d in _api.documents_sent()] == [3, 3, 2]

    def test_return_documents_is_accepted_and_logged_once(
        self, build_reranker: Any, _api: FakeCohereAPI, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="memsift_cohere"):
            reranker = build_reranker(return_documents=True)
            reranker.rerank(QUERY, DOCS[:2])
            reranker.rerank(QUERY, DOCS[2:4])
        notes = [r for r in caplog.records if "return_documents" in r.getMessage()]
        assert len(notes) == 1 and notes[0].levelno == logging.INFO
        assert all("return_documents" not in (r.body or {}) for r in _api.requests)
