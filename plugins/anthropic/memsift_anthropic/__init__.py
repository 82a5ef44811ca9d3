"""memsift-anthropic: the ``anthropic`` LLM, on Anthropic's Messages API.

Registered through the ``memsift`` entry point. Importing this package does not import
the anthropic SDK; building the provider does.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from memsift import ProviderRegistrar, hookimpl
from memsift_anthropic.config import AnthropicConfig
from memsift_anthropic.llm import AnthropicLLM

try:
    __version__ = _metadata.version("memsift-anthropic")
except _metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
    __version__ = "0.0.0"


@hookimpl
def register_llms(registry: ProviderRegistrar) -> None:
    registry.register(
        "anthropic",
        AnthropicLLM,
        AnthropicConfig,
        description="Anthropic's Messages API (Claude); JSON by instruction, parsed strictly",
    )


__all__ = ["AnthropicConfig", "AnthropicLLM", "__version__", "register_llms"]
