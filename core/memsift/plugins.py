"""The plugin manager: built-in plugin modules and entry-point plugins, loaded once, lazily.

Built-in providers are ordinary plugin modules (``DEFAULT_PLUGINS``) registered through the
same hooks as third-party ones. External plugins come from the ``memsift`` entry-point
group. ``MEMSIFT_LOAD_PLUGINS`` (a comma-separated list of distribution names) restricts
which external plugins load; an empty value loads none. A plugin that fails to import is
skipped with a :class:`PluginLoadWarning` naming its distribution and the error.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from memsift import hookspecs
from memsift.interfaces import ProviderKind

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "memsift"
LOAD_PLUGINS_ENV = "MEMSIFT_LOAD_PLUGINS"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "memsift.builtin.faiss_store",
    "memsift.builtin.minilm",
    "memsift.builtin.bm25",
)


class PluginLoadWarning(UserWarning):
    """An installed plugin could not be loaded and was skipped."""


@dataclass
class PluginInfo:
    """What is known of one plugin: where it comes from and whether it loaded."""

    name: str
    module: str
    builtin: bool
    version: str | None = None
    loaded: bool = False
    blocked: bool = False
    error: str | None = None
    providers: list[tuple[ProviderKind, str]] = field(default_factory=list)


def normalize_dist_name(name: str) -> str:
    """PEP 503 normalisation, so ``memsift_cohere`` and ``memsift-cohere`` are the same."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def allowed_plugins() -> set[str] | None:
    """The allow-list from ``MEMSIFT_LOAD_PLUGINS``, or None when unset (load all)."""
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {normalize_dist_name(p) for p in raw.split(",") if p.strip()}


class PluginHost:
    """Owns the pluggy manager and what was learnt while loading plugins."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._load_builtins()
        self._load_entry_points()

    def _load_builtins(self) -> None:
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.manager.register(module, name=module_name)
            self.infos[module_name] = PluginInfo(
                name=module_name, module=module_name, builtin=True, loaded=True
            )

    def _load_entry_points(self) -> None:
        allow = allowed_plugins()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.value):
            dist = ep.dist.name if ep.dist is not None else ep.name
            version = ep.dist.version if ep.dist is not None else None
            name = dist if dist not in self.infos else f"{dist}:{ep.name}"
            info = PluginInfo(name=name, module=ep.value, builtin=False, version=version)
            self.infos[name] = info
            if allow is not None and normalize_dist_name(dist) not in allow:
                info.blocked = True
                log.debug("plugin %s not loaded: not in %s", dist, LOAD_PLUGINS_ENV)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"memsift plugin {dist!r} failed to import and was skipped: {info.error}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            self.manager.register(plugin, name=name)
            info.loaded = True


_host: PluginHost | None = None
_lock = threading.RLock()


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    with _lock:
        if _host is None:
            _host = PluginHost()
        return _host


def get_plugin_manager() -> pluggy.PluginManager:
    return get_plugin_host().manager


def reload_plugins() -> None:
    """Forget loaded plugins; the next lookup loads them again (useful in tests)."""
    global _host
    from memsift import registry

    with _lock:
        _host = None
        registry.forget()
