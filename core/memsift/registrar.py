"""What a ``register_*`` hook receives, and the table of provider kinds it checks against.

:data:`KINDS` says what each provider kind is: its name, the base class its providers
subclass, the base class of their config models, and the hook that registers them. A plugin's
hook gets a :class:`ProviderRegistrar` of its kind and calls
``registry.register(name, ProviderClass, ConfigModel, description=...)``; the registrar
checks the registration (a valid name, a subclass of the kind's base class, a config model
subclassing the kind's config base and forbidding unknown keys) and hands a
:class:`ProviderSpec` to the :mod:`memsift.registry`, which owns the loaded providers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

from pydantic import BaseModel
from typing_extensions import TypeVar

from memsift.errors import PluginError
from memsift.interfaces import (
    LLM,
    Embedder,
    EmbedderConfig,
    LLMConfig,
    ProviderConfig,
    ProviderKind,
    Reranker,
    RerankerConfig,
    VectorStore,
    VectorStoreConfig,
)

#: The provider class a registrar or spec is about (``Reranker`` for rerankers, ...).
T = TypeVar("T", default=Any)


@dataclass(frozen=True)
class KindSpec:
    """One provider kind: its name, label, base classes and registration hook."""

    kind: ProviderKind
    label: str
    base: type[Any]
    config_base: type[ProviderConfig]
    hook: str


#: The provider kinds, in the order their hooks are called.
KINDS: dict[ProviderKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec("embedder", "embedder", Embedder, EmbedderConfig, "register_embedders"),
        KindSpec("reranker", "reranker", Reranker, RerankerConfig, "register_rerankers"),
        KindSpec(
            "vector_store", "vector store", VectorStore, VectorStoreConfig, "register_vector_stores"
        ),
        KindSpec("llm", "llm", LLM, LLMConfig, "register_llms"),
    )
}
KIND_LABEL: dict[ProviderKind, str] = {kind: spec.label for kind, spec in KINDS.items()}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class ProviderSpec(Generic[T]):
    """One registered provider: its kind, name, class, config model and owning plugin."""

    kind: ProviderKind
    name: str
    factory: type[T]
    config_model: type[BaseModel]
    description: str
    plugin: str
    #: How messages name the owning plugin (``memsift-a (entry point a)``).
    origin: str = ""

    def build(self, config: BaseModel) -> T:
        """Instantiate the provider with an already validated config."""
        factory: Any = self.factory
        built: T = factory(config)
        return built


class ProviderRegistrar(Generic[T]):
    """Handed to a ``register_*`` hook; the plugin calls :meth:`register` on it.

    Annotate the hook's argument with the kind (``ProviderRegistrar[Reranker]`` in
    ``register_rerankers``) and a type checker refuses a provider of another kind.
    """

    def __init__(
        self,
        kind: ProviderKind,
        plugin: str,
        sink: Callable[[ProviderSpec[Any]], None],
        *,
        origin: str | None = None,
    ) -> None:
        self.kind = kind
        self.plugin = plugin
        self.origin = origin or plugin
        self._sink = sink

    def register(
        self,
        name: str,
        factory: type[T],
        config: type[ProviderConfig],
        *,
        description: str = "",
    ) -> None:
        """Register ``factory`` (a provider class) under ``name`` with its ``config`` model.

        ``config`` subclasses the kind's config base (``memsift.RerankerConfig`` for a
        reranker, ...). ``description``'s first line is shown by ``memsift plugins``.
        Raises :class:`~memsift.PluginError` for an invalid registration (the host then
        skips the plugin with a warning).
        """
        kind = KINDS[self.kind]
        where = f"plugin {self.plugin!r} registering {kind.label} {name!r}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(
                f"{where}: the name must match {_NAME_RE.pattern} (lowercase, digits, _ or -)"
            )
        if not isinstance(factory, type) or not issubclass(factory, kind.base):
            raise PluginError(
                f"{where}: the provider must be a subclass of memsift.{kind.base.__name__}, "
                f"got {factory!r}"
            )
        if not isinstance(config, type) or not issubclass(config, BaseModel):
            raise PluginError(f"{where}: the config must be a pydantic model class, got {config!r}")
        if config.model_config.get("extra") != "forbid":
            raise PluginError(
                f"{where}: the config model {config.__name__} must forbid unknown keys "
                "(model_config extra='forbid'; subclassing memsift.ProviderConfig does it)"
            )
        if not issubclass(config, kind.config_base):
            raise PluginError(
                f"{where}: the config model {config.__name__} must subclass "
                f"memsift.{kind.config_base.__name__}"
            )
        if not isinstance(description, str):
            raise PluginError(f"{where}: the description must be a string")
        self._sink(
            ProviderSpec(
                kind=self.kind,
                name=name,
                factory=factory,
                config_model=config,
                description=description.strip().splitlines()[0] if description.strip() else "",
                plugin=self.plugin,
                origin=self.origin,
            )
        )


__all__ = ["KINDS", "KIND_LABEL", "KindSpec", "ProviderRegistrar", "ProviderSpec"]
