"""Helpers for provider plugins that run a model in this process (torch-based plugins).

:class:`ModelCache` loads each model once per process and shares it between provider
instances. :func:`resolve_device` and :func:`logits_to_scores` need torch; torch is not a
dependency of memsift, so they import it when called, and only a plugin that depends on
torch calls them. Importing this module never imports torch.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from memsift.errors import ConfigError

T = TypeVar("T")

#: The device values a config accepts (a pydantic ``Field(pattern=...)``).
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"
_DEVICE_RE = re.compile(DEVICE_PATTERN)


class ModelCache:
    """Models loaded once per process per key, shared by every provider instance.

    ``get(key, build)`` returns the cached value or calls ``build()`` exactly once per key,
    even when several threads ask at the same time; different keys build in parallel.
    ``loads`` counts the builds (tests use it to check that a model is loaded once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, Any] = {}
        self._building: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                found: T = self._values[key]
                return found
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._values:
                    found = self._values[key]
                    return found
            value = build()
            with self._lock:
                self._values[key] = value
                self._building.pop(key, None)
                self.loads += 1
            return value

    def discard(self, value: object) -> None:
        """Forget the entries holding ``value`` (e.g. a model loaded for a benchmark)."""
        with self._lock:
            for key in [k for k, v in self._values.items() if v is value]:
                del self._values[key]

    def clear(self) -> None:
        """Forget every model; instances that hold one keep it until they are dropped."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


def import_torch(missing: str) -> Any:
    """Import torch, or raise ``ConfigError(missing)``: say there how to install it."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise ConfigError(missing) from exc


def resolve_device(device: str, *, missing: str) -> str:
    """Turn ``auto`` into ``cuda``, ``mps`` or ``cpu``; check that an explicit device exists.

    Imports torch (``missing`` is the error when it is not installed).
    """
    if not _DEVICE_RE.match(device):
        raise ConfigError(f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    torch = import_torch(missing)
    cuda_ok = bool(torch.cuda.is_available())
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda_ok else ("mps" if mps_ok else "cpu")
    if device.startswith("cuda"):
        if not cuda_ok:
            raise ConfigError(
                f"device={device!r} but CUDA is not available to torch {torch.__version__} "
                "(a CPU build, or no GPU): use device='cpu' or 'auto'"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device!r} but torch sees only {torch.cuda.device_count()} CUDA device(s)"
            )
    if device == "mps" and not mps_ok:
        raise ConfigError("device='mps' but Apple's MPS backend is not available: use 'auto'")
    return device


def logits_to_scores(logits: Any, *, normalize: bool) -> list[float]:
    """One Python float per element of the tensor ``logits``; their sigmoid when ``normalize``."""
    torch = importlib.import_module("torch")  # a tensor was given: torch is installed
    values = logits.detach().reshape(-1).to("cpu", dtype=torch.float64)
    if normalize:
        values = values.sigmoid()
    return [float(v) for v in values.tolist()]


__all__ = [
    "DEVICE_PATTERN",
    "ModelCache",
    "import_torch",
    "logits_to_scores",
    "resolve_device",
]
