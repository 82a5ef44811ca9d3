"""The providers pass memsift's conformance suites against the fake OpenAI API: as OpenAI
itself, and as an OpenAI-compatible server that has no json_schema and no log-probs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from openai_fakes import API_KEY

from memsift import LLM, Embedder
from memsift.testing import EmbedderConformance, LLMConformance, PluginPackageConformance
from memsift.testing.fake_openai_api import FakeOpenAI, Fault
from memsift_openai import OpenAIEmbedder, OpenAILLM

#: How the fake meets each fault of the suite's matrix.
FAULTS: dict[str, Fault] = {
    "401": Fault(status=401),
    "429": Fault(status=429, headers={"Retry-After": "0"}),
    "500": Fault(status=500),
    "timeout": Fault(delay=3.0),
    "malformed": Fault(kind="malformed_json"),
}


class TestOpenAILLMConformance(LLMConformance):
    """The ``openai`` LLM against a fake of OpenAI's API (json_schema, log-probs)."""

    @pytest.fixture
    def llm(self, make_llm: Callable[..., OpenAILLM]) -> LLM:
        return make_llm()

    @pytest.fixture
    def llm_secret(self) -> str:
        return API_KEY

    @pytest.fixture
    def faulty_llm(
        self, fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM]
    ) -> Iterator[Callable[[str], LLM]]:
        def make(fault: str) -> LLM:
            fake_api.fail(always=FAULTS[fault])
            # one retry: the SDK retries 429 (after Retry-After) and 500, then gives up
            return make_llm(timeout=0.5, max_retries=0 if fault == "timeout" else 1)

        yield make
        fake_api.release.set()


class TestCompatibleServerConformance(TestOpenAILLMConformance):
    """The same, against a server that refuses json_schema and ignores log-probs."""

    @pytest.fixture
    def llm(self, fake_api: FakeOpenAI, make_llm: Callable[..., OpenAILLM]) -> LLM:
        fake_api.supports_json_schema = False
        fake_api.supports_logprobs = False
        return make_llm()


class TestOpenAIEmbedderConformance(EmbedderConformance):
    """The ``openai`` embedder (text-embedding-3-small, 256 dimensions) against the fake."""

    @pytest.fixture
    def embedder(self, make_embedder: Callable[..., OpenAIEmbedder]) -> Embedder:
        return make_embedder(dimensions=256)


class TestOpenAIEmbedderBase64Conformance(EmbedderConformance):
    """The same with the vectors sent as base64 (as from OpenAI), at the full 1536 dims."""

    @pytest.fixture
    def embedder(self, make_embedder: Callable[..., OpenAIEmbedder]) -> Embedder:
        return make_embedder(encoding_format="base64")


class TestPackage(PluginPackageConformance):
    distribution = "memsift-openai"
    providers = {"llm": ["openai"], "embedder": ["openai"]}
    heavy_modules = ("openai", "httpx", "httpx2")
