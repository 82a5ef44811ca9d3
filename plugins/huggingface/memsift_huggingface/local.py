"""The local mode: ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` in this process.

A (query, document) pair is encoded jointly, truncated to ``max_length`` tokens (longest
side first), and the model's single logit is its relevance. The pairs are encoded once,
sorted by token length and run ``batch_size`` at a time (each batch padded to its own
longest pair), so a pool up to ``batch_size`` is one forward pass, under
``torch.inference_mode()``. With ``backend: onnx`` (optionally ``quantize: int8``) or
``backend: openvino`` an ONNX export of the model runs instead of torch, cached in
``export_dir`` (:mod:`memsift.kit.local_onnx`). The tokenizer and model load once per
process per (model, device, dtype, revision, trust_remote_code, cache_dir, backend,
quantize, export_dir) and are shared by every reranker;
a lock serialises tokenisation and forward pass on one model (fast tokenizers are not safe
to call from several threads at once). Device, cache, lock, batching and the sigmoid come
from :mod:`memsift.kit.local`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsift import ConfigError
from memsift.kit.local import (
    LoadedModel,
    LocalReranker,
    check_max_length,
    check_one_label,
    encoded_batches,
    load_pretrained,
)
from memsift.kit.local_onnx import export_folder, load_backend_cross_encoder
from memsift_huggingface.config import HuggingFaceRerankerConfig
from memsift_huggingface.runtime import INSTALL_HINT, RUNTIME

PROVIDER = "huggingface"
#: How to install what each backend needs.
BACKEND_HINTS = {
    "onnx": 'the onnx backend needs onnx and onnxruntime: pip install "memsift-huggingface[onnx]"',
    "openvino": "the openvino backend needs onnx and openvino: "
    'pip install "memsift-huggingface[openvino]"',
}


@dataclass
class LocalModel(LoadedModel):
    """A loaded sequence-classification model with its tokenizer."""

    tokenizer: Any  # transformers.PreTrainedTokenizerBase


class LocalHuggingFaceReranker(LocalReranker[LocalModel]):
    """The local mode of the ``huggingface`` reranker."""

    config: HuggingFaceRerankerConfig
    provider = PROVIDER

    @property
    def model_name(self) -> str:
        return self.config.model_id

    def _load(self) -> LocalModel:
        cfg = self.config
        key = (
            "sequence-classification",
            cfg.model_id,
            cfg.torch_dtype,
            cfg.revision,
            cfg.trust_remote_code,
            cfg.cache_dir,
            cfg.backend,
            cfg.quantize,
            cfg.export_dir,
        )
        device = "cpu" if cfg.backend != "torch" else cfg.device
        loaded = RUNTIME.load(device, key, self._build)
        check_max_length(cfg.max_length, loaded.model, name=cfg.model_id)
        return loaded

    @property
    def backend(self) -> str:
        """What runs the model: ``torch``, ``onnx`` or ``openvino``."""
        return self.config.backend

    def _build(self, device: str) -> LocalModel:
        cfg = self.config
        if cfg.backend == "torch":
            tokenizer, model = self._pretrained(device)
            return LocalModel(model=model, device=device, tokenizer=tokenizer)
        folder = export_folder(
            cfg.model_id, revision=cfg.revision, cache=cfg.cache_dir, root=cfg.export_dir
        )

        def for_export() -> tuple[Any, Any]:
            tokenizer, model = self._pretrained("cpu")
            return model, tokenizer

        runner = load_backend_cross_encoder(
            folder,
            backend=cfg.backend,
            quantize=cfg.quantize,
            build=for_export,
            hint=BACKEND_HINTS[cfg.backend],
        )
        check_one_label(int(runner.config.num_labels), model=cfg.model_id, provider=PROVIDER)
        return LocalModel(model=runner, device=device, tokenizer=runner.tokenizer)

    def _pretrained(self, device: str) -> tuple[Any, Any]:
        """The transformers tokenizer and model (torch), on ``device``, checked."""
        cfg = self.config
        torch = RUNTIME.import_torch()
        try:
            import transformers
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            raise ConfigError(
                f"the local mode of the huggingface reranker needs transformers: {INSTALL_HINT}"
            ) from exc
        common: dict[str, Any] = {
            "revision": cfg.revision,
            "trust_remote_code": cfg.trust_remote_code,
            "local_files_only": cfg.local_files_only,
            "cache_dir": cfg.cache_dir,
            "token": cfg.token.get_secret_value() if cfg.token is not None else None,
        }
        dtype = cfg.torch_dtype if cfg.torch_dtype == "auto" else getattr(torch, cfg.torch_dtype)
        # transformers 4.56 renamed torch_dtype to dtype; the old name still works but warns.
        dtype_arg = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"

        def load() -> tuple[Any, Any]:
            tokenizer = AutoTokenizer.from_pretrained(cfg.model_id, **common)
            model = AutoModelForSequenceClassification.from_pretrained(
                cfg.model_id, **common, **{dtype_arg: dtype}
            )
            return tokenizer, model

        tokenizer, model = load_pretrained(
            load,
            model=cfg.model_id,
            local_files_only=cfg.local_files_only,
            cache_option="cache_dir",
            token=cfg.token,
        )
        num_labels = int(getattr(model.config, "num_labels", 1))
        check_one_label(num_labels, model=cfg.model_id, provider=PROVIDER)
        model.to(device)
        model.eval()
        return tokenizer, model

    def _logits(self, query: str, documents: list[str]) -> Any:
        loaded = self._loaded
        cfg = self.config
        if cfg.backend != "torch":
            with loaded.lock:
                return loaded.model.logits(
                    query, documents, max_length=cfg.max_length, batch_size=cfg.batch_size
                )
        with RUNTIME.inference(loaded) as torch:
            out = torch.empty(len(documents), dtype=torch.float32)
            for indices, batch in encoded_batches(
                loaded.tokenizer,
                query,
                documents,
                max_length=cfg.max_length,
                batch_size=cfg.batch_size,
                tensors="pt",
            ):
                batch = {k: v.to(loaded.device) for k, v in batch.items()}
                logits = loaded.model(**batch).logits[:, 0]
                out[torch.tensor(indices)] = logits.float().cpu()
            return out


def _version(text: str) -> tuple[int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in text.split(".")[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0)


__all__ = ["LocalHuggingFaceReranker", "LocalModel"]
