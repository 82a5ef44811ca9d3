"""The config of the ``zero_entropy`` reranker."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from memsift import RerankerConfig, env_secret, require_secret

#: Where the API key is read from when the config does not give it, first set wins.
API_KEY_ENV: tuple[str, ...] = ("ZEROENTROPY_API_KEY", "ZERO_ENTROPY_API_KEY")
#: Where the base URL is read from when the config does not give it.
BASE_URL_ENV = "ZEROENTROPY_BASE_URL"

#: The rerank models the API serves.
ZeroEntropyModel = Literal["zerank-2", "zerank-1", "zerank-1-small"]
DEFAULT_MODEL: ZeroEntropyModel = "zerank-2"


def _base_url_from_env() -> str | None:
    return os.environ.get(BASE_URL_ENV) or None


class ZeroEntropyConfig(RerankerConfig):
    """Config of the ``zero_entropy`` reranker (ZeroEntropy's ``/v1/models/rerank``).

    Besides the pipeline options every reranker has (``top_k``: the candidate pool, i.e.
    how many documents each search sends; ``timeout``; ``on_error``; ``cache_size``), it
    takes the options of the API and its SDK. The score cache is on by default
    (1024 entries): a repeated query does not pay twice.
    """

    model: ZeroEntropyModel = Field(
        default=DEFAULT_MODEL, description="rerank model: zerank-2, zerank-1 or zerank-1-small"
    )
    api_key: SecretStr | None = Field(
        default_factory=env_secret(*API_KEY_ENV),
        description="API key (default: $ZEROENTROPY_API_KEY, else $ZERO_ENTROPY_API_KEY)",
    )
    base_url: str | None = Field(
        default_factory=_base_url_from_env,
        description=(
            "API base URL, including /v1 (default: $ZEROENTROPY_BASE_URL, else the SDK's "
            "https://api.zeroentropy.dev/v1)"
        ),
    )
    latency: Literal["fast", "slow"] | None = Field(
        default=None,
        description="'fast' (429 when over the fast rate limit) or 'slow'; unset: the API's "
        "choice (fast, then slow when over the limit)",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="retries on 429, 408, 409, 5xx and connection errors, within `timeout` "
        "(a Retry-After is honoured only when it fits in the time left)",
    )
    cache_size: int = Field(default=1024, ge=0, description="entries in the rerank-score cache")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _require_api_key(self) -> ZeroEntropyConfig:
        key = require_secret(self.api_key, "api_key", API_KEY_ENV).get_secret_value()
        if not key.strip("*"):
            raise ValueError(
                "api_key is a masked placeholder (as a dumped config shows it); give the real key"
            )
        return self
