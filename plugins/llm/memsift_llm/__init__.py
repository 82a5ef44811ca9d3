"""memsift-llm: the reranker ``llm_reranker``, which scores candidates with any registered
memsift LLM provider (``openai``, ``anthropic``, a third party's).

Pointwise (a request per candidate, all in flight within ``max_concurrency``; P("yes") from
log-probabilities, else a strict 0-10 answer) or listwise (RankGPT-style sliding windows, a
strict permutation). Registered through the ``memsift`` entry point; importing this package
imports no LLM SDK (building the reranker builds its LLM).
"""

from __future__ import annotations

from memsift import ProviderRegistrar, Reranker, hookimpl
from memsift.kit import distribution_version
from memsift_llm.config import LLMRerankerConfig, LLMSection
from memsift_llm.reranker import PROVIDER, LLMReranker

__version__ = distribution_version("memsift-llm")


@hookimpl
def register_rerankers(registry: ProviderRegistrar[Reranker]) -> None:
    registry.register(
        PROVIDER,
        LLMReranker,
        LLMRerankerConfig,
        description="scores candidates with any llm provider, pointwise or listwise",
    )


__all__ = [
    "PROVIDER",
    "LLMReranker",
    "LLMRerankerConfig",
    "LLMSection",
    "__version__",
    "register_rerankers",
]
