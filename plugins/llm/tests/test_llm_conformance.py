"""The core's suites: ``RerankerConformance`` (pointwise, with and without log-probs, and
listwise), ``PluginPackageConformance``, and ``HostedRerankerPipelineConformance`` through
an adapter that serves the suite's fake rerank API as chat completions.

The pipeline suite is written for a rerank API that takes the whole pool in one request
and scores every document itself. The llm_reranker's listwise mode has that shape (one
window covers the suite's pools), so the suite runs against it; where a scenario checks the
API's own scores verbatim, the override checks the ranks they give instead (listwise scores
come from the rank), and where it checks memsift's own retry budget (``Retrier``), the
override checks what holds for retries done by the llm provider's SDK. Pointwise mode (a
request per candidate) goes through the pipeline in test_llm_memory.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llm_fakes import API_KEY, asked_json, json_tokens, prompt_data, yes_no
from memsift_llm import LLMReranker

from memsift import Reranker
from memsift.config import MemoryConfig
from memsift.testing import PluginPackageConformance, RerankerConformance
from memsift.testing.fake_openai_api import FakeOpenAI
from memsift.testing.fake_openai_wire import check_chat
from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault
from memsift.testing.hosted_pipeline import HostedRerankerPipelineConformance
from memsift.testing.hosted_retries import QUERY, call
from memsift.testing.hosted_secrets import ECHOES

README = Path(__file__).resolve().parents[1] / "README.md"


class TestPackage(PluginPackageConformance):
    distribution = "memsift-llm"
    providers = {"reranker": ["llm_reranker"]}
    heavy_modules = ("openai", "anthropic", "httpx")


class TestPointwise(RerankerConformance):
    @pytest.fixture
    def reranker(self, make_reranker: Callable[..., LLMReranker]) -> Reranker:
        return make_reranker()


class TestPointwiseOnTheScale(RerankerConformance):
    @pytest.fixture
    def reranker(self, make_reranker: Callable[..., LLMReranker], fake_api: FakeOpenAI) -> Reranker:
        fake_api.supports_logprobs = False
        return make_reranker(llm={"capabilities": {"logprobs": False}})


class TestListwise(RerankerConformance):
    # a listwise score is a rank among the pool (duplicates get two ranks) and one pass of
    # windows depends on the order it is given: only shapes and ranges are checked
    deterministic = False

    @pytest.fixture
    def reranker(self, make_reranker: Callable[..., LLMReranker]) -> Reranker:
        return make_reranker(mode="listwise", window_size=8, step=4)


# ---------------------------------------------------------------------- the pipeline suite


class ChatRerankAPI(FakeRerankAPI):
    """The suite's fake rerank API, answering the llm_reranker's chat requests: it reads
    the query and documents from the prompt's tags (and records them in the body as
    ``query`` and ``documents``, for ``documents_sent``), ranks them by the suite's scores,
    and answers with the permutation (or, for a one-document pointwise request, with
    P("yes") = the score). ``bad_index`` makes it answer an id outside the window."""

    path = "/v1/chat/completions"
    base_path = "/v1"
    malformed_body = '{"id": "chatcmpl-fake", "choices": [{"index": 0, '

    def error_body(self, message: str) -> Any:
        return {"error": {"message": message, "type": "invalid_request_error", "code": None}}

    def _check(self, request: Any, body: Any) -> str | None:
        if not (request.content_type or "").startswith("application/json"):
            return f"content type {request.content_type!r}"
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        problem = check_chat(body)
        if problem:
            return problem
        query, docs, _ = prompt_data(body)
        if not query or not docs:
            return "the prompt holds no <query> and <document> tags"
        body["query"], body["documents"] = query, docs
        return None

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        count = len(body["documents"])
        if body.get("logprobs") and count == 1:
            score = results[0]["relevance_score"] if results[0]["index"] == 0 else -1.0
            value = yes_no(score) if score >= 0 else {"perhaps": -0.1}
            tokens = json_tokens("relevant", value) if asked_json(body) else [value]
            entries = []
            for alternatives in tokens:
                chosen = max(alternatives, key=lambda t: alternatives[t])
                top = [
                    {"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                    for t, lp in alternatives.items()
                ]
                entries.append(
                    {
                        "token": chosen,
                        "logprob": alternatives[chosen],
                        "bytes": None,
                        "top_logprobs": top,
                    }
                )
            content = "".join(e["token"] for e in entries)
            logprobs: Any = {"content": entries, "refusal": None}
        elif asked_json(body):
            content = json.dumps({"ranking": [r["index"] + 1 for r in results]})
            logprobs = None
        else:
            content = " > ".join(f"[{r['index'] + 1}]" for r in results)
            logprobs = None
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": logprobs,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        }


class TestPipeline(HostedRerankerPipelineConformance, RerankerConformance):
    deterministic = False  # listwise: see TestListwise
    fake_api_class = ChatRerankAPI
    api_key = API_KEY
    reranker_provider = "llm_reranker"
    model_name = "gpt-5-mini"
    slow_answer_words = ("within the timeout of 0.3 s",)
    unreachable_words = ("could not connect",)
    # an id outside the window breaks the schema's enum: the llm provider says so
    malformed_words = {"malformed_json": "malformed response", "bad_index": "is not one of"}
    budget_words = ()  # the llm provider's SDK retries, not memsift's Retrier
    key_required = False  # the key may come from the llm provider's own variable
    readme = README
    readme_env = {"OPENAI_API_KEY": "api_key", "OPENAI_BASE_URL": "base_url"}

    #: Options that go into the nested llm config rather than the reranker's.
    nested_options = ("base_url", "max_retries")

    @pytest.fixture
    def memory_config(self, fake_api: FakeRerankAPI) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def make(options: dict[str, Any]) -> dict[str, Any]:
            given = {"base_url": fake_api.base_url, "max_retries": 1, **options}
            nested = {k: given.pop(k) for k in self.nested_options if k in given}
            config = {
                "model": "gpt-5-mini",
                "api_key": API_KEY,
                "mode": "listwise",
                "window_size": 40,
                "step": 20,
                "llm": {"provider": "openai", "config": nested},
                **given,
            }
            return {"reranker": {"provider": "llm_reranker", "config": config}}

        return make

    # ------------------------------------------------------------------ rank, not score

    def _ranks(self, texts: list[str], scores: dict[str, float]) -> dict[str, float]:
        order = sorted(texts, key=lambda t: -scores[t])
        return {t: (len(texts) - r) / len(texts) for r, t in enumerate(order)}

    def test_reranking_reorders_by_the_api_scores(
        self,
        open_memory: Callable[..., Any],
        _api: FakeRerankAPI,
        memory_config: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        memory = open_memory()
        vector = memory.search(top_k=8, rerank=False)["results"]
        texts = self._texts(vector)
        scores = {t: round(0.05 + 0.1 * i, 3) for i, t in enumerate(texts)}
        _api.scores = dict(scores)
        response = memory.search(top_k=5, rerank=True)
        hits = response["results"]
        assert self._texts(hits) == texts[::-1][:5]
        ranks = self._ranks(texts, scores)
        for hit in hits:
            assert hit["rerank_score"] == pytest.approx(ranks[hit["memory"]])
            assert hit["score"] == hit["rerank_score"]
        block = response["rerank"]
        assert block["applied"] is True and block["model"] == self.model_name
        assert block["method"] == "permutation" and block["requests"] == 1
        assert _api.documents_sent() == [texts], "the pool goes in one window, in vector order"

    def test_scores_come_back_in_input_order(
        self, build_reranker: Callable[..., Any], _api: FakeRerankAPI, mode: str
    ) -> None:
        from memsift.testing.hosted_calls import POOL, run_async

        _api.scores = {d: round(0.1 + 0.1 * i, 3) for i, d in enumerate(POOL)}
        reranker = build_reranker()
        scores = reranker.rerank(QUERY, POOL) if mode == "sync" else run_async(reranker, POOL)
        assert scores == pytest.approx([(i + 1) / len(POOL) for i in range(len(POOL))])
        assert len(_api.requests) == 1

    def test_429_with_retry_after_is_retried(
        self, build_reranker: Callable[..., Any], _api: FakeRerankAPI, mode: str
    ) -> None:
        _api.fail(Fault(429, _api.error_body("too many requests"), {"Retry-After": "1"}))
        start = time.monotonic()
        scores = call(build_reranker(max_retries=2), mode)
        assert time.monotonic() - start >= 0.9, "the retry came before the Retry-After"
        assert sorted(scores) == pytest.approx([0.5, 1.0])
        assert len(_api.requests) == 2

    # ------------------------------------------------------------------ the SDK's retries

    def test_a_long_retry_after_falls_back_at_once_as_a_429_then_recovers(
        self, open_memory: Callable[..., Any], _api: FakeRerankAPI
    ) -> None:
        # The SDK does not honour a Retry-After over a minute (it backs off instead) and does
        # not know the stage's budget: with no retries the 429 falls back at once.
        memory = open_memory(timeout=self.budget, max_retries=0)
        _api.fail(always=Fault(429, _api.error_body("too many requests"), {"Retry-After": "120"}))
        for _ in range(3):
            block = memory.search(top_k=3, rerank=True)["rerank"]
            assert block["applied"] is False
            assert "HTTP 429" in block["error"] and "too many requests" in block["error"]
        assert len(_api.requests) == 3
        _api.fail(always=None)
        assert memory.search(top_k=3, rerank=True)["rerank"]["applied"] is True

    def test_memory_close_ends_a_search_waiting_for_a_retry(
        self, *args: Any, **kwargs: Any
    ) -> None:
        pytest.skip("retries are the llm provider's: its SDK sleeps, memsift cannot wake it")

    def test_a_retry_after_longer_than_the_rest_of_the_budget_is_not_waited_for(
        self, *args: Any, **kwargs: Any
    ) -> None:
        pytest.skip("retries are the llm provider's: its SDK does not know the stage's budget")

    def test_without_a_timeout_a_retry_after_over_the_longest_wait_fails_at_once(
        self, *args: Any, **kwargs: Any
    ) -> None:
        pytest.skip("retries are the llm provider's: its SDK backs off instead")

    def test_close_wakes_a_sleeping_retry(self, *args: Any, **kwargs: Any) -> None:
        pytest.skip("retries are the llm provider's: its SDK sleeps, memsift cannot wake it")

    def test_process_exit_does_not_wait_for_a_sleeping_retry(
        self, *args: Any, **kwargs: Any
    ) -> None:
        pytest.skip("retries are the llm provider's: its SDK sleeps, memsift cannot wake it")

    def test_closing_wakes_a_sleeping_async_retry(self, *args: Any, **kwargs: Any) -> None:
        pytest.skip("retries are the llm provider's: its SDK sleeps, memsift cannot wake it")

    @pytest.mark.parametrize("echo", [e for e in ECHOES if e != "429-long-wait"])
    def test_an_error_body_echoing_the_key_stays_out_of_the_chain(
        self, build_reranker: Callable[..., Any], _api: FakeRerankAPI, mode: str, echo: str
    ) -> None:
        # 429-long-wait left out: a Retry-After over what is left is memsift's Retrier rule
        super().test_an_error_body_echoing_the_key_stays_out_of_the_chain(
            build_reranker, _api, mode, echo
        )

    def test_every_pipeline_option_is_accepted(
        self, reranker_section: Callable[..., dict[str, Any]]
    ) -> None:
        options = {"top_k": 30, "timeout": 5, "on_error": "raise", "cache_size": 0}
        section = reranker_section(**options, max_retries=4)
        config = MemoryConfig.from_dict({"reranker": section}).reranker
        assert config is not None
        assert {k: getattr(config.config, k) for k in options} == options
        assert config.config.llm_section().config.max_retries == 4
