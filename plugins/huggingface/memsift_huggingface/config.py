"""The config model of the ``huggingface`` reranker and its two modes."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from memsift import RerankerConfig, env_secret
from memsift.kit.local import DEVICE_PATTERN
from memsift.kit.local_onnx import backend_problem

DEFAULT_MODEL = "BAAI/bge-reranker-base"
TOKEN_ENV = ("HF_TOKEN",)
#: Seconds each HTTP request may take when ``timeout`` is not set.
DEFAULT_HTTP_TIMEOUT = 30.0

#: Keys only the local mode uses, and keys only the remote mode uses.
LOCAL_KEYS = frozenset(
    {
        "model",
        "device",
        "max_length",
        "trust_remote_code",
        "local_files_only",
        "token",
        "revision",
        "torch_dtype",
        "cache_dir",
        "backend",
        "quantize",
        "export_dir",
    }
)
REMOTE_KEYS = frozenset({"endpoint_url", "api_key", "truncate", "max_retries", "backoff"})


class HuggingFaceRerankerConfig(RerankerConfig):
    """Config of the ``huggingface`` reranker.

    The mode follows from which of ``model`` and ``endpoint_url`` is given: ``endpoint_url``
    selects the remote mode (a Text Embeddings Inference server's ``/rerank`` route);
    otherwise the local mode runs ``model`` (default ``BAAI/bge-reranker-base``) in this
    process. Giving both, or a key of the other mode, is an error. ``batch_size``,
    ``normalize`` and the pipeline options (``top_k``, ``timeout``, ``on_error``,
    ``cache_size``) apply to both modes.
    """

    # ---- both modes
    batch_size: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="pairs per forward pass (local) or texts per request (remote)",
    )
    normalize: bool = Field(
        default=True,
        description=(
            "scores in [0, 1]: the sigmoid of the logits (local), raw_scores=false (remote); "
            "False returns raw logits, for calling rerank() directly only"
        ),
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description=(
            "seconds before the search falls back to vector order; in the remote mode also "
            f"the timeout of each HTTP request (default {DEFAULT_HTTP_TIMEOUT:g} s)"
        ),
    )

    # ---- local mode
    model: str | None = Field(
        default=None,
        min_length=1,
        description=f"local mode: a hub model id or a folder (default {DEFAULT_MODEL})",
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="local mode: cpu, cuda, cuda:N, mps, or auto (cuda, then mps, then cpu)",
    )
    max_length: int = Field(
        default=512,
        ge=8,
        le=8192,
        description="local mode: tokens per (query, document) pair; longer pairs are cut",
    )
    trust_remote_code: bool = Field(
        default=False, description="local mode: allow models that ship their own Python code"
    )
    local_files_only: bool = Field(
        default=False, description="local mode: never download; use folders and the hub cache"
    )
    token: SecretStr | None = Field(
        default_factory=env_secret(*TOKEN_ENV),
        description="local mode: Hugging Face token for gated models (default: $HF_TOKEN)",
    )
    revision: str | None = Field(
        default=None, description="local mode: branch, tag or commit of a hub model"
    )
    torch_dtype: Literal["float32", "float16", "bfloat16", "auto"] = Field(
        default="float32",
        description="local mode: weights dtype; auto takes the model's own",
    )
    cache_dir: str | None = Field(
        default=None, description="local mode: where downloads go (default: the HF hub cache)"
    )
    backend: Literal["torch", "onnx", "openvino"] = Field(
        default="torch",
        description=(
            "local mode: what runs the model: torch, or an ONNX export run by onnxruntime "
            "(onnx extra) or OpenVINO (openvino extra), on the CPU"
        ),
    )
    quantize: Literal["none", "int8"] = Field(
        default="none",
        description="local mode: int8 is onnxruntime's dynamic int8 quantisation (backend onnx)",
    )
    export_dir: str | None = Field(
        default=None,
        description="local mode: where ONNX / OpenVINO exports are kept "
        "(default: $MEMSIFT_HOME/exports)",
    )

    # ---- remote mode
    endpoint_url: str | None = Field(
        default=None,
        description="remote mode: base URL of a TEI server (or its /rerank URL)",
    )
    api_key: SecretStr | None = Field(
        default_factory=env_secret(*TOKEN_ENV),
        description="remote mode: sent as a Bearer token (default: $HF_TOKEN; none if unset)",
    )
    truncate: bool = Field(
        default=True, description="remote mode: ask the server to cut inputs over its limit"
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="remote mode: retries on 429, 502, 503, 504 and refused or reset connections",
    )
    backoff: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="remote mode: first retry delay in seconds, doubled each retry "
        "(a Retry-After header wins)",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("endpoint_url must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _check_mode(self) -> HuggingFaceRerankerConfig:
        if self.endpoint_url is not None and self.model is not None:
            raise ValueError(
                "give either model (run it locally) or endpoint_url (a remote TEI server), not both"
            )
        if self.endpoint_url is not None:
            wrong = self._set_keys(LOCAL_KEYS - {"model"})
            if wrong:
                raise ValueError(
                    f"{_names(wrong)} only for the local mode, but endpoint_url selects the "
                    "remote mode; remove them"
                )
        else:
            wrong = self._set_keys(REMOTE_KEYS)
            if wrong:
                raise ValueError(
                    f"{_names(wrong)} only for the remote mode, which endpoint_url selects; "
                    "set endpoint_url or remove them"
                )
            problem = backend_problem(self.backend, self.quantize, self.device)
            if problem is not None:
                raise ValueError(problem)
            if self.backend != "torch" and self.torch_dtype != "float32":
                raise ValueError(
                    f"torch_dtype={self.torch_dtype!r} is for backend 'torch'; backend "
                    f"{self.backend!r} runs float32 (or int8 with quantize)"
                )
            if self.backend == "torch" and self.export_dir is not None:
                raise ValueError("export_dir is only for backend 'onnx' or 'openvino'; remove it")
        return self

    def _set_keys(self, keys: frozenset[str]) -> list[str]:
        """The ``keys`` given explicitly with a value other than their default."""
        out = []
        for key in sorted(keys & self.model_fields_set):
            value = getattr(self, key)
            if isinstance(value, SecretStr) or value is None:
                changed = value is not None  # a secret's default comes from the environment
            else:
                changed = value != type(self).model_fields[key].default
            if changed:
                out.append(key)
        return out

    @property
    def mode(self) -> Literal["local", "remote"]:
        """``remote`` when ``endpoint_url`` is set, else ``local``."""
        return "remote" if self.endpoint_url is not None else "local"

    @property
    def model_id(self) -> str:
        """The local model to run (``model`` or the default)."""
        return self.model or DEFAULT_MODEL


def _names(keys: list[str]) -> str:
    return f"{keys[0]} is" if len(keys) == 1 else f"{', '.join(keys)} are"


__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_MODEL",
    "LOCAL_KEYS",
    "REMOTE_KEYS",
    "HuggingFaceRerankerConfig",
]
