"""The remote mode: a Text Embeddings Inference (TEI) server's ``POST /rerank`` route.

Wire format (TEI's own): the request is ``{"query": str, "texts": [str], "raw_scores":
bool, "truncate": bool}``, the answer a JSON list of ``{"index": int, "score": float}``
(sorted by score; ``index`` points into ``texts``). ``raw_scores`` is ``not normalize``:
with it false the server applies the sigmoid, so scores lie in [0, 1]. Texts go in
requests of at most ``batch_size`` (TEI refuses batches over its ``max_client_batch_size``,
32 by default); the async twin sends them concurrently.

Retries: 429, 502, 503 and 504 answers and refused connections are retried up to
``max_retries`` times, waiting for the ``Retry-After`` header when there is one (capped at
:data:`MAX_RETRY_WAIT`) and ``backoff * 2**attempt`` seconds otherwise. Any other failure
(424 model error, 413, 422, a timeout, a malformed body) raises
:class:`memsift.RerankError` at once, and the search falls back to vector order.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from memsift import RerankError
from memsift.providers import batches, close_on_loop, gather_all, rank_scores
from memsift_huggingface.config import DEFAULT_HTTP_TIMEOUT, HuggingFaceRerankerConfig

PROVIDER = "huggingface"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: The longest wait a Retry-After header may impose before a retry, in seconds.
MAX_RETRY_WAIT = 30.0
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
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


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
        """Close both clients (the async one on its own loop when that loop still runs)."""
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
        for texts in batches(documents, self.config.batch_size):
            body = self._body(query, texts)
            attempt = 0
            while True:
                try:
                    response = client.post(self.url, json=body)
                except httpx.ConnectError as exc:
                    if attempt >= self.config.max_retries:
                        raise self._transport_error(exc) from exc
                    time.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc) from exc
                if response.status_code in RETRY_STATUSES and attempt < self.config.max_retries:
                    wait = self._wait(response, attempt)
                    if wait is not None:
                        time.sleep(wait)
                        attempt += 1
                        continue
                scores.extend(self._scores(response, len(texts)))
                break
        return scores

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        client = self._async_client()

        async def one(texts: list[str]) -> list[float]:
            body = self._body(query, texts)
            attempt = 0
            while True:
                try:
                    response = await client.post(self.url, json=body)
                except httpx.ConnectError as exc:
                    if attempt >= self.config.max_retries:
                        raise self._transport_error(exc) from exc
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc) from exc
                if response.status_code in RETRY_STATUSES and attempt < self.config.max_retries:
                    wait = self._wait(response, attempt)
                    if wait is not None:
                        await asyncio.sleep(wait)
                        attempt += 1
                        continue
                return self._scores(response, len(texts))

        parts = await gather_all(one(t) for t in batches(documents, self.config.batch_size))
        return [score for part in parts for score in part]

    # ------------------------------------------------------------------ helpers

    def _backoff(self, attempt: int) -> float:
        return float(self.config.backoff * (2**attempt))

    def _wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds before retry ``attempt + 1``; None when Retry-After asks too long a wait."""
        asked = retry_after(response)
        if asked is not None:
            return asked if asked <= MAX_RETRY_WAIT else None
        return self._backoff(attempt)

    def _transport_error(self, exc: httpx.HTTPError) -> RerankError:
        if isinstance(exc, httpx.TimeoutException):
            return RerankError(
                PROVIDER, f"{self.display_url} did not answer within {self.timeout:g} s"
            )
        return RerankError(PROVIDER, f"cannot reach {self.display_url}: {type(exc).__name__}")

    def _scores(self, response: httpx.Response, count: int) -> list[float]:
        """The ``count`` scores of one answer, in the order of the texts sent."""
        if response.status_code != 200:
            raise RerankError(
                PROVIDER,
                f"{self.display_url} answered: {_error_text(response)}",
                status=response.status_code,
            )
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


__all__ = ["PROVIDER", "RETRY_STATUSES", "TEIClient", "redact_url", "rerank_url", "retry_after"]
