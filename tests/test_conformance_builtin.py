"""The built-in providers pass the conformance suites that plugin authors use."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsift.builtin.bm25 import BM25Config, BM25Reranker
from memsift.builtin.faiss_store import FaissStore, FaissStoreConfig
from memsift.interfaces import Reranker, VectorStore
from memsift.testing import RerankerConformance, VectorStoreConformance
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


class TestScriptedRerankerConformance(RerankerConformance):
    """A third-party-style reranker from the test plugin passes the same suite."""

    @pytest.fixture
    def reranker(self) -> Reranker:
        from memsift_testplugin import ScriptedConfig, ScriptedReranker

        return ScriptedReranker(ScriptedConfig())
