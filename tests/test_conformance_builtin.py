"""The built-in providers pass the conformance suites that plugin authors use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memsift.builtin.bm25 import BM25Config, BM25Reranker
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.builtin.minilm import MiniLMEmbedder
from memsift.interfaces import LLM, Embedder, Reranker, VectorStore
from memsift.testing import (
    EmbedderConformance,
    LLMConformance,
    PluginPackageConformance,
    RerankerConformance,
    VectorStoreConformance,
)
from memsift.testing.vector_store import StoreFactory


class TestBM25Conformance(RerankerConformance):
    @pytest.fixture
    def reranker(self) -> Reranker:
        return BM25Reranker(BM25Config())


class TestFaissFlatConformance(VectorStoreConformance):
    index = "flat"

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        def factory() -> VectorStore:
            return FaissStore(FaissStoreConfig(path=str(tmp_path / "store"), index=self.index))

        return factory


class TestFaissHNSWConformance(TestFaissFlatConformance):
    index = "hnsw"


@pytest.fixture(scope="module")
def minilm() -> Iterator[MiniLMEmbedder]:
    embedder = MiniLMEmbedder()
    yield embedder
    embedder.close()


class TestMiniLMConformance(EmbedderConformance):
    """The default embedder on the offline pack's weights (loaded once for the class)."""

    @pytest.fixture
    def embedder(self, minilm: MiniLMEmbedder) -> Embedder:
        return minilm


class TestScriptedRerankerConformance(RerankerConformance):
    """A third-party-style reranker from the test plugin passes the same suite."""

    #: it scores documents by their ``[r=...]`` markers: 0.5 for every plain document
    scores_vary = False

    @pytest.fixture
    def reranker(self) -> Reranker:
        from memsift_testplugin import ScriptedConfig, ScriptedReranker

        return ScriptedReranker(ScriptedConfig())


class TestEchoLLMConformance(LLMConformance):
    """The test plugin's scripted LLM passes the LLM suite."""

    fault_matrix = False
    fault_matrix_reason = "the echo LLM answers in process: it has no transport that can fail"

    @pytest.fixture
    def llm(self) -> LLM:
        from memsift_testplugin import EchoLLM, EchoLLMConfig

        return EchoLLM(EchoLLMConfig())


class TestTestPluginPackage(PluginPackageConformance):
    """The test plugin, installed through a real entry point, as a distribution."""

    distribution = "memsift-testplugin"
    providers = {
        "reranker": ["scripted", "failing", "bad_scores"],
        "embedder": ["hashing"],
        "llm": ["echo"],
    }
    heavy_modules = ("torch", "transformers", "cohere", "httpx")
