"""What both providers share: their torch import, device choice and model cache.

Nothing here imports torch at module level: importing the package stays cheap, and torch
is imported the first time a provider is built. The generic pieces come from
:mod:`memsift.models`.
"""

from __future__ import annotations

from typing import Any

from memsift import models
from memsift.models import ModelCache

INSTALL_HINT = (
    "pip install memsift-sentence-transformers (for the CPU build of torch, install it first: "
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
)
TORCH_MISSING = f"the sentence_transformer providers need torch: {INSTALL_HINT}"


def import_torch() -> Any:
    """Import torch, or raise a ConfigError that says how to install it."""
    return models.import_torch(TORCH_MISSING)


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda``, ``mps`` or ``cpu``; check that an explicit device exists."""
    return models.resolve_device(device, missing=TORCH_MISSING)


def position_limit(module: Any) -> int | None:
    """The token positions of the transformers model inside ``module``, when it says."""
    inner = getattr(module, "auto_model", None) or getattr(module, "model", None)
    value = getattr(getattr(inner, "config", None), "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


#: The cache of this package's models (cross-encoders and sentence embedders).
MODEL_CACHE = ModelCache()


def clear_model_cache() -> None:
    """Drop the process-wide cache of loaded models (frees memory once no provider uses them)."""
    MODEL_CACHE.clear()


__all__ = [
    "INSTALL_HINT",
    "MODEL_CACHE",
    "clear_model_cache",
    "import_torch",
    "position_limit",
    "resolve_device",
]
