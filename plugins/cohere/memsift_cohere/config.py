"""The config of the ``cohere`` reranker."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr, field_validator, model_validator

from memsift import RerankerConfig, env_secret, require_secret

#: Where the API key is read from when the config does not give it, first set wins.
API_KEY_ENV: tuple[str, ...] = ("CO_API_KEY", "COHERE_API_KEY")
#: Where the base URL is read from when the config does not give it.
BASE_URL_ENV = "CO_API_URL"
DEFAULT_MODEL = "rerank-v3.5"


def _base_url_from_env() -> str | None:
    return os.environ.get(BASE_URL_ENV) or None


class CohereConfig(RerankerConfig):
    """Config of the ``cohere`` reranker (Cohere's v2 rerank API).

    Besides the pipeline options every reranker has (``top_k``: the candidate pool, i.e.
    how many documents each search sends; ``timeout``; ``on_error``; ``cache_size``), it
    takes the options of the API and its SDK. The score cache is on by default
    (1024 entries): a repeated query does not pay twice.
    """

    model: str = Field(
        default=DEFAULT_MODEL, min_length=1, description="rerank model, e.g. rerank-v3.5"
    )
    api_key: SecretStr | None = Field(
        default_factory=env_secret(*API_KEY_ENV),
        description="API key (default: $CO_API_KEY, else $COHERE_API_KEY)",
    )
    base_url: str | None = Field(
        default_factory=_base_url_from_env,
        description="API base URL (default: $CO_API_URL, else the SDK's https://api.cohere.com)",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="retries on 429, 408, 409, 5xx and connection errors, within `timeout` "
        "(a Retry-After is honoured only when it fits in the time left)",
    )
    max_tokens_per_doc: int | None = Field(
        default=None, ge=1, description="truncate each document to this many tokens (API: 4096)"
    )
    return_documents: bool | None = Field(
        default=None,
        description="accepted for compatibility; changes nothing (results carry the memory text)",
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
    def _require_api_key(self) -> CohereConfig:
        key = require_secret(self.api_key, "api_key", API_KEY_ENV).get_secret_value()
        if not key.strip("*"):
            raise ValueError(
                "api_key is a masked placeholder (as a dumped config shows it); give the real key"
            )
        return self
