"""The plugin host: built-in plugin modules and entry-point plugins, loaded once, lazily.

Built-in providers are ordinary plugin modules (``DEFAULT_PLUGINS``), loaded through the same
guarded path as third-party ones. External plugins come from the ``memsift`` entry-point
group. ``MEMSIFT_LOAD_PLUGINS`` (a comma-separated list of distribution names) restricts
which external plugins load; an empty value loads none; a name in it that is no installed
plugin distribution is warned about. Built-ins are always loaded.

Nothing a plugin does at load time crashes the host. An import error, a hook implementation
whose signature does not match its hookspec, a misspelt hook name, a plugin with no memsift
hook at all, and (when the registry calls them, see :mod:`memsift.registry`) a ``register_*``
hook that raises or registers something invalid: each is a :class:`PluginLoadWarning`
naming the distribution and the entry point, the error is recorded on the plugin's
:class:`PluginInfo`, and the plugin is skipped as a whole (unregistered: none of its hooks
runs). Every other plugin loads as usual.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from memsift import hookspecs
from memsift.interfaces import ProviderKind

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "memsift"
LOAD_PLUGINS_ENV = "MEMSIFT_LOAD_PLUGINS"
#: The built-in plugin modules, loaded (always, whatever ``MEMSIFT_LOAD_PLUGINS`` says)
#: through the same guarded path as entry-point plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "memsift.builtin.faiss",
    "memsift.builtin.minilm",
    "memsift.builtin.bm25",
)

#: Guards the host and the registry together (one lock, so the two never deadlock).
HOST_LOCK = threading.RLock()


class PluginLoadWarning(UserWarning):
    """An installed plugin could not be loaded and was skipped (or ``MEMSIFT_LOAD_PLUGINS``
    names a distribution that is not installed). The message names the distribution and
    the entry point; :attr:`PluginInfo.error` keeps the error."""


@dataclass
class PluginInfo:
    """What is known of one plugin: where it comes from and whether it loaded.

    ``name`` is the plugin's name in the host: the distribution name for an entry-point
    plugin (``dist:entry-point`` when one distribution has several), the module name for a
    built-in, the given name for a plugin registered in-process.
    """

    name: str
    module: str
    builtin: bool
    version: str | None = None
    loaded: bool = False
    blocked: bool = False
    error: str | None = None
    providers: list[tuple[ProviderKind, str]] = field(default_factory=list)
    distribution: str | None = None
    entry_point: str | None = None

    @property
    def label(self) -> str:
        """How messages name the plugin: ``memsift-a (entry point a)``."""
        if self.builtin:
            return f"{self.name} (built-in)"
        if self.entry_point is not None:
            return f"{self.distribution or self.name} (entry point {self.entry_point})"
        return f"{self.name} (registered in-process)"


def normalize_dist_name(name: str) -> str:
    """PEP 503 normalisation, so ``memsift_cohere`` and ``memsift-cohere`` are the same."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def allowed_plugins() -> set[str] | None:
    """The allow-list from ``MEMSIFT_LOAD_PLUGINS``, or None when unset (load all)."""
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {normalize_dist_name(p) for p in raw.split(",") if p.strip()}


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_one_line(str(exc))}"


_HOOK_NAMES: tuple[str, ...] = tuple(
    sorted(
        name
        for name, obj in vars(hookspecs).items()
        if callable(obj) and getattr(obj, f"{hookspecs.PROJECT_NAME}_spec", None) is not None
    )
)
_REGISTER_HOOKS = frozenset(name for name in _HOOK_NAMES if name.startswith("register_"))


