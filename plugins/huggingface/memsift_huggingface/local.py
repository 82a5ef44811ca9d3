"""The local mode: ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` in this process.

A (query, document) pair is encoded jointly, truncated to ``max_length`` tokens (longest
side first), and the model's single logit is its relevance. Pairs are sorted by length and
run ``batch_size`` at a time, so a pool up to ``batch_size`` is one forward pass, under
``torch.inference_mode()``. The tokenizer and model load once per process per (model,
device, dtype, revision, trust_remote_code, cache_dir) and are shared by every reranker;
a lock serialises tokenisation and forward pass on one model (fast tokenizers are not safe
to call from several threads at once).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from memsift import ConfigError, ModelNotFoundError
from memsift.providers import clean_error
from memsift_huggingface.config import HuggingFaceRerankerConfig
from memsift_huggingface.runtime import INSTALL_HINT, MODEL_CACHE, import_torch, resolve_device


@dataclass
class LocalModel:
    """A loaded tokenizer and sequence-classification model, with their lock."""

    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    model: Any  # transformers.PreTrainedModel
    device: str
    positions: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def logits(self, query: str, documents: list[str], *, batch_size: int, max_length: int) -> Any:
        """The model's logits for ``(query, doc)`` pairs: a 1-d float32 CPU tensor, in order."""
        torch = import_torch()
        order = sorted(range(len(documents)), key=lambda i: -len(documents[i]))
        out = torch.empty(len(documents), dtype=torch.float32)
        with self.lock, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [query] * len(idx),
                    [documents[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                logits = self.model(**batch).logits
                out[torch.tensor(idx)] = logits[:, 0].float().cpu()
        return out


def load_local_model(config: HuggingFaceRerankerConfig) -> LocalModel:
    """The shared local model for ``config`` (loaded on first use, then cached)."""
    device = resolve_device(config.device)
    key = (
        "sequence-classification",
        config.model_id,
        device,
        config.torch_dtype,
        config.revision,
        config.trust_remote_code,
        config.cache_dir,
    )
    model = MODEL_CACHE.get(key, lambda: _build(config, device))
    if model.positions is not None and config.max_length > model.positions:
        raise ConfigError(
            f"max_length={config.max_length} exceeds the {model.positions} positions of model "
            f"{config.model_id!r}: set max_length to at most {model.positions}"
        )
    return model


def _build(config: HuggingFaceRerankerConfig, device: str) -> LocalModel:
    torch = import_torch()
    try:
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            f"the local mode of the huggingface reranker needs transformers: {INSTALL_HINT}"
        ) from exc
    common: dict[str, Any] = {
        "revision": config.revision,
        "trust_remote_code": config.trust_remote_code,
        "local_files_only": config.local_files_only,
        "cache_dir": config.cache_dir,
        "token": config.token.get_secret_value() if config.token is not None else None,
    }
    dtype = (
        config.torch_dtype if config.torch_dtype == "auto" else getattr(torch, config.torch_dtype)
    )
    # transformers 4.56 renamed torch_dtype to dtype; the old name still works but warns.
    dtype_arg = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
    failure: ModelNotFoundError | None = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model_id, **common)
        model = AutoModelForSequenceClassification.from_pretrained(
            config.model_id, **common, **{dtype_arg: dtype}
        )
    except Exception as exc:
        where = "local files only" if config.local_files_only else "folder, hub cache or hub"
        failure = ModelNotFoundError(
            f"cannot load model {config.model_id!r} ({where}): {type(exc).__name__}: {exc}. "
            "Give a folder holding the model, or a hub id that is in the cache (download it "
            "once with network access, or set cache_dir to where it is); with "
            "HF_HUB_OFFLINE=1 or local_files_only=True nothing is downloaded."
        )
    if failure is not None:
        # raised outside the except block and cut from the hub's error, which holds the
        # request with the token in its headers
        raise clean_error(failure, config.token)
    num_labels = int(getattr(model.config, "num_labels", 1))
    if num_labels != 1:
        raise ConfigError(
            f"model {config.model_id!r} has {num_labels} output labels; the huggingface "
            "reranker needs a cross-encoder with one relevance logit (num_labels=1)"
        )
    model.to(device)
    model.eval()
    positions = getattr(model.config, "max_position_embeddings", None)
    return LocalModel(
        tokenizer=tokenizer,
        model=model,
        device=device,
        positions=positions if isinstance(positions, int) and positions > 0 else None,
    )


def _version(text: str) -> tuple[int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in text.split(".")[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0)


__all__ = ["LocalModel", "load_local_model"]
