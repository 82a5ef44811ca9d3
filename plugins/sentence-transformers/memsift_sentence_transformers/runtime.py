"""What both providers share: device choice, the process-wide model cache, score helpers.

Nothing here imports torch at module level: importing the package stays cheap, and torch
is imported the first time a provider is built.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from memsift import ConfigError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"
_DEVICE_RE = re.compile(DEVICE_PATTERN)

INSTALL_HINT = (
    "pip install memsift-sentence-transformers (for the CPU build of torch, install it first: "
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
)


def import_torch() -> Any:
    """Import torch, or raise a ConfigError that says how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ConfigError(f"the sentence_transformer providers need torch: {INSTALL_HINT}") from exc
    return torch


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda``, ``mps`` or ``cpu``; check that an explicit device exists."""
    if not _DEVICE_RE.match(device):
        raise ConfigError(f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    torch = import_torch()
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


def position_limit(module: Any) -> int | None:
    """The token positions of the transformers model inside ``module``, when it says."""
    inner = getattr(module, "auto_model", None) or getattr(module, "model", None)
    value = getattr(getattr(inner, "config", None), "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def to_scores(logits: torch.Tensor, *, normalize: bool) -> list[float]:
    """One Python float per row of ``logits``; the sigmoid of each when ``normalize``."""
    torch = import_torch()
    values = logits.detach().reshape(-1).to("cpu", dtype=torch.float64)
    if normalize:
        values = values.sigmoid()
    return [float(v) for v in values.tolist()]


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


#: The cache of this package's models (cross-encoders and sentence embedders).
MODEL_CACHE = ModelCache()


def clear_model_cache() -> None:
    """Drop the process-wide cache of loaded models (frees memory once no provider uses them)."""
    MODEL_CACHE.clear()


__all__ = [
    "DEVICE_PATTERN",
    "MODEL_CACHE",
    "ModelCache",
    "clear_model_cache",
    "import_torch",
    "position_limit",
    "resolve_device",
    "to_scores",
]
