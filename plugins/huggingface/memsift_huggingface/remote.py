"""The remote mode: a Text Embeddings Inference (TEI) server's ``POST /rerank`` route.

Wire format (TEI's own): the request is ``{"query": str, "texts": [str], "raw_scores":
bool, "truncate": bool}``, the answer a JSON list of ``{"index": int, "score": float}``
(sorted by score; ``index`` points into ``texts``). ``raw_scores`` is ``not normalize``:
with it false the server applies the sigmoid, so scores lie in [0, 1]. Texts go in
requests of at most ``batch_size`` (TEI refuses batches over its ``max_client_batch_size``,
32 by default); the async twin sends them concurrently.

Retries (through :class:`memsift.providers.Retrier`, shared with the hosted rerankers):
429, 502, 503 and 504 answers and refused connections are retried up to ``max_retries``
times, waiting for the ``Retry-After`` header when there is one and ``backoff * 2**retry``
seconds otherwise, but only while the wait fits in what is left of ``timeout`` (without a
``timeout``: a wait of at most :data:`MAX_RETRY_WAIT`); a longer one fails at once with the
server's status. Each attempt's HTTP timeout is cut to the budget left. Any other failure
(424 model error, 413, 422, a timeout, a malformed body) raises
:class:`memsift.RerankError` at once, and the search falls back to vector order. Error
messages never carry the ``api_key``, even when the server's answer echoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from memsift import RerankError
from memsift.providers import (
    MAX_RETRY_WAIT,
    Failure,
    Retrier,
    batches,
    close_on_loop,
    gather_all,
    rank_scores,
    scrub,
)
from memsift.providers import retry_after as _retry_after
from memsift_huggingface.config import DEFAULT_HTTP_TIMEOUT, HuggingFaceRerankerConfig

PROVIDER = "huggingface"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_BODY_SNIPPET = 300
#: Seconds ``close()`` waits for an async client closing on a loop in another thread.
_CLOSE_WAIT = 5.0


def rerank_url(endpoint_url: str) -> str:
    """``endpoint_url`` with ``/rerank`` appended unless it already ends with it."""
    base = endpoint_url.rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


def redact_url(url: str) -> str:
    """``url`` without user name and password, safe for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks to wait (``Retry-After`` as seconds or an HTTP date)."""
    return _retry_after(response.headers)


class _StatusAnswer(Exception):
    """A non-200 answer, handed from an attempt to the retry decision."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class TEIClient:
    """Talks to one TEI ``/rerank`` route with one sync and one async httpx client.

    The clients are made on first use and reused for every call (connection pooling);
    the async one belongs to the event loop that made it and is replaced when a call
    comes from another loop.
    """

    def __init__(self, config: HuggingFaceRerankerConfig) -> None:
        assert config.endpoint_url is not None
        self.config = config
        self.url = rerank_url(config.endpoint_url)
        self.display_url = redact_url(self.url)
        self.timeout = config.timeout if config.timeout is not None else DEFAULT_HTTP_TIMEOUT
        headers = {"Accept": "application/json"}
        if config.api_key is not None and config.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._headers = headers
        self._retrier = Retrier(
            PROVIDER,
            max_retries=config.max_retries,
            timeout=config.timeout,
            request_timeout=self.timeout,
            backoff=config.backoff,
            max_backoff=None,  # backoff * 2**retry, as configured; the budget bounds it
            secret=config.api_key,
        )
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ clients

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(headers=self._headers, timeout=self.timeout)
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._aclient is None or self._aloop is not loop:
                stale, stale_loop = self._aclient, self._aloop
                self._aclient = httpx.AsyncClient(headers=self._headers, timeout=self.timeout)
                self._aloop = loop
            else:
                stale, stale_loop = None, None
        if stale is not None and stale_loop is not None:
            close_on_loop(stale_loop, stale.aclose, wait=_CLOSE_WAIT)
        return self._aclient

    def close(self) -> None:
        """Close both clients (the async one on its own loop when that loop still runs),
        and wake every sleeping retry (it fails at once)."""
        self._retrier.close()
        with self._lock:
            client, self._client = self._client, None
            aclient, self._aclient = self._aclient, None
            aloop, self._aloop = self._aloop, None
        if client is not None:
            client.close()
        if aclient is not None and aloop is not None:
            close_on_loop(aloop, aclient.aclose, wait=_CLOSE_WAIT)

    async def aclose(self) -> None:
        """Close both clients, awaiting the async one when it belongs to this loop."""
        self._retrier.close()
        with self._lock:
            aclient, aloop = self._aclient, self._aloop
            if aclient is not None and aloop is asyncio.get_running_loop():
                self._aclient, self._aloop = None, None
            else:
                aclient = None
        if aclient is not None:
            await aclient.aclose()
        self.close()

    # ------------------------------------------------------------------ calls

    def _body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        return {
            "query": query,
            "texts": list(texts),
            "raw_scores": not self.config.normalize,
            "truncate": self.config.truncate,
        }

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores: list[float] = []
        client = self._sync_client()
        deadline = self._retrier.deadline()  # one budget for every batch of this call
        for texts in batches(documents, self.config.batch_size):
            body = self._body(query, texts)

            def send(
                timeout: float, body: dict[str, Any] = body, count: int = len(texts)
            ) -> list[float]:
                return self._scores(client.post(self.url, json=body, timeout=timeout), count)

            scores.extend(self._retrier.call(send, self._failure, deadline))
        return scores

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        client = self._async_client()
        deadline = self._retrier.deadline()

        async def one(texts: list[str]) -> list[float]:
            body = self._body(query, texts)

            async def send(timeout: float) -> list[float]:
                response = await client.post(self.url, json=body, timeout=timeout)
                return self._scores(response, len(texts))

            return await self._retrier.acall(send, self._failure, deadline)

        parts = await gather_all(one(t) for t in batches(documents, self.config.batch_size))
        return [score for part in parts for score in part]

    # ------------------------------------------------------------------ helpers

    def _failure(self, exc: Exception) -> Failure:
        """Translate an answer or transport error, and say whether a retry may help."""
        if isinstance(exc, _StatusAnswer):
            response = exc.response
            message = scrub(f"{self.display_url} answered: {_error_text(response)}", self._secret)
            error = RerankError(PROVIDER, message, status=response.status_code)
            retry = response.status_code in RETRY_STATUSES
            return Failure(error, retry=retry, retry_after=retry_after(response) if retry else None)
        if isinstance(exc, httpx.TimeoutException):
            return Failure(
                RerankError(
                    PROVIDER, f"{self.display_url} did not answer within {self.timeout:g} s"
                )
            )
        if isinstance(exc, httpx.HTTPError):
            error = RerankError(PROVIDER, f"cannot reach {self.display_url}: {type(exc).__name__}")
            return Failure(error, retry=isinstance(exc, httpx.ConnectError))
        return Failure(RerankError(PROVIDER, scrub(f"{type(exc).__name__}: {exc}", self._secret)))

    @property
    def _secret(self) -> str | None:
        key = self.config.api_key
        return key.get_secret_value() if key is not None else None

    def _scores(self, response: httpx.Response, count: int) -> list[float]:
        """The ``count`` scores of one answer, in the order of the texts sent."""
        if response.status_code != 200:
            raise _StatusAnswer(response)
        try:
            data = response.json()
        except ValueError:
            raise RerankError(PROVIDER, "the server's answer is not JSON") from None
        # With raw_scores=false TEI applies the sigmoid: scores in [0, 1], up to rounding.
        return rank_scores(
            PROVIDER, data, count, score="score", unit=self.config.normalize, slack=1e-6
        )


def _error_text(response: httpx.Response) -> str:
    """TEI's ``{"error": ..., "error_type": ...}`` message, or the start of the body."""
    message = ""
    with contextlib.suppress(ValueError):
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            kind = data.get("error_type")
            message = f"{kind}: {data['error']}" if isinstance(kind, str) else data["error"]
    if not message:
        message = response.text.strip()[:_BODY_SNIPPET] or response.reason_phrase
    return message


__all__ = [
    "MAX_RETRY_WAIT",
    "PROVIDER",
    "RETRY_STATUSES",
    "TEIClient",
    "redact_url",
    "rerank_url",
    "retry_after",
]
