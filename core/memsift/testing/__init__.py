"""Conformance suites for provider authors (pytest).

Subclass the suite of your provider's kind in your plugin's tests and provide its fixture::

    from memsift.testing import RerankerConformance

    class TestMyReranker(RerankerConformance):
        @pytest.fixture
        def reranker(self):
            return MyReranker(MyRerankerConfig(...))

Every test of the suite then runs against your provider. The suites check the contract the
search pipeline relies on; passing them is what "works with memsift" means.

The names below are imported on first access, so that the submodules that need no pytest
(:mod:`memsift.testing.benchkit`, which plugin benchmarks use under ``memsift bench``, and
:mod:`memsift.testing.tiny_models`) import without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memsift.testing.embedder import EmbedderConformance
    from memsift.testing.llm import LLMConformance
    from memsift.testing.plugin_package import PluginPackageConformance
    from memsift.testing.registration import registered
    from memsift.testing.reranker import RerankerConformance
    from memsift.testing.secrets import assert_secret_absent
    from memsift.testing.vector_store import VectorStoreConformance

#: Each exported name and the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "EmbedderConformance": "memsift.testing.embedder",
    "LLMConformance": "memsift.testing.llm",
    "PluginPackageConformance": "memsift.testing.plugin_package",
    "RerankerConformance": "memsift.testing.reranker",
    "VectorStoreConformance": "memsift.testing.vector_store",
    "assert_secret_absent": "memsift.testing.secrets",
    "registered": "memsift.testing.registration",
}

__all__ = [
    "EmbedderConformance",
    "LLMConformance",
    "PluginPackageConformance",
    "RerankerConformance",
    "VectorStoreConformance",
    "assert_secret_absent",
    "registered",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