def validate_plugin(plugin: object, name: str) -> None:
    """Check ``plugin`` against the hookspecs on its own, before the host registers it.

    Registers it alone in a scratch plugin manager, so pluggy's signature check and
    ``check_pending`` see only this plugin's hook implementations. Raises
    ``pluggy.PluginValidationError`` (or whatever the plugin object raises while it is
    inspected) with a message saying what is wrong.
    """
    if plugin is None:
        raise pluggy.PluginValidationError(plugin, "the plugin object is None")
    probe = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    probe.add_hookspecs(hookspecs)
    try:
        probe.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        hook = next((h for h in _HOOK_NAMES if f"for hook {h!r}" in str(exc)), None)
        hint = ""
        if hook is not None:
            spec = getattr(probe.hook, hook).spec
            hint = f" (the hookspec is {hook}({', '.join(spec.argnames)}))"
        raise pluggy.PluginValidationError(plugin, _one_line(str(exc)) + hint) from None
    callers = probe.get_hookcallers(plugin) or []
    unknown = sorted(
        c.name
        for c in callers
        if not c.has_spec() and any(not i.optionalhook for i in c.get_hookimpls())
    )
    if unknown:
        parts = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, _HOOK_NAMES, n=1)
            parts.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise pluggy.PluginValidationError(
            plugin,
            f"implements unknown hook {', '.join(parts)}; the memsift hooks are "
            f"{', '.join(_HOOK_NAMES)}",
        )
    for caller in callers:
        if caller.name in _REGISTER_HOOKS:
            for impl in caller.get_hookimpls():
                if impl.hookwrapper or impl.wrapper:
                    raise pluggy.PluginValidationError(
                        plugin, f"{caller.name} cannot be a hook wrapper"
                    )
    if not callers:
        unmarked = [h for h in _HOOK_NAMES if callable(getattr(plugin, h, None))]
        hint = (
            f": {', '.join(unmarked)} must be marked with @memsift.hookimpl"
            if unmarked
            else " (hook functions must be marked with @memsift.hookimpl)"
        )
        raise pluggy.PluginValidationError(plugin, "implements no memsift hook" + hint)
    probe.check_pending()  # what pluggy itself would refuse, for this plugin alone


