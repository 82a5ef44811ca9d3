"""The ``cohere`` reranker: Cohere's hosted rerank API (v2) through the official SDK.

The search pipeline owns the candidate pool, the score cache, the overall timeout and the
fallback; this provider maps ``(query, documents)`` to Cohere's relevance scores, which
the API already gives in [0, 1]. Client lifecycle, batching, retries and error mapping
come from :class:`memsift.kit.hosted.HostedReranker`; this module says how Cohere's SDK is
built, called and read. The SDK's own retries are turned off (it sleeps up to 60 s per
retry, whatever the reranker's ``timeout``); the base retries 429, 408, 409, 5xx and
refused or reset connections, honouring Retry-After only while the wait fits in the rest of the
``timeout``. The SDK is imported when a reranker is built, never when the plugin loads.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsift import RerankError
from memsift.kit.hosted import (
    Failure,
    HostedReranker,
    error_message,
    retry_after,
    retryable_status,
)
from memsift_cohere.config import API_KEY_ENV, CohereConfig

if TYPE_CHECKING:
    import httpx
    from cohere import AsyncClientV2, ClientV2

log = logging.getLogger("memsift_cohere")

PROVIDER = "cohere"
#: Most documents sent in one request (Cohere advises against more per request); a
#: larger list is split into several requests, sent concurrently by ``arerank``.
MAX_DOCUMENTS_PER_REQUEST = 1000
#: The per-attempt request timeout when the config sets none (the SDK's own default).
DEFAULT_REQUEST_TIMEOUT = 300.0


@dataclass
class SyncClient:
    """The sync SDK client and the httpx client it sends through (what closing closes)."""

    sdk: ClientV2
    http: httpx.Client

    @property
    def is_closed(self) -> bool:
        return self.http.is_closed

    def close(self) -> None:
        self.http.close()


@dataclass
class AsyncClient:
    """The async SDK client and its httpx client."""

    sdk: AsyncClientV2
    http: httpx.AsyncClient

    @property
    def is_closed(self) -> bool:
        return self.http.is_closed

    async def aclose(self) -> None:
        await self.http.aclose()


class CohereReranker(HostedReranker[SyncClient, AsyncClient]):
    """Scores documents with Cohere's ``/v2/rerank`` (``ClientV2.rerank``)."""

    config: CohereConfig
    provider = PROVIDER
    key_env = API_KEY_ENV[0]
    auth_statuses = frozenset({401, 403, 498})

    def __init__(self, config: CohereConfig) -> None:
        timeout = config.timeout if config.timeout is not None else DEFAULT_REQUEST_TIMEOUT
        super().__init__(
            config, max_retries=config.max_retries, request_timeout=timeout, secret=config.api_key
        )
        # Load the SDK now, so the first search does not pay for the import inside its
        # timeout: `import cohere` is lazy, its clients' module (cohere.client_v2, about
        # 700 modules, half a second) loads on first use.
        importlib.import_module("cohere.client_v2")
        if config.return_documents is not None:
            log.info(
                "cohere: return_documents is accepted for compatibility and changes nothing; "
                "memsift results always carry the memory text"
            )

    # ------------------------------------------------------------------ the SDK

    def _max_documents(self) -> int:
        return MAX_DOCUMENTS_PER_REQUEST

    def _client_options(self) -> dict[str, Any]:
        return {
            "api_key": self._api_key(),
            "base_url": self.config.base_url,
            "client_name": "memsift",
            "timeout": self.request_timeout,
        }

    def _build_client(self) -> SyncClient:
        import httpx
        from cohere import ClientV2

        http = httpx.Client(timeout=self.request_timeout, follow_redirects=True)
        return SyncClient(ClientV2(**self._client_options(), httpx_client=http), http)

    def _build_async_client(self) -> AsyncClient:
        import httpx
        from cohere import AsyncClientV2

        http = httpx.AsyncClient(timeout=self.request_timeout, follow_redirects=True)
        return AsyncClient(AsyncClientV2(**self._client_options(), httpx_client=http), http)

    def _send(self, client: SyncClient, query: str, documents: list[str], timeout: float) -> Any:
        return client.sdk.rerank(**self._arguments(query, documents, timeout))

    async def _asend(
        self, client: AsyncClient, query: str, documents: list[str], timeout: float
    ) -> Any:
        return await client.sdk.rerank(**self._arguments(query, documents, timeout))

    def _arguments(self, query: str, batch: list[str], timeout: float) -> dict[str, Any]:
        cfg = self.config
        args: dict[str, Any] = {
            "model": cfg.model,
            "query": query,
            "documents": batch,
            "top_n": len(batch),
            # The SDK's retries are off (the base retries within the budget); set per
            # request, because older SDKs take retries only here.
            "request_options": {"max_retries": 0, "timeout_in_seconds": timeout},
        }
        if cfg.max_tokens_per_doc is not None:
            args["max_tokens_per_doc"] = cfg.max_tokens_per_doc
        return args

    def _failure(self, exc: Exception) -> Failure:
        """Translate an SDK or transport error, and say whether a retry may help.

        The SDK's exception is not chained to the error: it holds the unscrubbed body.
        """
        import httpx

        status: int | None = None
        retry = False
        asked: float | None = None
        if isinstance(exc, httpx.TimeoutException):
            message = f"no answer within the request timeout of {self.request_timeout:g} s"
        elif isinstance(exc, httpx.HTTPError):
            message = f"could not reach the API: {type(exc).__name__}: {exc}"
            # a refused or reset connection, or one closed before the answer: a rerank
            # is read-only, so sending it again is safe
            retry = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
        elif hasattr(exc, "status_code") and hasattr(exc, "body"):  # cohere's ApiError
            status = exc.status_code if isinstance(exc.status_code, int) else None
            if status is not None and 200 <= status < 300:  # a success the SDK cannot parse
                status = None
                message = "malformed response: the body is not a valid rerank answer"
            else:
                message = error_message(exc.body) or "request failed"
                retry = retryable_status(status)
                headers = getattr(exc, "headers", None)
                asked = retry_after(headers) if isinstance(headers, dict) else None
        else:
            message = f"{type(exc).__name__}: {exc}"
        return Failure(
            RerankError(PROVIDER, message, status=status), retry=retry, retry_after=asked
        )
