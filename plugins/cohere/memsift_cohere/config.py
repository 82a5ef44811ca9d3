"""The config of the ``cohere`` reranker."""

from __future__ import annotations

from pydantic import Field, SecretStr

from memsift import env_secret
from memsift.kit.hosted import HostedRerankerConfig, env_default

#: Where the API key is read from when the config does not give it, first set wins.
API_KEY_ENV: tuple[str, ...] = ("CO_API_KEY", "COHERE_API_KEY")
#: Where the base URL is read from when the config does not give it.
BASE_URL_ENV = "CO_API_URL"
DEFAULT_MODEL = "rerank-v3.5"


class CohereConfig(HostedRerankerConfig):
    """Config of the ``cohere`` reranker (Cohere's v2 rerank API): the pipeline options,
    the key, base URL, retries and score cache of
    :class:`memsift.kit.hosted.HostedRerankerConfig`, and the options of the API and its SDK.
    """

    api_key_env = API_KEY_ENV

    model: str = Field(
        default=DEFAULT_MODEL, min_length=1, description="rerank model, e.g. rerank-v3.5"
    )
    api_key: SecretStr | None = Field(
        default_factory=env_secret(*API_KEY_ENV),
        description="API key (default: $CO_API_KEY, else $COHERE_API_KEY)",
    )
    base_url: str | None = Field(
        default_factory=env_default(BASE_URL_ENV),
        description="API base URL (default: $CO_API_URL, else the SDK's https://api.cohere.com)",
    )
    max_tokens_per_doc: int | None = Field(
        default=None, ge=1, description="truncate each document to this many tokens (API: 4096)"
    )
    return_documents: bool | None = Field(
        default=None,
        description="accepted for compatibility; changes nothing (results carry the memory text)",
    )
