"""memsift reranker ``huggingface``: a local transformers model, or a remote TEI server.

Installed, this package registers itself through the ``memsift`` entry-point group::

    {"reranker": {"provider": "huggingface", "config": {"model": "BAAI/bge-reranker-base"}}}
    {"reranker": {"provider": "huggingface", "config": {"endpoint_url": "http://tei:8080"}}}

Importing it does not import torch or transformers: the local mode loads them when the
reranker is built, and the remote mode never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memsift import hookimpl
from memsift.kit import distribution_version
from memsift_huggingface.config import HuggingFaceRerankerConfig
from memsift_huggingface.reranker import HuggingFaceReranker
from memsift_huggingface.runtime import RUNTIME

if TYPE_CHECKING:
    from memsift import ProviderRegistrar

__version__ = distribution_version("memsift-huggingface")  # written once, in pyproject.toml
#: Drop the process-wide cache of loaded models (frees memory once no provider uses them).
clear_model_cache = RUNTIME.clear


@hookimpl
def register_rerankers(registry: ProviderRegistrar) -> None:
    registry.register(
        "huggingface",
        HuggingFaceReranker,
        HuggingFaceRerankerConfig,
        description="a Hugging Face cross-encoder, local (transformers) or a remote TEI server",
    )


__all__ = [
    "HuggingFaceReranker",
    "HuggingFaceRerankerConfig",
    "__version__",
    "clear_model_cache",
    "register_rerankers",
]
