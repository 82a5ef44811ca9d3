"""The ``sentence_transformer`` reranker: a local ``sentence_transformers.CrossEncoder``.

Each (query, document) pair goes through the model jointly; the model's single logit per
pair is the relevance, and with ``normalize`` (the default) its sigmoid is the score, in
[0, 1]. A pool is scored in one ``predict`` call (one forward pass per ``batch_size``
pairs) under ``torch.inference_mode()``. Pairs longer than ``max_length`` tokens are
truncated (longest side first), never rejected.

The model is loaded when the reranker is built, once per process per (model, device,
max_length, revision, trust_remote_code, cache_folder), and shared by every instance; a
lock serialises the forward passes on one model, so instances may be used from many threads.
Device, cache, lock, the sigmoid and the pipeline's rules come from :mod:`memsift.kit.local`.

``backend: onnx`` (optionally with ``quantize: int8``) or ``backend: openvino`` runs an ONNX
export of the same model instead of torch (:mod:`memsift.kit.local_onnx`): the CrossEncoder
is loaded with torch once to export it, the export is kept in ``export_dir`` and later loads
read it, and pairs are batched by token length. ``CrossEncoder.predict`` (the torch backend)
sorts pairs by length itself.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from memsift import ConfigError
from memsift.kit.local import (
    LoadedModel,
    LocalReranker,
    check_max_length,
    check_one_label,
    load_pretrained,
)
from memsift.kit.local_onnx import export_folder, load_backend_cross_encoder
from memsift_sentence_transformers.config import SentenceTransformerRerankerConfig
from memsift_sentence_transformers.runtime import INSTALL_HINT, RUNTIME

PROVIDER = "sentence_transformer"
#: How to install what each backend needs.
BACKEND_HINTS = {
    "onnx": "the onnx backend needs onnx and onnxruntime: "
    'pip install "memsift-sentence-transformers[onnx]"',
    "openvino": "the openvino backend needs onnx and openvino: "
    'pip install "memsift-sentence-transformers[openvino]"',
}


@dataclass
class LoadedCrossEncoder(LoadedModel):
    """A loaded CrossEncoder, and the name its ``predict`` gives the activation argument."""

    activation_arg: str


class SentenceTransformerReranker(LocalReranker[LoadedCrossEncoder]):
    """Scores documents with a local cross-encoder: sigmoid of its logit, in [0, 1].

    Building it loads the model (or takes it from the process-wide cache). ``rerank``
    returns one score per document in input order; with ``normalize=False`` it returns
    the raw logits instead, which only direct callers can use: the search pipeline then
    refuses with a clear error (and falls back to vector order).
    """

    config: SentenceTransformerRerankerConfig
    provider = PROVIDER

    def __init__(self, config: SentenceTransformerRerankerConfig | None = None) -> None:
        super().__init__(config if config is not None else SentenceTransformerRerankerConfig())

    def _load(self) -> LoadedCrossEncoder:
        cfg = self.config
        key = (
            "cross-encoder",
            cfg.model,
            cfg.max_length,
            cfg.revision,
            cfg.trust_remote_code,
            cfg.cache_folder,
            cfg.backend,
            cfg.quantize,
            cfg.export_dir,
        )
        device = "cpu" if cfg.backend != "torch" else cfg.device
        return RUNTIME.load(device, key, self._build)

    def _build(self, device: str) -> LoadedCrossEncoder:
        cfg = self.config
        if cfg.backend == "torch":
            model = self._cross_encoder(device)
        else:
            folder = export_folder(
                cfg.model, revision=cfg.revision, cache=cfg.cache_folder, root=cfg.export_dir
            )
            model = load_backend_cross_encoder(
                folder,
                backend=cfg.backend,
                quantize=cfg.quantize,
                build=self._for_export,
                hint=BACKEND_HINTS[cfg.backend],
            )
        num_labels = getattr(model, "num_labels", None) or model.config.num_labels
        check_one_label(int(num_labels), model=cfg.model, provider=PROVIDER)
        check_max_length(cfg.max_length, model, name=cfg.model)
        if cfg.backend != "torch":
            return LoadedCrossEncoder(model=model, device=device, activation_arg="")
        model.eval()
        params = inspect.signature(model.predict).parameters
        # sentence-transformers 4+ calls it activation_fn; 3.x called it activation_fct.
        activation_arg = "activation_fn" if "activation_fn" in params else "activation_fct"
        return LoadedCrossEncoder(model=model, device=device, activation_arg=activation_arg)

    def _for_export(self) -> tuple[Any, Any]:
        """The transformers model and tokenizer inside the CrossEncoder, for an export."""
        cross_encoder = self._cross_encoder("cpu")
        inner = getattr(cross_encoder, "transformers_model", None) or cross_encoder.model
        return inner, cross_encoder.tokenizer

    def _cross_encoder(self, device: str) -> Any:
        cfg = self.config
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise ConfigError(f"the sentence_transformer reranker needs {INSTALL_HINT}") from exc
        token = cfg.token.get_secret_value() if cfg.token is not None else None
        return load_pretrained(
            lambda: CrossEncoder(
                cfg.model,
                device=device,
                max_length=cfg.max_length,
                cache_folder=cfg.cache_folder,
                trust_remote_code=cfg.trust_remote_code,
                revision=cfg.revision,
                local_files_only=cfg.local_files_only,
                token=token,
            ),
            model=cfg.model,
            local_files_only=cfg.local_files_only,
            cache_option="cache_folder",
            token=token,
        )

    @property
    def backend(self) -> str:
        """What runs the model: ``torch``, ``onnx`` or ``openvino``."""
        return self.config.backend

    def _logits(self, query: str, documents: list[str]) -> Any:
        loaded = self._loaded
        if self.config.backend != "torch":
            with loaded.lock:
                return loaded.model.logits(
                    query,
                    documents,
                    max_length=self.config.max_length,
                    batch_size=self.config.batch_size,
                )
        pairs = [(query, doc) for doc in documents]
        with RUNTIME.inference(loaded) as torch:
            out = loaded.model.predict(
                pairs,
                batch_size=self.config.batch_size,
                show_progress_bar=self.config.show_progress_bar,
                convert_to_tensor=True,
                **{loaded.activation_arg: torch.nn.Identity()},
            )
        return out.reshape(len(pairs), -1)[:, 0]


__all__ = ["LoadedCrossEncoder", "SentenceTransformerReranker"]