class PluginHost:
    """Owns the pluggy manager and what was learnt while loading plugins."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: ``MEMSIFT_LOAD_PLUGINS`` as it was when the host loaded (None: unset).
        self.allow_list: str | None = os.environ.get(LOAD_PLUGINS_ENV)
        #: Names in the allow-list that are no installed plugin distribution.
        self.unknown_allowed: list[str] = []
        self._load_builtins()
        self._load_entry_points()

    # ------------------------------------------------------------------ loading

    def _load_builtins(self) -> None:
        for module_name in DEFAULT_PLUGINS:
            info = PluginInfo(name=module_name, module=module_name, builtin=True)
            self.infos[module_name] = info
            self._load(info, functools.partial(importlib.import_module, module_name))

    def _load_entry_points(self) -> None:
        allow = allowed_plugins()
        try:
            found = list(entry_points(group=ENTRY_POINT_GROUP))
        except Exception as exc:  # broken installed metadata
            warnings.warn(
                f"memsift could not list the installed plugins: {_describe(exc)}",
                PluginLoadWarning,
                stacklevel=2,
            )
            found = []
        found.sort(key=lambda e: (normalize_dist_name(_dist_name(e)), e.name))
        per_dist: dict[str, int] = {}
        for ep in found:
            per_dist[_dist_name(ep)] = per_dist.get(_dist_name(ep), 0) + 1
        for ep in found:
            dist = _dist_name(ep)
            name = dist if per_dist[dist] == 1 and dist not in self.infos else f"{dist}:{ep.name}"
            info = PluginInfo(
                name=name,
                module=ep.value,
                builtin=False,
                version=ep.dist.version if ep.dist is not None else None,
                distribution=dist,
                entry_point=ep.name,
            )
            self.infos[name] = info
            if allow is not None and normalize_dist_name(dist) not in allow:
                info.blocked = True
                log.debug("plugin %s not loaded: not in %s", info.label, LOAD_PLUGINS_ENV)
                continue
            self._load(info, ep.load)
        if allow is not None:
            self._check_allow_list(allow, sorted({_dist_name(ep) for ep in found}))

    def _check_allow_list(self, allow: set[str], installed: list[str]) -> None:
        known = {normalize_dist_name(d) for d in installed}
        for name in sorted(allow - known):
            self.unknown_allowed.append(name)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            warnings.warn(
                f"{LOAD_PLUGINS_ENV} names {name!r}, which is not an installed memsift plugin "
                f"distribution{hint}; installed plugin distributions: "
                f"{', '.join(installed) if installed else 'none'}",
                PluginLoadWarning,
                stacklevel=4,
            )

    def _load(self, info: PluginInfo, load: Callable[[], Any]) -> bool:
        """Import a plugin and register it; any failure is a warning and a skip."""
        try:
            plugin = load()
        except Exception as exc:
            self.skip(info, f"could not be imported from {info.module}", exc)
            return False
        return self.add(plugin, info)

    def add(self, plugin: object, info: PluginInfo) -> bool:
        """Validate and register an imported ``plugin`` under ``info.name``.

        A plugin that fails validation is warned about and skipped; returns whether it
        was registered.
        """
        self.infos.setdefault(info.name, info)
        try:
            validate_plugin(plugin, info.name)
            self.manager.register(plugin, name=info.name)
        except Exception as exc:
            self.skip(info, "is not a valid memsift plugin", exc)
            return False
        info.loaded = True
        return True

    def skip(self, info: PluginInfo, what: str, exc: BaseException) -> None:
        """Record that ``info``'s plugin failed (``what``), unregister it, and warn."""
        info.error = _describe(exc)
        info.loaded = False
        info.providers = []
        if self.manager.has_plugin(info.name):
            self.manager.unregister(name=info.name)
        warnings.warn(
            f"memsift plugin {info.label} {what} and was skipped: {info.error}",
            PluginLoadWarning,
            stacklevel=4,
        )

    def adopt_unrecorded(self) -> None:
        """Record plugins registered on :attr:`manager` directly (bypassing the host), so
        that the registry still calls their hooks through its guarded path. Prefer
        :func:`memsift.testing.registered`, which validates the plugin first."""
        for name, plugin in self.manager.list_name_plugin():
            if plugin is not None and name not in self.infos:
                module = getattr(plugin, "__name__", None) or type(plugin).__module__
                self.infos[name] = PluginInfo(
                    name=name, module=str(module), builtin=False, loaded=True
                )

    # ------------------------------------------------------------------ in-process

    def register(self, plugin: object, *, name: str | None = None) -> PluginInfo:
        """Register ``plugin`` (a module or an object with hook implementations) in-process,
        through the same guarded path as an installed one. Prefer
        :func:`memsift.testing.registered`, which also updates the registry and undoes it."""
        if name is None:
            name = self.manager.get_canonical_name(plugin)
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        info = PluginInfo(name=name, module=str(module), builtin=False)
        with HOST_LOCK:
            if name in self.infos or self.manager.has_plugin(name):
                raise ValueError(f"a memsift plugin named {name!r} is already registered")
            self.add(plugin, info)
        return info

    def unregister(self, name: str) -> None:
        """Forget the plugin ``name`` (registered in-process) entirely."""
        with HOST_LOCK:
            if self.manager.has_plugin(name):
                self.manager.unregister(name=name)
            self.infos.pop(name, None)


def _dist_name(ep: EntryPoint) -> str:
    dist = ep.dist
    return dist.name if dist is not None else ep.name


_host: PluginHost | None = None


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    with HOST_LOCK:
        if _host is None:
            _host = PluginHost()
        return _host


def current_plugin_host() -> PluginHost | None:
    """The plugin host if it has loaded, else None (loads nothing)."""
    return _host


def get_plugin_manager() -> pluggy.PluginManager:
    return get_plugin_host().manager


#: What :func:`reload_plugins` also resets: the layers that cache what they loaded from the
#: host (the registry) add theirs with :func:`on_reload`, so this module imports none of them.
_reload_listeners: list[Callable[[], None]] = []


def on_reload(listener: Callable[[], None]) -> None:
    """Call ``listener`` (under the host lock) each time :func:`reload_plugins` runs."""
    with HOST_LOCK:
        _reload_listeners.append(listener)


def reload_plugins() -> None:
    """Forget loaded plugins; the next lookup loads them again (useful in tests)."""
    global _host
    with HOST_LOCK:
        _host = None
        for listener in _reload_listeners:
            listener()
