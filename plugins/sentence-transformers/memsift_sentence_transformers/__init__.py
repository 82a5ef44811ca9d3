"""memsift providers on sentence-transformers: reranker and embedder ``sentence_transformer``.

Installed, this package registers itself through the ``memsift`` entry-point group; select
the providers by name in a memsift config::

    {"reranker": {"provider": "sentence_transformer", "config": {"model": "..."}}}
    {"embedder": {"provider": "sentence_transformer", "config": {"model": "..."}}}

Importing it does not import torch or sentence-transformers: they load when a provider is
built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memsift import hookimpl
from memsift.kit import distribution_version
from memsift_sentence_transformers.config import (
    SentenceTransformerEmbedderConfig,
    SentenceTransformerRerankerConfig,
)
from memsift_sentence_transformers.embedder import SentenceTransformerEmbedder
from memsift_sentence_transformers.reranker import SentenceTransformerReranker
from memsift_sentence_transformers.runtime import RUNTIME

if TYPE_CHECKING:
    from memsift import ProviderRegistrar

__version__ = distribution_version(
    "memsift-sentence-transformers"
)  # written once, in pyproject.toml
#: Drop the process-wide cache of loaded models (frees memory once no provider uses them).
clear_model_cache = RUNTIME.clear


@hookimpl
def register_rerankers(registry: ProviderRegistrar) -> None:
    registry.register(
        "sentence_transformer",
        SentenceTransformerReranker,
        SentenceTransformerRerankerConfig,
        description="a local sentence-transformers CrossEncoder; sigmoid scores in [0, 1]",
    )


@hookimpl
def register_embedders(registry: ProviderRegistrar) -> None:
    registry.register(
        "sentence_transformer",
        SentenceTransformerEmbedder,
        SentenceTransformerEmbedderConfig,
        description="a local sentence-transformers model (default all-MiniLM-L6-v2)",
    )


__all__ = [
    "SentenceTransformerEmbedder",
    "SentenceTransformerEmbedderConfig",
    "SentenceTransformerReranker",
    "SentenceTransformerRerankerConfig",
    "__version__",
    "clear_model_cache",
    "register_embedders",
    "register_rerankers",
]
