"""Typed lookups of providers. Every hook call sits behind this module and is validated here.

The functions here are the only place the core calls the ``register_*`` hooks: each plugin's
hooks get a :class:`~memsift.registrar.ProviderRegistrar` of their kind (the table of kinds,
:data:`~memsift.registrar.KINDS`, and the checks of a registration live in
:mod:`memsift.registrar`), and a plugin whose hook raises or registers something invalid is
skipped with a :class:`~memsift.plugins.PluginLoadWarning`.

Two plugins registering the same provider name is not an error until something asks for
that name: :func:`get_provider` (and so a config naming it) then raises
:class:`~memsift.errors.ProviderConflictError` naming both plugins; every other provider
works.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, cast

from memsift import plugins as _plugins
from memsift.errors import PluginError, ProviderConflictError, ProviderNotFoundError
from memsift.interfaces import LLM, Embedder, ProviderKind, Reranker, VectorStore
from memsift.plugins import LOAD_PLUGINS_ENV, PluginInfo, normalize_dist_name
from memsift.registrar import KIND_LABEL, KINDS, KindSpec, ProviderRegistrar, ProviderSpec

#: Providers shipped as separate distributions (in plugins/ or planned, DESIGN section 1),
#: so that an unknown-provider error can say what to install.
KNOWN_DISTRIBUTIONS: dict[tuple[ProviderKind, str], str] = {
    ("reranker", "cohere"): "memsift-cohere",
    ("reranker", "zero_entropy"): "memsift-zeroentropy",
    ("reranker", "sentence_transformer"): "memsift-sentence-transformers",
    ("embedder", "sentence_transformer"): "memsift-sentence-transformers",
    ("reranker", "huggingface"): "memsift-huggingface",
    ("llm", "openai"): "memsift-openai",
    ("embedder", "openai"): "memsift-openai",
    ("llm", "anthropic"): "memsift-anthropic",
    ("reranker", "llm_reranker"): "memsift-llm",
    ("vector_store", "qdrant"): "memsift-qdrant",
}


def _and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


def conflict_message(kind: ProviderKind, name: str, specs: list[ProviderSpec[Any]]) -> str:
    """What a lookup of a provider name registered by several plugins says."""
    owners = [s.origin or s.plugin for s in specs]
    count = _COUNTS.get(len(owners), str(len(owners)))
    message = f"{KIND_LABEL[kind]} {name!r} is registered by {count} plugins: {_and_join(owners)}"
    others = [s.origin or s.plugin for s in specs if s.plugin not in _plugins.DEFAULT_PLUGINS]
    if len(others) < len(owners):
        return (
            f"{message}; a built-in provider cannot be replaced: uninstall {_and_join(others)} "
            f"or leave it out of {LOAD_PLUGINS_ENV}"
        )
    return f"{message}; uninstall one or restrict {LOAD_PLUGINS_ENV}"


class Registry:
    """Every registered provider, by kind and name; names registered twice are conflicts."""

    def __init__(
        self,
        specs: Iterable[ProviderSpec[Any]] = (),
        *,
        plugins: Mapping[str, PluginInfo] | None = None,
        allow_list: str | None = None,
    ) -> None:
        #: The providers that can be looked up (registered by exactly one plugin).
        self.specs: dict[ProviderKind, dict[str, ProviderSpec[Any]]] = {k: {} for k in KINDS}
        #: Names registered by several plugins: every registration, in load order.
        self.conflicts: dict[ProviderKind, dict[str, list[ProviderSpec[Any]]]] = {
            k: {} for k in KINDS
        }
        #: Every registration, in load order (conflicting ones included).
        self.all_specs: list[ProviderSpec[Any]] = []
        self._plugins: Mapping[str, PluginInfo] = plugins if plugins is not None else {}
        self._allow_list = allow_list
        for spec in specs:
            self.add(spec)

    def add(self, spec: ProviderSpec[Any]) -> None:
        self.all_specs.append(spec)
        clash = self.conflicts[spec.kind].get(spec.name)
        if clash is not None:
            clash.append(spec)
            return
        existing = self.specs[spec.kind].pop(spec.name, None)
        if existing is not None:
            self.conflicts[spec.kind][spec.name] = [existing, spec]
            return
        self.specs[spec.kind][spec.name] = spec

    def provided_by(self, plugin: str) -> list[ProviderSpec[Any]]:
        """Every registration of the plugin ``plugin`` (conflicting ones included)."""
        return [s for s in self.all_specs if s.plugin == plugin]

    def rivals(self, spec: ProviderSpec[Any]) -> list[ProviderSpec[Any]]:
        """The other registrations of ``spec``'s kind and name (empty: no conflict)."""
        return [s for s in self.conflicts[spec.kind].get(spec.name, []) if s is not spec]

    def lookup(self, kind: ProviderKind, name: str) -> ProviderSpec[Any]:
        spec = self.specs[kind].get(name)
        if spec is not None:
            return spec
        clash = self.conflicts[kind].get(name)
        if clash:
            raise ProviderConflictError(conflict_message(kind, name, clash))
        raise ProviderNotFoundError(self._not_found(kind, name))

    def _not_found(self, kind: ProviderKind, name: str) -> str:
        label = KIND_LABEL[kind]
        installed = sorted(self.specs[kind])
        blocked = [i for i in self._plugins.values() if i.blocked]
        failed = [i for i in self._plugins.values() if i.error is not None]
        allow = f"{LOAD_PLUGINS_ENV}={self._allow_list!r}"
        dist = KNOWN_DISTRIBUTIONS.get((kind, name))
        owner = None
        if dist is not None:
            owner = next(
                (
                    i
                    for i in self._plugins.values()
                    if i.distribution is not None
                    and normalize_dist_name(i.distribution) == normalize_dist_name(dist)
                ),
                None,
            )
        parts: list[str] = []
        if owner is not None and owner.blocked:
            parts.append(
                f"{label} {name!r} is provided by {dist}, which is installed but blocked by "
                f"{allow}: add {dist} to {LOAD_PLUGINS_ENV} (or unset it) to load it"
            )
        elif owner is not None and owner.error is not None:
            parts.append(
                f"{label} {name!r} is provided by {owner.label}, which is installed but "
                f"failed to load: {owner.error}"
            )
        elif dist is not None:
            parts.append(f"{label} {name!r} is not installed: pip install {dist}")
        else:
            unloaded = bool(blocked or failed)
            parts.append(
                f"{label} {name!r} is not registered by any loaded plugin"
                if unloaded
                else f"{label} {name!r} is not installed"
            )
            close = difflib.get_close_matches(name, installed, n=1)
            if close:
                parts.append(f"did you mean {close[0]!r}?")
            if blocked:
                names = ", ".join(i.distribution or i.name for i in blocked)
                parts.append(
                    f"installed but blocked by {allow}, so not searched: {names} (to load one, "
                    f"add it to {LOAD_PLUGINS_ENV} or unset {LOAD_PLUGINS_ENV})"
                )
            if failed:
                parts.append(
                    "installed but failed to load: "
                    + ", ".join(f"{i.label} ({i.error})" for i in failed)
                )
        parts.append(f"installed {label}s: {', '.join(installed) if installed else 'none'}")
        return "; ".join(parts)


