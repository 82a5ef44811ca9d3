"""The hook specifications plugins implement.

A plugin is a module (or object) with functions marked ``@memsift.hookimpl`` whose names
are the hooks below. It is found through the ``memsift`` entry-point group. The four
``register_*`` hooks each receive a typed :class:`~memsift.registrar.ProviderRegistrar`
(``ProviderRegistrar[Reranker]`` for ``register_rerankers``, ...); a plugin calls
``registry.register(name, ProviderClass, ConfigModel, description=...)`` once per
provider. Every implementation is called (none stops the others); what they register is
validated by the core, once, when plugins load.

A hook implementation whose arguments are not the hookspec's, or whose name is no hook
here, makes the host skip the whole plugin with a :class:`~memsift.plugins.PluginLoadWarning`;
so does a ``register_*`` hook that raises or registers something invalid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from memsift.interfaces import LLM, Embedder, Reranker, VectorStore
    from memsift.registrar import ProviderRegistrar
    from memsift.search import SearchEvent

PROJECT_NAME = "memsift"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_embedders(registry: ProviderRegistrar[Embedder]) -> None:
    """Register embedders: ``registry.register(name, EmbedderSubclass, EmbedderConfigSubclass)``.

    Called once per process, when plugins first load; every implementation is called.
    """


@hookspec
def register_rerankers(registry: ProviderRegistrar[Reranker]) -> None:
    """Register rerankers: ``registry.register(name, RerankerSubclass, RerankerConfigSubclass)``.

    The config model subclasses :class:`memsift.RerankerConfig`, so the pipeline's options
    (``top_k``, ``timeout``, ``on_error``, ``cache_size``) are honoured.
    Called once per process, when plugins first load; every implementation is called.
    """


@hookspec
def register_vector_stores(registry: ProviderRegistrar[VectorStore]) -> None:
    """Register vector stores: ``registry.register(name, StoreSubclass, StoreConfigSubclass)``.

    Called once per process, when plugins first load; every implementation is called.
    """


@hookspec
def register_llms(registry: ProviderRegistrar[LLM]) -> None:
    """Register LLMs: ``registry.register(name, LLMSubclass, LLMConfigSubclass)``.

    Called once per process, when plugins first load; every implementation is called.
    """


@hookspec
def memsift_search_completed(event: SearchEvent) -> None:
    """Observe a finished search: its timings, candidate count and rerank outcome.

    Called after every search (sync and async) with a read-only :class:`SearchEvent`;
    every implementation is called, and its return value is ignored. An exception
    raised here is logged and never fails the search. Keep it fast: it runs inline.
    """
