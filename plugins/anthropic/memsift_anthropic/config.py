"""The config of the ``anthropic`` LLM."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr, field_validator, model_validator

from memsift import LLMConfig, env_secret, require_secret

#: Where the API key is read from when the config does not give it.
API_KEY_ENV: tuple[str, ...] = ("ANTHROPIC_API_KEY",)
#: Where the base URL is read from when the config does not give it.
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
#: The default model: the newest Sonnet the SDK's model list names.
DEFAULT_MODEL = "claude-sonnet-5-5"
#: The default of ``max_tokens`` (the Messages API requires one on every request).
DEFAULT_MAX_TOKENS = 1024
#: The default of ``max_retry_wait``, in seconds.
DEFAULT_MAX_RETRY_WAIT = 30.0


def _base_url_from_env() -> str | None:
    return os.environ.get(BASE_URL_ENV) or None


class AnthropicConfig(LLMConfig):
    """Config of the ``anthropic`` LLM (Anthropic's Messages API, official SDK).

    Retries are the SDK's own (429, 408, 409, 5xx, connection errors and timeouts, with
    exponential backoff from 0.5 s up to 8 s, or the server's Retry-After), except that a
    Retry-After longer than ``max_retry_wait`` is not waited for: the call fails at once
    with the server's status. A call therefore lasts at most about
    ``(max_retries + 1) * timeout + max_retries * max(max_retry_wait, 8)`` seconds.
    """

    model: str = Field(
        default=DEFAULT_MODEL, min_length=1, description=f"model id, e.g. {DEFAULT_MODEL}"
    )
    api_key: SecretStr | None = Field(
        default_factory=env_secret(*API_KEY_ENV),
        description="API key (default: $ANTHROPIC_API_KEY)",
    )
    base_url: str | None = Field(
        default_factory=_base_url_from_env,
        description="API base URL (default: $ANTHROPIC_BASE_URL, else https://api.anthropic.com)",
    )
    timeout: float = Field(
        default=60.0, gt=0, le=600, description="seconds one request attempt may take"
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="the SDK's retries on 429, 408, 409, 5xx, timeouts"
    )
    max_retry_wait: float = Field(
        default=DEFAULT_MAX_RETRY_WAIT,
        ge=0,
        le=600,
        description="longest Retry-After waited for; a longer one fails at once",
    )
    max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS, ge=1, description="most tokens an answer may have"
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="sampling temperature, for models that take one; None: never sent",
    )
    json_prefill: bool = Field(
        default=False,
        description="when a JSON object is asked for, prefill the answer with '{' "
        "(only on models that support prefill)",
    )
    structured_outputs: bool = Field(
        default=False,
        description="send json_schema formats as output_config.format (the API's "
        "structured outputs, on models that support them) instead of by instruction",
    )

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
    def _require_api_key(self) -> AnthropicConfig:
        key = require_secret(self.api_key, "api_key", API_KEY_ENV).get_secret_value()
        if not key.strip("*"):
            raise ValueError(
                "api_key is a masked placeholder (as a dumped config shows it); give the real key"
            )
        return self