# --------------------------------------------------------------------------- loading

_registry: Registry | None = None
_lock = _plugins.HOST_LOCK


def _collect(host: _plugins.PluginHost, info: PluginInfo) -> list[ProviderSpec[Any]] | None:
    """Call the ``register_*`` hooks of one plugin; None when it failed (and was skipped).

    Nothing of a plugin whose hook failed half-way is kept, in any kind.
    """
    pending: list[ProviderSpec[Any]] = []
    seen: set[tuple[ProviderKind, str]] = set()

    def sink(spec: ProviderSpec[Any]) -> None:
        key = (spec.kind, spec.name)
        if key in seen:
            raise PluginError(
                f"plugin {info.name!r}: {KIND_LABEL[spec.kind]} {spec.name!r} is registered "
                "twice by this plugin"
            )
        seen.add(key)
        pending.append(spec)

    for kind in KINDS.values():
        caller = getattr(host.manager.hook, kind.hook)
        for impl in caller.get_hookimpls():
            if impl.plugin_name != info.name:
                continue
            registrar: ProviderRegistrar[Any] = ProviderRegistrar(
                kind.kind, info.name, sink, origin=info.label
            )
            try:
                impl.function(**{arg: registrar for arg in impl.argnames})
            except Exception as exc:
                host.skip(info, f"failed in {kind.hook}", exc)
                return None
    return pending


