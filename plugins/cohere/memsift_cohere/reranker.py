"""The ``cohere`` reranker: Cohere's hosted rerank API (v2) through the official SDK.

The search pipeline owns the candidate pool, the score cache, the overall timeout and the
fallback; this provider maps ``(query, documents)`` to Cohere's relevance scores, which
the API already gives in [0, 1]. The SDK's own retries are turned off (it sleeps up to 60 s
per retry, whatever the reranker's ``timeout``); retries on 429, 408, 409, 5xx and refused
connections go through :class:`memsift.providers.Retrier`, which honours Retry-After only
while the wait fits in the rest of the ``timeout``. The SDK is imported when a reranker is
built, never when the plugin loads.
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
    Deadline,
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
class _AsyncClient:
    """The async SDK client and the event loop its connections belong to."""

    loop: asyncio.AbstractEventLoop
    client: AsyncClientV2
    http: httpx.AsyncClient


class CohereReranker(Reranker):
    """Scores documents with Cohere's ``/v2/rerank`` (``ClientV2.rerank``)."""

    config: CohereConfig

    def __init__(self, config: CohereConfig) -> None:
        super().__init__(config)
        # Load the SDK now, so the first search does not pay for the import.
        importlib.import_module("cohere")
        self._lock = threading.Lock()
        self._sync: tuple[ClientV2, httpx.Client] | None = None
        self._async: _AsyncClient | None = None
        self._retrier = Retrier(
            PROVIDER,
            max_retries=config.max_retries,
            timeout=config.timeout,
            request_timeout=self._request_timeout,
            secret=config.api_key,
        )
        if config.return_documents is not None:
            log.info(
                "cohere: return_documents is accepted for compatibility and changes nothing; "
                "memsift results always carry the memory text"
            )

    # ------------------------------------------------------------------ scoring

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        client = self._sync_client()
        deadline = self._retrier.deadline()  # one budget for every batch of this call
        scores: list[float] = []
        for batch in batches(docs, MAX_DOCUMENTS_PER_REQUEST):

            def send(timeout: float, batch: list[str] = batch) -> list[float]:
                response = client.rerank(**self._arguments(query, batch, timeout))
                return _scores(response, len(batch))

            scores.extend(self._retrier.call(send, self._failure, deadline))
        return scores

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        client = self._async_client()
        deadline = self._retrier.deadline()

        async def one(batch: list[str], deadline: Deadline) -> list[float]:
            async def send(timeout: float) -> list[float]:
                response = await client.rerank(**self._arguments(query, batch, timeout))
                return _scores(response, len(batch))

            return await self._retrier.acall(send, self._failure, deadline)

        parts = await gather_all(one(b, deadline) for b in batches(docs, MAX_DOCUMENTS_PER_REQUEST))
        return [score for part in parts for score in part]

    def _arguments(self, query: str, batch: list[str], timeout: float) -> dict[str, Any]:
        cfg = self.config
        args: dict[str, Any] = {
            "model": cfg.model,
            "query": query,
            "documents": batch,
            "top_n": len(batch),
            # The SDK's retries are off (the Retrier retries within the budget); set per
            # request, because older SDKs take retries only here.
            "request_options": {"max_retries": 0, "timeout_in_seconds": timeout},
        }
        if cfg.max_tokens_per_doc is not None:
            args["max_tokens_per_doc"] = cfg.max_tokens_per_doc
        return args

    @property
    def _request_timeout(self) -> float:
        return self.config.timeout if self.config.timeout is not None else DEFAULT_REQUEST_TIMEOUT

    # ------------------------------------------------------------------ clients

    def _api_key(self) -> str:
        key = self.config.api_key
        if key is None or not key.get_secret_value():  # the config validator rules this out
            raise RerankError(PROVIDER, f"no API key: set api_key or {API_KEY_ENV[0]}")
        return key.get_secret_value()

    def _sync_client(self) -> ClientV2:
        with self._lock:
            if self._sync is None:
                import httpx
                from cohere import ClientV2

                http = httpx.Client(timeout=self._request_timeout, follow_redirects=True)
                client = ClientV2(
                    api_key=self._api_key(),
                    base_url=self.config.base_url,
                    client_name="memsift",
                    timeout=self._request_timeout,
                    httpx_client=http,
                )
                self._sync = (client, http)
            return self._sync[0]

    def _async_client(self) -> AsyncClientV2:
        """The async client of the running event loop (its connections belong to it)."""
        loop = asyncio.get_running_loop()
        stale: _AsyncClient | None = None
        with self._lock:
            current = self._async
            if current is not None and current.loop is loop:
                return current.client
            import httpx
            from cohere import AsyncClientV2

            http = httpx.AsyncClient(timeout=self._request_timeout, follow_redirects=True)
            client = AsyncClientV2(
                api_key=self._api_key(),
                base_url=self.config.base_url,
                client_name="memsift",
                timeout=self._request_timeout,
                httpx_client=http,
            )
            stale, self._async = current, _AsyncClient(loop, client, http)
        if stale is not None:
            close_on_loop(stale.loop, stale.http.aclose)
        return client

    def close(self) -> None:
        """Close the SDK clients and wake sleeping retries; the next call opens new clients."""
        self._retrier.close()
        with self._lock:
            sync, self._sync = self._sync, None
            handle, self._async = self._async, None
        if sync is not None:
            sync[1].close()
        if handle is not None:
            close_on_loop(handle.loop, handle.http.aclose)

    async def aclose(self) -> None:
        self._retrier.close()
        with self._lock:
            sync, self._sync = self._sync, None
            handle, self._async = self._async, None
        if sync is not None:
            sync[1].close()
        if handle is not None:
            if handle.loop is asyncio.get_running_loop():
                await handle.http.aclose()
            else:
                close_on_loop(handle.loop, handle.http.aclose)

    # ------------------------------------------------------------------ errors

    def _failure(self, exc: Exception) -> Failure:
        """Translate an SDK or transport error, and say whether a retry may help.

        The message never holds the API key (an error body may echo it); the SDK's
        exception is not chained to the error, since it holds the unscrubbed body.
        """
        import httpx

        status: int | None = None
        retry = False
        asked: float | None = None
        if isinstance(exc, httpx.TimeoutException):
            message = f"no answer within the request timeout of {self._request_timeout:g} s"
        elif isinstance(exc, httpx.HTTPError):
            message = f"could not reach the API: {type(exc).__name__}: {exc}"
            retry = isinstance(exc, httpx.ConnectError)
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
            if status in (401, 403, 498):
                message += f" (check the API key: the config's api_key or ${API_KEY_ENV[0]})"
        else:
            message = f"{type(exc).__name__}: {exc}"
        error = RerankError(PROVIDER, scrub(message, self.config.api_key), status=status)
        return Failure(error, retry=retry, retry_after=asked)


def _scores(response: Any, count: int) -> list[float]:
    """The scores of ``count`` documents, in input order, from a rerank response."""
    return rank_scores(PROVIDER, getattr(response, "results", None), count)
