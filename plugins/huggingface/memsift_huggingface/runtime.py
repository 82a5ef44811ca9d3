"""What the local mode needs around the model: its torch import, device and model cache.

Nothing here imports torch at module level: importing the package stays cheap (the remote
mode never needs torch), and torch is imported the first time a local model is built. The
generic pieces come from :mod:`memsift.models`.
"""

from __future__ import annotations

from typing import Any

from memsift import models
from memsift.models import ModelCache

INSTALL_HINT = (
    'pip install "memsift-huggingface[local]" (for the CPU build of torch, install it first: '
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
)
TORCH_MISSING = f"the local mode of the huggingface reranker needs torch: {INSTALL_HINT}"


def import_torch() -> Any:
    """Import torch, or raise a ConfigError that says how to install it."""
    return models.import_torch(TORCH_MISSING)


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda``, ``mps`` or ``cpu``; check that an explicit device exists."""
    return models.resolve_device(device, missing=TORCH_MISSING)


#: The cache of this package's local models (tokenizer and model per key).
MODEL_CACHE = ModelCache()


def clear_model_cache() -> None:
    """Drop the process-wide cache of loaded models (frees memory once no provider uses them)."""
    MODEL_CACHE.clear()


__all__ = [
    "INSTALL_HINT",
    "MODEL_CACHE",
    "clear_model_cache",
    "import_torch",
    "resolve_device",
]