def _load() -> Registry:
    host = _plugins.get_plugin_host()
    host.adopt_unrecorded()
    specs: list[ProviderSpec[Any]] = []
    for info in list(host.infos.values()):
        info.providers = []
        if not info.loaded:
            continue
        got = _collect(host, info)
        if got is None:
            continue
        info.providers = [(s.kind, s.name) for s in got]
        specs.extend(got)
    return Registry(specs, plugins=host.infos, allow_list=host.allow_list)


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


_plugins.on_reload(forget)  # reload_plugins() forgets the registry with the host


def include(info: PluginInfo) -> None:
    """Add the providers of a plugin registered after the registry loaded (in-process).

    Calls only that plugin's hooks; the registry is replaced by a new one holding every
    earlier registration and the new ones. See :func:`memsift.testing.registered`.
    """
    global _registry
    with _lock:
        if _registry is None or not info.loaded:
            return  # the next load sees it
        host = _plugins.get_plugin_host()
        got = _collect(host, info)
        if got is None:
            return
        info.providers = [(s.kind, s.name) for s in got]
        _registry = Registry(
            [*_registry.all_specs, *got], plugins=host.infos, allow_list=host.allow_list
        )


def current_registry() -> Registry | None:
    """The loaded registry, or None when it has not loaded (loads nothing)."""
    return _registry


def restore(saved: Registry | None) -> None:
    """Put back a registry returned earlier by :func:`current_registry`."""
    global _registry
    with _lock:
        _registry = saved


def get_provider(kind: ProviderKind, name: str) -> ProviderSpec[Any]:
    """The provider ``name`` of ``kind``.

    Raises ProviderNotFoundError (listing what is installed, and what is installed but
    blocked or broken) or ProviderConflictError (naming every plugin that registers it).
    """
    return get_registry().lookup(kind, name)


def get_embedder(name: str) -> ProviderSpec[Embedder]:
    return cast("ProviderSpec[Embedder]", get_provider("embedder", name))


def get_reranker(name: str) -> ProviderSpec[Reranker]:
    return cast("ProviderSpec[Reranker]", get_provider("reranker", name))


def get_vector_store(name: str) -> ProviderSpec[VectorStore]:
    return cast("ProviderSpec[VectorStore]", get_provider("vector_store", name))


def get_llm(name: str) -> ProviderSpec[LLM]:
    return cast("ProviderSpec[LLM]", get_provider("llm", name))


def list_providers(kind: ProviderKind) -> list[ProviderSpec[Any]]:
    """Every provider of ``kind`` that can be looked up, sorted by name (names registered
    by several plugins are left out: see :func:`list_conflicts`)."""
    specs = get_registry().specs[kind]
    return [specs[n] for n in sorted(specs)]


def list_conflicts(kind: ProviderKind) -> dict[str, list[ProviderSpec[Any]]]:
    """The names of ``kind`` registered by several plugins, with every registration."""
    conflicts = get_registry().conflicts[kind]
    return {n: list(conflicts[n]) for n in sorted(conflicts)}


__all__ = [
    "KINDS",
    "KIND_LABEL",
    "KNOWN_DISTRIBUTIONS",
    "KindSpec",
    "ProviderConflictError",
    "ProviderRegistrar",
    "ProviderSpec",
    "Registry",
    "conflict_message",
    "current_registry",
    "forget",
    "get_embedder",
    "get_llm",
    "get_provider",
    "get_registry",
    "get_reranker",
    "get_vector_store",
    "include",
    "list_conflicts",
    "list_providers",
    "restore",
]
