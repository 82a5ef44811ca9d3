"""memsift-openai: the ``openai`` LLM and the ``openai`` embedder.

Both use the official ``openai`` SDK and talk to OpenAI's API or to any OpenAI-compatible
server (vLLM, llama.cpp, Ollama, LM Studio, ...) through ``base_url``. Registered through the
``memsift`` entry point; importing this package does not import the SDK, building a provider
does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from memsift import LLM, Embedder, ProviderRegistrar, hookimpl
from memsift_openai.config import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    KNOWN_DIMS,
    Capabilities,
    OpenAIConnection,
    OpenAIEmbedderConfig,
    OpenAILLMConfig,
)
from memsift_openai.embedder import OpenAIEmbedder
from memsift_openai.llm import OpenAILLM

try:
    __version__ = version("memsift-openai")
except PackageNotFoundError:  # pragma: no cover  (run from a source tree, not installed)
    __version__ = "0.0.0"


@hookimpl
def register_llms(registry: ProviderRegistrar[LLM]) -> None:
    registry.register(
        "openai",
        OpenAILLM,
        OpenAILLMConfig,
        description="OpenAI chat completions, or any OpenAI-compatible server (base_url)",
    )


@hookimpl
def register_embedders(registry: ProviderRegistrar[Embedder]) -> None:
    registry.register(
        "openai",
        OpenAIEmbedder,
        OpenAIEmbedderConfig,
        description="OpenAI embeddings (text-embedding-3-*), or an OpenAI-compatible server",
    )


__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "KNOWN_DIMS",
    "Capabilities",
    "OpenAIConnection",
    "OpenAIEmbedder",
    "OpenAIEmbedderConfig",
    "OpenAILLM",
    "OpenAILLMConfig",
    "__version__",
    "register_embedders",
    "register_llms",
]
