"""The configs of the ``openai`` LLM and the ``openai`` embedder.

Both talk to OpenAI's API or to any OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM
Studio, ...) through the official SDK, and share the connection options of
:class:`OpenAIConnection`. The API key is required for OpenAI's own API (the default base
URL) and optional when ``base_url`` points at another server: a local server usually needs
none, and the SDK is then given a placeholder.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from memsift import EmbedderConfig, LLMConfig, ProviderConfig, env_secret

#: Where the API key is read from when the config does not give it.
API_KEY_ENV: tuple[str, ...] = ("OPENAI_API_KEY",)
#: Where the base URL, the organization and the project are read from by default.
BASE_URL_ENV = "OPENAI_BASE_URL"
ORGANIZATION_ENV = "OPENAI_ORG_ID"
PROJECT_ENV = "OPENAI_PROJECT_ID"
#: OpenAI's own API, used when no base URL is given.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_LLM_MODEL = "gpt-5-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
#: Seconds a request may take (each attempt), by default.
DEFAULT_TIMEOUT = 120.0
#: The longest Retry-After the SDK's retries wait for; a longer one fails at once (the SDK's
#: own cap is 2 minutes). As the ``anthropic`` plugin's default ``max_retry_wait``.
MAX_RETRY_WAIT = 30.0
#: The vectors' dimension of OpenAI's embedding models, known without a request.
KNOWN_DIMS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def takes_dimensions(model: str) -> bool:
    """Whether an OpenAI embedding model takes ``dimensions`` (the text-embedding-3 family)."""
    return model.startswith("text-embedding-3")


def _env(name: str) -> Any:
    def factory() -> str | None:
        return os.environ.get(name) or None

    return factory


def is_openai_url(url: str | None) -> bool:
    """Whether ``url`` is OpenAI's own API (None: the default base URL, which is)."""
    if url is None:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith(".api.openai.com")


