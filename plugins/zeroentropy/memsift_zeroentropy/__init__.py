"""memsift-zeroentropy: the ``zero_entropy`` reranker, on ZeroEntropy's hosted rerank API.

Registered through the ``memsift`` entry point. Importing this package does not import
the zeroentropy SDK; building the reranker does.
"""

from __future__ import annotations

from memsift import ProviderRegistrar, hookimpl
from memsift.kit import distribution_version
from memsift_zeroentropy.config import ZeroEntropyConfig
from memsift_zeroentropy.reranker import MAX_REQUEST_BYTES, ZeroEntropyReranker

__version__ = distribution_version("memsift-zeroentropy")  # written once, in pyproject.toml


@hookimpl
def register_rerankers(registry: ProviderRegistrar) -> None:
    registry.register(
        "zero_entropy",
        ZeroEntropyReranker,
        ZeroEntropyConfig,
        description="ZeroEntropy's hosted rerank API (zerank-2 by default); scores in [0, 1]",
    )


__all__ = [
    "MAX_REQUEST_BYTES",
    "ZeroEntropyConfig",
    "ZeroEntropyReranker",
    "__version__",
    "register_rerankers",
]
