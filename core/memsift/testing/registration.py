"""Registering a plugin in-process, for tests: :func:`registered`.

A test that needs a provider (or an observer) which is not installed registers a module or
an object with ``@memsift.hookimpl`` functions for the duration of a ``with`` block, as if
it were an installed plugin, without touching the plugin manager::

    from memsift.testing import registered

    class MyPlugin:
        @memsift.hookimpl
        def register_rerankers(self, registry):
            registry.register("mine", MyReranker, MyRerankerConfig)

    def test_config_finds_mine():
        with registered(MyPlugin(), name="memsift-mine"):
            memsift.MemoryConfig.from_dict({"reranker": {"provider": "mine"}})
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from memsift import plugins, registry
from memsift.plugins import PluginInfo


@contextmanager
def registered(plugin: object, *, name: str | None = None) -> Iterator[PluginInfo]:
    """Register ``plugin`` with the plugin host for the duration of the block.

    ``plugin`` is a module or an object whose ``@memsift.hookimpl`` functions implement
    memsift hooks; ``name`` is its plugin name (default: the module's ``__name__``).
    The host (and the registry) load first if they have not. The plugin goes through the
    same guarded path as an installed one: one that is invalid or whose hook raises is
    skipped with a :class:`memsift.PluginLoadWarning` (``info.error`` says why). Its
    providers can be looked up by name inside the block, and a name it shares with
    another plugin is a conflict, as between installed plugins.

    Yields the plugin's :class:`~memsift.plugins.PluginInfo`. On exit the plugin is
    unregistered and the registry is put back exactly as it was (the same object: no
    other plugin's hook is called again). Blocks may nest. Raises ValueError when a
    plugin of that name is registered already.
    """
    with plugins.HOST_LOCK:
        host = plugins.get_plugin_host()
        before = registry.get_registry()
        providers = {n: list(i.providers) for n, i in host.infos.items()}
        info = host.register(plugin, name=name)
        registry.include(info)
    try:
        yield info
    finally:
        with plugins.HOST_LOCK:
            host.unregister(info.name)
            if plugins.current_plugin_host() is host:
                for other, kept in providers.items():
                    if other in host.infos:
                        host.infos[other].providers = kept
                registry.restore(before)


__all__ = ["registered"]