class OpenAIConnection(ProviderConfig):
    """Where and how to reach the API: the options of the SDK's client."""

    api_key: SecretStr | None = Field(
        default_factory=env_secret(*API_KEY_ENV),
        description="API key (default: $OPENAI_API_KEY); optional when base_url is another server",
    )
    base_url: str | None = Field(
        default_factory=_env(BASE_URL_ENV),
        validation_alias=AliasChoices("base_url", "openai_base_url"),
        description="API base URL, e.g. http://127.0.0.1:8080/v1 (default: $OPENAI_BASE_URL, "
        "else https://api.openai.com/v1); also accepted as openai_base_url",
    )
    organization: str | None = Field(
        default_factory=_env(ORGANIZATION_ENV),
        description="OpenAI organization id (default: $OPENAI_ORG_ID)",
    )
    project: str | None = Field(
        default_factory=_env(PROJECT_ENV),
        description="OpenAI project id (default: $OPENAI_PROJECT_ID)",
    )
    timeout: float = Field(
        default=DEFAULT_TIMEOUT, gt=0, le=3600, description="seconds each request attempt may take"
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="the SDK's retries on 408, 409, 429, 5xx, timeouts and connection errors "
        "(with exponential backoff, honouring a Retry-After of up to 30 s; a longer one "
        "fails at once)",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {url!r}")
        return url

    @model_validator(mode="after")
    def _check_connection(self) -> OpenAIConnection:
        key = self.api_key.get_secret_value() if self.api_key is not None else ""
        if key and not key.strip("*"):
            raise ValueError(
                "api_key is a masked placeholder (as a dumped config shows it); give the real key"
            )
        if not key and is_openai_url(self.base_url):
            raise ValueError(
                "missing secret 'api_key': give it in the config or set the OPENAI_API_KEY "
                "environment variable (it may be left out only when base_url points at a "
                "server that needs none)"
            )
        return self


class Capabilities(BaseModel):
    """What the server can do, when you know better than detection: ``None`` = detect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    json_object: bool | None = Field(
        default=None, description="honours response_format json_object (None: detect)"
    )
    json_schema: bool | None = Field(
        default=None, description="honours response_format json_schema (None: detect)"
    )
    logprobs: bool | None = Field(
        default=None, description="returns token log-probabilities (None: detect)"
    )


class OpenAILLMConfig(OpenAIConnection, LLMConfig):
    """Config of the ``openai`` LLM (chat completions)."""

    model: str = Field(default=DEFAULT_LLM_MODEL, min_length=1, description="chat model")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="sampling temperature (None: the server's default)"
    )
    top_p: float | None = Field(default=None, gt=0, le=1, description="nucleus sampling")
    max_tokens: int | None = Field(
        default=None, ge=1, description="most tokens of an answer (None: the server's limit)"
    )
    capabilities: Capabilities = Field(
        default_factory=Capabilities, description="capability overrides; None = detect"
    )


class OpenAIEmbedderConfig(OpenAIConnection, EmbedderConfig):
    """Config of the ``openai`` embedder (the embeddings endpoint)."""

    model: str = Field(default=DEFAULT_EMBEDDING_MODEL, min_length=1, description="embedding model")
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="shorter vectors from models that take it (text-embedding-3-*)",
    )
    embedding_model_dims: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        validation_alias=AliasChoices("embedding_model_dims", "embedding_dims"),
        description="the vectors' dimension as declared (mem0's key; also embedding_dims)",
    )
    batch_size: int = Field(
        default=2048, ge=1, le=2048, description="most inputs per request (the API takes 2048)"
    )
    max_input_tokens: int | None = Field(
        default=8191,
        ge=1,
        description="cut each input to this many UTF-8 bytes, which bounds its tokens (None: "
        "send inputs whole)",
    )
    max_request_tokens: int = Field(
        default=300_000,
        ge=1,
        description="most input tokens (counted as UTF-8 bytes) per request",
    )
    encoding_format: Literal["float", "base64"] | None = Field(
        default=None,
        description="how vectors travel (None: base64 from OpenAI, float from other servers)",
    )

    @model_validator(mode="after")
    def _check_dims(self) -> OpenAIEmbedderConfig:
        if (
            self.dimensions is not None
            and self.embedding_model_dims is not None
            and self.dimensions != self.embedding_model_dims
        ):
            raise ValueError(
                f"dimensions ({self.dimensions}) and embedding_model_dims "
                f"({self.embedding_model_dims}) disagree; give one of them"
            )
        wanted = self.dimensions if self.dimensions is not None else self.embedding_model_dims
        native = KNOWN_DIMS.get(self.model)
        if native is not None and wanted is not None:
            if wanted > native:
                raise ValueError(f"{self.model} gives at most {native} dimensions, not {wanted}")
            if wanted != native and not takes_dimensions(self.model):
                raise ValueError(
                    f"{self.model} gives {native}-dimensional vectors and does not take "
                    "`dimensions` (the text-embedding-3 models do)"
                )
        elif (
            self.dimensions is not None
            and is_openai_url(self.base_url)
            and not takes_dimensions(self.model)
        ):
            raise ValueError(
                f"OpenAI's {self.model} does not take `dimensions`: only the "
                "text-embedding-3 models do"
            )
        return self

    def request_dimensions(self) -> int | None:
        """The ``dimensions`` to send: the wanted size where it shortens a model's vectors
        (``dimensions``, or mem0's ``embedding_model_dims`` for a text-embedding-3 model),
        ``dimensions`` as given for a model this plugin does not know; None otherwise."""
        native = KNOWN_DIMS.get(self.model)
        if native is None:
            return self.dimensions
        wanted = self.dimensions if self.dimensions is not None else self.embedding_model_dims
        if wanted is None or wanted == native or not takes_dimensions(self.model):
            return None
        return wanted

    def expected_dims(self) -> int | None:
        """The vectors' dimension, when known without a request."""
        if self.dimensions is not None:
            return self.dimensions
        if self.embedding_model_dims is not None:
            return self.embedding_model_dims
        return KNOWN_DIMS.get(self.model)
