"""The core's conformance suites: the LLM contract (with its fault matrix) and the package."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_anthropic_api import (
    API_KEY,
    FakeAnthropicAPI,
    Reply,
    error,
    malformed,
    rate_limited,
    server_error,
)

from memsift import LLM
from memsift.testing import LLMConformance, PluginPackageConformance
from memsift_anthropic import AnthropicLLM

#: The faults of the suite's fault matrix, as the fake API plays them.
FAULTS: dict[str, Reply] = {
    "401": error(401, "authentication_error", f"invalid x-api-key: {API_KEY}"),
    "429": rate_limited(0.01),
    "500": server_error(),
    "timeout": Reply(delay=5.0),
    "malformed": malformed(),
}


class TestAnthropicLLMConformance(LLMConformance):
    @pytest.fixture
    def llm(self, make_llm: Callable[..., AnthropicLLM]) -> LLM:
        return make_llm()

    @pytest.fixture
    def llm_secret(self) -> str:
        return API_KEY

    @pytest.fixture
    def faulty_llm(
        self, make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
    ) -> Callable[[str], LLM]:
        """A provider whose every request meets ``fault`` (one retry, short timeouts)."""

        def make(fault: str) -> LLM:
            fake_api.script(always=FAULTS[fault])
            return make_llm(max_retries=1, timeout=0.5)

        return make


class TestAnthropicPackage(PluginPackageConformance):
    distribution = "memsift-anthropic"
    providers = {"llm": ["anthropic"]}
    heavy_modules = ("anthropic", "httpx2", "httpx")
