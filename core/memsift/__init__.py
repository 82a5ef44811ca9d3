"""memsift: long-term memory for AI agents with reranker-enhanced search.

This module is the facade: what users and plugin authors import (``Memory``, ``AsyncMemory``,
the base classes, the errors, ``hookimpl``). Inside the core, modules import the module that
defines a name, never this one.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from memsift.completions import Completion, LLMCapabilities, TokenLogprob, Usage
from memsift.config import MemoryConfig, env_secret, require_secret
from memsift.errors import (
    ConfigError,
    EmbedderMismatchError,
    FilterError,
    InvalidInputError,
    LLMError,
    LLMResponseError,
    MemoryNotFoundError,
    MemsiftError,
    ModelNotFoundError,
    PluginError,
    ProviderConflictError,
    ProviderError,
    ProviderNotFoundError,
    RerankError,
    RerankTimeoutError,
    ScopeError,
    StoreError,
    UnknownArgumentError,
)
from memsift.hookspecs import hookimpl
from memsift.interfaces import (
    LLM,
    Embedder,
    EmbedderConfig,
    EmbedderIdentity,
    KeywordHit,
    LLMConfig,
    MemoryRecord,
    ProviderConfig,
    Reranker,
    RerankerConfig,
    VectorHit,
    VectorStore,
    VectorStoreConfig,
    check_embed_input,
    check_rerank_input,
)
from memsift.plugins import PluginLoadWarning
from memsift.registrar import ProviderRegistrar

if TYPE_CHECKING:
    from memsift.async_memory import AsyncMemory
    from memsift.bulk import MemoryItem
    from memsift.memory import Memory

try:  # the version is written once, in the distribution's metadata (pyproject.toml)
    __version__ = _metadata.version("memsift")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    # Memory, AsyncMemory and MemoryItem import the whole pipeline; load them on first use.
    if name == "Memory":
        from memsift.memory import Memory

        return Memory
    if name == "AsyncMemory":
        from memsift.async_memory import AsyncMemory

        return AsyncMemory
    if name == "MemoryItem":
        from memsift.bulk import MemoryItem

        return MemoryItem
    raise AttributeError(f"module 'memsift' has no attribute {name!r}")


__all__ = [
    "LLM",
    "AsyncMemory",
    "Completion",
    "ConfigError",
    "Embedder",
    "EmbedderConfig",
    "EmbedderIdentity",
    "EmbedderMismatchError",
    "FilterError",
    "InvalidInputError",
    "KeywordHit",
    "LLMCapabilities",
    "LLMConfig",
    "LLMError",
    "LLMResponseError",
    "Memory",
    "MemoryConfig",
    "MemoryItem",
    "MemoryNotFoundError",
    "MemoryRecord",
    "MemsiftError",
    "ModelNotFoundError",
    "PluginError",
    "PluginLoadWarning",
    "ProviderConfig",
    "ProviderConflictError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderRegistrar",
    "RerankError",
    "RerankTimeoutError",
    "Reranker",
    "RerankerConfig",
    "ScopeError",
    "StoreError",
    "TokenLogprob",
    "UnknownArgumentError",
    "Usage",
    "VectorHit",
    "VectorStore",
    "VectorStoreConfig",
    "__version__",
    "check_embed_input",
    "check_rerank_input",
    "env_secret",
    "hookimpl",
    "require_secret",
]
