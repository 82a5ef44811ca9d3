"""The config of the ``zero_entropy`` reranker."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from memsift import env_secret
from memsift.kit.hosted import HostedRerankerConfig, env_default

#: Where the API key is read from when the config does not give it, first set wins.
API_KEY_ENV: tuple[str, ...] = ("ZEROENTROPY_API_KEY", "ZERO_ENTROPY_API_KEY")
#: Where the base URL is read from when the config does not give it.
BASE_URL_ENV = "ZEROENTROPY_BASE_URL"

#: The rerank models the API serves.
ZeroEntropyModel = Literal["zerank-2", "zerank-1", "zerank-1-small"]
DEFAULT_MODEL: ZeroEntropyModel = "zerank-2"


class ZeroEntropyConfig(HostedRerankerConfig):
    """Config of the ``zero_entropy`` reranker (ZeroEntropy's ``/v1/models/rerank``): the
    pipeline options, the key, base URL, retries and score cache of
    :class:`memsift.kit.hosted.HostedRerankerConfig`, and the options of the API and its SDK.
    """

    api_key_env = API_KEY_ENV

    model: ZeroEntropyModel = Field(
        default=DEFAULT_MODEL, description="rerank model: zerank-2, zerank-1 or zerank-1-small"
    )
    api_key: SecretStr | None = Field(
        default_factory=env_secret(*API_KEY_ENV),
        description="API key (default: $ZEROENTROPY_API_KEY, else $ZERO_ENTROPY_API_KEY)",
    )
    base_url: str | None = Field(
        default_factory=env_default(BASE_URL_ENV),
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
