"""The ``zero_entropy`` reranker: ZeroEntropy's hosted rerank API through the official SDK.

The search pipeline owns the candidate pool, the score cache, the overall timeout and the
fallback; this provider maps ``(query, documents)`` to ZeroEntropy's relevance scores,
which the API gives in [0, 1]. The SDK's own retries are turned off (it sleeps for any
Retry-After up to 60 s, whatever the reranker's ``timeout``); retries on 429, 408, 409, 5xx
and connection errors go through :class:`memsift.providers.Retrier`, which honours
Retry-After only while the wait fits in the rest of the ``timeout``. The SDK is imported
when a reranker is built, never when the plugin loads.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsift import Reranker, RerankError, check_rerank_input
from memsift.providers import (
    Failure,
    Retrier,
    batches,
    close_on_loop,
    error_message,
    gather_all,
    rank_scores,
    retry_after,
    retryable_status,
    scrub,
)
from memsift_zeroentropy.config import API_KEY_ENV, ZeroEntropyConfig

if TYPE_CHECKING:
    from zeroentropy import AsyncZeroEntropy, ZeroEntropy

log = logging.getLogger("memsift_zeroentropy")

PROVIDER = "zero_entropy"
#: The API's limit on one request's size, counted as it counts it: for every document,
#: 150 bytes plus the UTF-8 bytes of the query and of the document. A larger list is
#: split into several requests, sent concurrently by ``arerank``.
MAX_REQUEST_BYTES = 5_000_000
_BYTES_PER_DOCUMENT = 150
#: The SDK's own per-attempt timeout, reported when the config sets none.
SDK_DEFAULT_TIMEOUT = 60.0


@dataclass
class _AsyncClient:
    """The async SDK client and the event loop its connections belong to."""

    loop: asyncio.AbstractEventLoop
    client: AsyncZeroEntropy


class ZeroEntropyReranker(Reranker):
    """Scores documents with ZeroEntropy's ``/models/rerank`` (``client.models.rerank``)."""

    config: ZeroEntropyConfig

    def __init__(self, config: ZeroEntropyConfig) -> None:
        super().__init__(config)
        # Load the SDK now, so the first search does not pay for the import.
        importlib.import_module("zeroentropy")
        self._lock = threading.Lock()
        self._sync: ZeroEntropy | None = None
        self._async: _AsyncClient | None = None
        self._retrier = Retrier(
            PROVIDER,
            max_retries=config.max_retries,
            timeout=config.timeout,
            request_timeout=self._request_timeout,
            secret=config.api_key,
        )

    @property
    def _request_timeout(self) -> float:
        return self.config.timeout if self.config.timeout is not None else SDK_DEFAULT_TIMEOUT

    # ------------------------------------------------------------------ scoring

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        client = self._sync_client()
        deadline = self._retrier.deadline()  # one budget for every batch of this call
        scores: list[float] = []
        for batch in _batches(query, docs):

            def send(timeout: float, batch: list[str] = batch) -> list[float]:
                response = client.models.rerank(**self._arguments(query, batch, timeout))
                return _scores(response, len(batch))

            scores.extend(self._retrier.call(send, self._failure, deadline))
        return scores

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        client = self._async_client()
        deadline = self._retrier.deadline()

        async def one(batch: list[str]) -> list[float]:
            async def send(timeout: float) -> list[float]:
                response = await client.models.rerank(**self._arguments(query, batch, timeout))
                return _scores(response, len(batch))

            return await self._retrier.acall(send, self._failure, deadline)

        parts = await gather_all(one(b) for b in _batches(query, docs))
        return [score for part in parts for score in part]

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

    # ------------------------------------------------------------------ clients

    def _client_options(self) -> dict[str, Any]:
        key = self.config.api_key
        if key is None or not key.get_secret_value():  # the config validator rules this out
            raise RerankError(PROVIDER, f"no API key: set api_key or {API_KEY_ENV[0]}")
        options: dict[str, Any] = {
            "api_key": key.get_secret_value(),
            # The SDK's retries are off: the Retrier retries within the reranker's budget.
            "max_retries": 0,
            "default_headers": {"X-Client-Name": "memsift"},
        }
        if self.config.base_url is not None:
            options["base_url"] = self.config.base_url
        if self.config.timeout is not None:  # None would mean "no timeout" to the SDK
            options["timeout"] = self.config.timeout
        return options

    def _sync_client(self) -> ZeroEntropy:
        with self._lock:
            if self._sync is None:
                from zeroentropy import ZeroEntropy

                self._sync = ZeroEntropy(**self._client_options())
            return self._sync

    def _async_client(self) -> AsyncZeroEntropy:
        """The async client of the running event loop (its connections belong to it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            current = self._async
            if current is not None and current.loop is loop:
                return current.client
            from zeroentropy import AsyncZeroEntropy

            client = AsyncZeroEntropy(**self._client_options())
            self._async = _AsyncClient(loop, client)
        if current is not None:
            close_on_loop(current.loop, current.client.close)
        return client

    def close(self) -> None:
        """Close the SDK clients and wake sleeping retries; the next call opens new clients."""
        self._retrier.close()
        with self._lock:
            sync, self._sync = self._sync, None
            handle, self._async = self._async, None
        if sync is not None:
            sync.close()
        if handle is not None:
            close_on_loop(handle.loop, handle.client.close)

    async def aclose(self) -> None:
        self._retrier.close()
        with self._lock:
            sync, self._sync = self._sync, None
            handle, self._async = self._async, None
        if sync is not None:
            sync.close()
        if handle is not None:
            if handle.loop is asyncio.get_running_loop():
                await handle.client.close()
            else:
                close_on_loop(handle.loop, handle.client.close)

    # ------------------------------------------------------------------ errors

    def _failure(self, exc: Exception) -> Failure:
        """Translate an SDK error, and say whether a retry may help.

        The message never holds the API key (an error body may echo it); the SDK's
        exception is not chained to the error, since it holds the unscrubbed body and the
        request with its Authorization header.
        """
        import zeroentropy

        status: int | None = None
        retry = False
        asked: float | None = None
        if isinstance(exc, zeroentropy.APITimeoutError):
            message = f"no answer within the request timeout of {self._request_timeout:g} s"
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
            if status in (401, 403):
                message += f" (check the API key: the config's api_key or ${API_KEY_ENV[0]})"
        elif isinstance(exc, zeroentropy.APIResponseValidationError):
            status = exc.status_code
            message = "malformed response: it does not have the shape of a rerank answer"
        elif isinstance(exc, ValueError):  # a body that is not JSON
            message = f"malformed response: {type(exc).__name__}: {exc}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        error = RerankError(PROVIDER, scrub(message, self.config.api_key), status=status)
        return Failure(error, retry=retry, retry_after=asked)


# ---------------------------------------------------------------------- helpers

#: Where the API's error bodies put their message (FastAPI's ``detail`` first).
_MESSAGE_KEYS = ("detail", "message", "error")


def _batches(query: str, docs: list[str]) -> list[list[str]]:
    """``docs`` in requests within :data:`MAX_REQUEST_BYTES`, as the API counts them."""
    per_doc = _BYTES_PER_DOCUMENT + len(query.encode("utf-8"))
    return batches(docs, MAX_REQUEST_BYTES, cost=lambda doc: per_doc + len(doc.encode("utf-8")))


def _scores(response: Any, count: int) -> list[float]:
    """The scores of ``count`` documents, in input order, from a rerank response."""
    return rank_scores(PROVIDER, getattr(response, "results", None), count)
