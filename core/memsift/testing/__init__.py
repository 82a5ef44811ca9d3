"""Conformance suites for provider authors (pytest).

Subclass the suite of your provider's kind in your plugin's tests and provide its fixture::

    from memsift.testing import RerankerConformance

    class TestMyReranker(RerankerConformance):
        @pytest.fixture
        def reranker(self):
            return MyReranker(MyRerankerConfig(...))

Every test of the suite then runs against your provider. The suites check the contract the
search pipeline relies on; passing them is what "works with memsift" means.
"""

from memsift.testing.embedder import EmbedderConformance
from memsift.testing.llm import LLMConformance
from memsift.testing.plugin_package import PluginPackageConformance
from memsift.testing.registration import registered
from memsift.testing.reranker import RerankerConformance
from memsift.testing.vector_store import VectorStoreConformance

__all__ = [
    "EmbedderConformance",
    "LLMConformance",
    "PluginPackageConformance",
    "RerankerConformance",
    "VectorStoreConformance",
    "registered",
]
