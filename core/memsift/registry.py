"""Typed lookups of providers. Every hook call sits behind this module and is validated here.

pluggy returns ``Any``; the functions here are the only place the core calls the
``register_*`` hooks, and they check what each plugin hands over: a name, a subclass of
the right base class, and a pydantic config model that forbids unknown keys.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from memsift.errors import PluginError, ProviderNotFoundError
from memsift.interfaces import LLM, Embedder, ProviderKind, Reranker, VectorStore

_BASES: dict[ProviderKind, type] = {
    "embedder": Embedder,
    "reranker": Reranker,
    "vector_store": VectorStore,
    "llm": LLM,
}
_HOOKS: dict[ProviderKind, str] = {
    "embedder": "register_embedders",
    "reranker": "register_rerankers",
    "vector_store": "register_vector_stores",
    "llm": "register_llms",
}
KIND_LABEL: dict[ProviderKind, str] = {
    "embedder": "embedder",
    "reranker": "reranker",
    "vector_store": "vector store",
    "llm": "llm",
}

#: Providers shipped as separate distributions, so errors can say what to install.
KNOWN_DISTRIBUTIONS: dict[tuple[ProviderKind, str], str] = {
    ("reranker", "cohere"): "memsift-cohere",
    ("reranker", "zero_entropy"): "memsift-zeroentropy",
    ("reranker", "sentence_transformer"): "memsift-sentence-transformers",
    ("embedder", "sentence_transformer"): "memsift-sentence-transformers",
    ("reranker", "huggingface"): "memsift-huggingface",
    ("llm", "openai"): "memsift-openai",
    ("embedder", "openai"): "memsift-openai",
    ("reranker", "llm_reranker"): "memsift-llm",
    ("vector_store", "qdrant"): "memsift-qdrant",
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class ProviderSpec:
    """One registered provider: its kind, name, class, config model and owning plugin."""

    kind: ProviderKind
    name: str
    factory: type[Any]
    config_model: type[BaseModel]
    description: str
    plugin: str

    def build(self, config: BaseModel) -> Any:
        """Instantiate the provider with an already validated config."""
        return self.factory(config)


class ProviderRegistrar:
    """Handed to a ``register_*`` hook; the plugin calls :meth:`register` on it."""

    def __init__(
        self, kind: ProviderKind, plugin: str, sink: Callable[[ProviderSpec], None]
    ) -> None:
        self.kind = kind
        self.plugin = plugin
        self._sink = sink

    def register(
        self,
        name: str,
        provider: type[Any],
        config: type[BaseModel],
        *,
        description: str = "",
    ) -> None:
        """Register ``provider`` (a class) under ``name`` with its pydantic ``config`` model."""
        label = KIND_LABEL[self.kind]
        where = f"plugin {self.plugin!r} registering {label} {name!r}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(
                f"{where}: the name must match {_NAME_RE.pattern} (lowercase, digits, _ or -)"
            )
        base = _BASES[self.kind]
        if not isinstance(provider, type) or not issubclass(provider, base):
            raise PluginError(
                f"{where}: the provider must be a subclass of memsift.{base.__name__}, "
                f"got {provider!r}"
            )
        if not isinstance(config, type) or not issubclass(config, BaseModel):
            raise PluginError(f"{where}: the config must be a pydantic model class, got {config!r}")
        if config.model_config.get("extra") != "forbid":
            raise PluginError(
                f"{where}: the config model {config.__name__} must forbid unknown keys "
                "(model_config extra='forbid'; subclassing memsift.ProviderConfig does it)"
            )
        if not isinstance(description, str):
            raise PluginError(f"{where}: the description must be a string")
        self._sink(
            ProviderSpec(
                kind=self.kind,
                name=name,
                factory=provider,
                config_model=config,
                description=description.strip().splitlines()[0] if description.strip() else "",
                plugin=self.plugin,
            )
        )


class Registry:
    """Every registered provider, by kind and name."""

    def __init__(self) -> None:
        self.specs: dict[ProviderKind, dict[str, ProviderSpec]] = {k: {} for k in _BASES}

    def add(self, spec: ProviderSpec) -> None:
        existing = self.specs[spec.kind].get(spec.name)
        if existing is not None:
            raise PluginError(
                f"{KIND_LABEL[spec.kind]} {spec.name!r} is registered twice: by plugin "
                f"{existing.plugin!r} and by plugin {spec.plugin!r}; uninstall one of them "
                "or restrict loading with MEMSIFT_LOAD_PLUGINS"
            )
        self.specs[spec.kind][spec.name] = spec

    def lookup(self, kind: ProviderKind, name: str) -> ProviderSpec:
        spec = self.specs[kind].get(name)
        if spec is not None:
            return spec
        label = KIND_LABEL[kind]
        installed = sorted(self.specs[kind])
        parts = [f"{label} {name!r} is not installed"]
        dist = KNOWN_DISTRIBUTIONS.get((kind, name))
        if dist is not None:
            parts[0] += f": pip install {dist}"
        else:
            close = difflib.get_close_matches(name, installed, n=1)
            if close:
                parts.append(f"did you mean {close[0]!r}?")
        parts.append(f"installed {label}s: {', '.join(installed) if installed else 'none'}")
        raise ProviderNotFoundError("; ".join(parts))


_registry: Registry | None = None
_lock = threading.RLock()


def _load() -> Registry:
    from memsift.plugins import get_plugin_host

    host = get_plugin_host()
    for info in host.infos.values():
        info.providers = []
    reg = Registry()
    for kind, hook_name in _HOOKS.items():
        caller = getattr(host.manager.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):  # registration order
            plugin = impl.plugin_name
            pending: list[ProviderSpec] = []
            registrar = ProviderRegistrar(kind, plugin, pending.append)
            try:
                impl.function(registry=registrar)
            except PluginError:
                raise
            except Exception as exc:
                # nothing of a hook that failed half-way is kept
                _report_hook_failure(host, plugin, hook_name, exc)
                continue
            for spec in pending:
                reg.add(spec)
            owner = host.infos.get(plugin)
            if owner is not None:
                owner.providers.extend((kind, s.name) for s in pending)
    return reg


def _report_hook_failure(host: Any, plugin: str, hook_name: str, exc: Exception) -> None:
    import warnings

    from memsift.plugins import PluginLoadWarning

    message = f"{type(exc).__name__}: {exc}"
    info = host.infos.get(plugin)
    if info is not None:
        info.error = message
    warnings.warn(
        f"memsift plugin {plugin!r} failed in {hook_name} and was skipped: {message}",
        PluginLoadWarning,
        stacklevel=3,
    )


def get_registry() -> Registry:
    """The registry, loading plugins on first use (once per process)."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = _load()
        return _registry


def forget() -> None:
    """Drop the loaded registry; the next lookup loads plugins again."""
    global _registry
    with _lock:
        _registry = None


def get_provider(kind: ProviderKind, name: str) -> ProviderSpec:
    """The provider ``name`` of ``kind``; ProviderNotFoundError lists what is installed."""
    return get_registry().lookup(kind, name)


def get_embedder(name: str) -> ProviderSpec:
    return get_provider("embedder", name)


def get_reranker(name: str) -> ProviderSpec:
    return get_provider("reranker", name)


def get_vector_store(name: str) -> ProviderSpec:
    return get_provider("vector_store", name)


def get_llm(name: str) -> ProviderSpec:
    return get_provider("llm", name)


def list_providers(kind: ProviderKind) -> list[ProviderSpec]:
    """Every registered provider of ``kind``, sorted by name."""
    specs = get_registry().specs[kind]
    return [specs[n] for n in sorted(specs)]
