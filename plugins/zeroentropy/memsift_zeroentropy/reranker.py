"""The ``zero_entropy`` reranker: ZeroEntropy's hosted rerank API through the official SDK.

The search pipeline owns the candidate pool, the score cache, the overall timeout and the
fallback; this provider maps ``(query, documents)`` to ZeroEntropy's relevance scores,
which the API gives in [0, 1]. Client lifecycle, batching, retries and error mapping come
from :class:`memsift.kit.hosted.HostedReranker`; this module says how the SDK is built,
called and read, and how the API counts a request's size. The SDK's own retries are turned
off (it sleeps for any Retry-After up to 60 s, whatever the reranker's ``timeout``); the
base retries 429, 408, 409, 5xx and connection errors, honouring Retry-After only while the
wait fits in the rest of the ``timeout``. The SDK is imported when a reranker is built,
never when the plugin loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memsift import RerankError
from memsift.kit.hosted import (
    Failure,
    HostedReranker,
    batches,
    error_message,
    retry_after,
    retryable_status,
)
from memsift_zeroentropy.config import API_KEY_ENV, ZeroEntropyConfig

if TYPE_CHECKING:
    from zeroentropy import AsyncZeroEntropy, ZeroEntropy

PROVIDER = "zero_entropy"
#: The API's limit on one request's size, counted as it counts it: for every document,
#: 150 bytes plus the UTF-8 bytes of the query and of the document. A larger list is
#: split into several requests, sent concurrently by ``arerank``.
MAX_REQUEST_BYTES = 5_000_000
_BYTES_PER_DOCUMENT = 150
#: The SDK's own per-attempt timeout, reported when the config sets none.
SDK_DEFAULT_TIMEOUT = 60.0
#: Where the API's error bodies put their message (FastAPI's ``detail`` first).
_MESSAGE_KEYS = ("detail", "message", "error")


class ZeroEntropyReranker(HostedReranker["ZeroEntropy", "AsyncZeroEntropy"]):
    """Scores documents with ZeroEntropy's ``/models/rerank`` (``client.models.rerank``)."""

    config: ZeroEntropyConfig
    provider = PROVIDER
    key_env = API_KEY_ENV[0]

    def __init__(self, config: ZeroEntropyConfig) -> None:
        timeout = config.timeout if config.timeout is not None else SDK_DEFAULT_TIMEOUT
        super().__init__(
            config, max_retries=config.max_retries, request_timeout=timeout, secret=config.api_key
        )
        # Load the SDK now, so the first search does not pay for the import.
        importlib.import_module("zeroentropy")

    # ------------------------------------------------------------------ the SDK

    def _batches(self, query: str, documents: list[str]) -> list[list[str]]:
        """``documents`` in requests within :data:`MAX_REQUEST_BYTES`, as the API counts them."""
        per_doc = _BYTES_PER_DOCUMENT + len(query.encode("utf-8"))
        return batches(
            documents, MAX_REQUEST_BYTES, cost=lambda doc: per_doc + len(doc.encode("utf-8"))
        )

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "api_key": self._api_key(),
            # The SDK's retries are off: the base retries within the reranker's budget.
            "max_retries": 0,
            "default_headers": {"X-Client-Name": "memsift"},
        }
        if self.config.base_url is not None:
            options["base_url"] = self.config.base_url
        if self.config.timeout is not None:  # None would mean "no timeout" to the SDK
            options["timeout"] = self.config.timeout
        return options

    def _build_client(self) -> ZeroEntropy:
        from zeroentropy import ZeroEntropy

        return ZeroEntropy(**self._client_options())

    def _build_async_client(self) -> AsyncZeroEntropy:
        from zeroentropy import AsyncZeroEntropy

        return AsyncZeroEntropy(**self._client_options())

    def _send(self, client: ZeroEntropy, query: str, documents: list[str], timeout: float) -> Any:
        return client.models.rerank(**self._arguments(query, documents, timeout))

    async def _asend(
        self, client: AsyncZeroEntropy, query: str, documents: list[str], timeout: float
    ) -> Any:
        return await client.models.rerank(**self._arguments(query, documents, timeout))

    def _arguments(self, query: str, batch: list[str], timeout: float) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.config.model,
            "query": query,
            "documents": batch,
            "top_n": len(batch),
            "timeout": timeout,  # this attempt's: the request timeout cut to the budget left
        }
        if self.config.latency is not None:
            args["latency"] = self.config.latency
        return args

    def _failure(self, exc: Exception) -> Failure:
        """Translate an SDK error, and say whether a retry may help.

        The SDK's exception is not chained to the error: it holds the unscrubbed body and
        the request with its Authorization header.
        """
        import zeroentropy

        status: int | None = None
        retry = False
        asked: float | None = None
        if isinstance(exc, zeroentropy.APITimeoutError):
            message = f"no answer within the request timeout of {self.request_timeout:g} s"
            # as the SDK did; with a timeout configured, the attempt used up the budget
            retry = self.config.timeout is None
        elif isinstance(exc, zeroentropy.APIConnectionError):
            cause = exc.__cause__
            detail = f": {type(cause).__name__}" if cause is not None else ""
            message = f"could not reach the API{detail}"
            retry = True
        elif isinstance(exc, zeroentropy.APIStatusError):
            status = exc.status_code
            message = error_message(exc.body, _MESSAGE_KEYS) or exc.message
            headers = exc.response.headers
            # the server may say whether to retry (the SDK's rule); else by status
            verdict = headers.get("x-should-retry")
            retry = verdict == "true" if verdict in ("true", "false") else retryable_status(status)
            asked = retry_after(headers)
        elif isinstance(exc, zeroentropy.APIResponseValidationError):
            status = exc.status_code
            message = "malformed response: it does not have the shape of a rerank answer"
        elif isinstance(exc, ValueError):  # a body that is not JSON
            message = f"malformed response: {type(exc).__name__}: {exc}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return Failure(
            RerankError(PROVIDER, message, status=status), retry=retry, retry_after=asked
        )
