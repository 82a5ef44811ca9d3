"""The exceptions memsift raises. Every error a user can cause is one of these."""

from __future__ import annotations


class MemsiftError(Exception):
    """Base class of every memsift error."""


class ConfigError(MemsiftError, ValueError):
    """A configuration is invalid: an unknown key, a bad value, a missing secret."""


class ProviderNotFoundError(ConfigError):
    """A configuration names a provider that no installed plugin registers."""


class PluginError(MemsiftError):
    """A plugin registered something invalid (duplicate name, wrong base class, no config)."""


class ProviderConflictError(PluginError, ConfigError):
    """Two or more plugins register the provider a config asks for.

    Raised only when that name is looked up (so configs that do not use it keep working);
    the message names every plugin that registers it. It is a :class:`PluginError` (the
    installed plugins clash) and a :class:`ConfigError` (the config cannot be resolved),
    so code catching either sees it.
    """


class FilterError(MemsiftError, ValueError):
    """A filter is malformed; the message says where in the filter the problem is."""


class ScopeError(FilterError):
    """An operation that must be scoped by user_id, agent_id or run_id was not."""


class InvalidInputError(MemsiftError, ValueError):
    """An argument is invalid: an empty query, a wrong type, an unknown keyword argument."""


class UnknownArgumentError(InvalidInputError, TypeError):
    """A method was called with a keyword argument it does not take (never ignored)."""


class MemoryNotFoundError(MemsiftError, KeyError):
    """No memory has the given id."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "memory not found"


class StoreError(MemsiftError):
    """The vector store cannot do what was asked (corrupt file, wrong dimension, ...)."""


class EmbedderMismatchError(StoreError):
    """A store filled by one embedder was opened with another."""


class ModelNotFoundError(MemsiftError):
    """A model's files could not be found or verified."""


class ProviderError(MemsiftError):
    """A provider (hosted API or local model) failed.

    Carries the provider name, the HTTP status when there is one, and the provider's
    message. It never carries credentials.
    """

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        self.message = message
        where = f"{provider} (HTTP {status})" if status is not None else provider
        super().__init__(f"{where}: {message}")


class RerankError(ProviderError):
    """A reranker failed to score the candidates."""


class RerankTimeoutError(RerankError):
    """A reranker did not answer within its configured timeout."""


class LLMError(ProviderError):
    """An LLM provider failed (HTTP error, timeout, refused request)."""


class LLMResponseError(LLMError):
    """An LLM answered, but not as asked: not JSON, not the required shape, truncated."""


__all__ = [
    "ConfigError",
    "EmbedderMismatchError",
    "FilterError",
    "InvalidInputError",
    "LLMError",
    "LLMResponseError",
    "MemoryNotFoundError",
    "MemsiftError",
    "ModelNotFoundError",
    "PluginError",
    "ProviderConflictError",
    "ProviderError",
    "ProviderNotFoundError",
    "RerankError",
    "RerankTimeoutError",
    "ScopeError",
    "StoreError",
    "UnknownArgumentError",
]
