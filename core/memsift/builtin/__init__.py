"""The built-in providers: ordinary plugin modules (see ``memsift.plugins.DEFAULT_PLUGINS``).

Each module registers its provider through a ``register_*`` hook like any third-party
plugin, and is loaded through the same guarded path. Loading a module registers a class
and a config model only: a heavy library (faiss, onnxruntime, tokenizers) is imported when
a provider is built and used, never when plugins load.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module that is imported on first attribute access.

    ``faiss: Any = lazy_module("faiss")`` at the top of a provider module keeps
    ``faiss.IndexFlat(...)`` in its methods as written, and imports faiss only when one of
    them first runs.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None
        self._lock = threading.Lock()

    def _load(self) -> ModuleType:
        with self._lock:
            if self._module is None:
                self._module = importlib.import_module(self._name)
            return self._module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)  # no import for copy/pickle/inspect probes
        module = self._module if self._module is not None else self._load()
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for the module ``name`` that imports it on first attribute access."""
    return LazyModule(name)


__all__ = ["LazyModule", "lazy_module"]
