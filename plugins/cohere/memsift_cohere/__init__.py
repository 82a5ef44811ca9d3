"""memsift-cohere: the ``cohere`` reranker, on Cohere's hosted rerank API (v2).

Registered through the ``memsift`` entry point. Importing this package does not import
the cohere SDK; building the reranker does.
"""

from __future__ import annotations

from memsift import ProviderRegistrar, hookimpl
from memsift.kit import distribution_version
from memsift_cohere.config import CohereConfig
from memsift_cohere.reranker import MAX_DOCUMENTS_PER_REQUEST, CohereReranker

__version__ = distribution_version("memsift-cohere")  # written once, in pyproject.toml


@hookimpl
def register_rerankers(registry: ProviderRegistrar) -> None:
    registry.register(
        "cohere",
        CohereReranker,
        CohereConfig,
        description="Cohere's hosted rerank API (v2, rerank-v3.5 by default); scores in [0, 1]",
    )


__all__ = [
    "MAX_DOCUMENTS_PER_REQUEST",
    "CohereConfig",
    "CohereReranker",
    "__version__",
    "register_rerankers",
]
