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
from memsift_huggingface.config import DEFAULT_HTTP_TIMEOUT, HuggingFaceRerankerConfig

PROVIDER = "huggingface"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: The longest wait a Retry-After header may impose before a retry, in seconds.
MAX_RETRY_WAIT = 30.0
_BODY_SNIPPET = 300


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
            _close_async_client(stale, stale_loop)
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
            _close_async_client(aclient, aloop)

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

    def _batches(self, documents: Sequence[str]) -> list[tuple[int, list[str]]]:
        size = self.config.batch_size
        return [(i, list(documents[i : i + size])) for i in range(0, len(documents), size)]

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores: list[float] = [math.nan] * len(documents)
        client = self._sync_client()
        for offset, texts in self._batches(documents):
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
                self._place(response, len(texts), offset, scores)
                break
        return scores

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores: list[float] = [math.nan] * len(documents)
        client = self._async_client()

        async def one(offset: int, texts: list[str]) -> None:
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
                self._place(response, len(texts), offset, scores)
                return

        await asyncio.gather(*(one(offset, texts) for offset, texts in self._batches(documents)))
        return scores

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

    def _place(
        self, response: httpx.Response, count: int, offset: int, scores: list[float]
    ) -> None:
        """Check one answer and write its scores at ``offset`` into ``scores``."""
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
        if not isinstance(data, list) or len(data) != count:
            got = f"{len(data)} items" if isinstance(data, list) else type(data).__name__
            raise RerankError(
                PROVIDER, f"expected a list of {count} {{index, score}} items, got {got}"
            )
        seen: set[int] = set()
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get("score") if isinstance(item, dict) else None
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
                raise RerankError(PROVIDER, f"the answer has an invalid index: {index!r}")
            if index in seen:
                raise RerankError(PROVIDER, f"the answer repeats index {index}")
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise RerankError(PROVIDER, f"the answer has a non-numeric score: {score!r}")
            value = float(score)
            if not math.isfinite(value):
                raise RerankError(PROVIDER, "the answer has a score that is not finite")
            if self.config.normalize and not -1e-6 <= value <= 1 + 1e-6:
                raise RerankError(
                    PROVIDER,
                    f"the server returned {value!r} with raw_scores=false; expected a score "
                    "in [0, 1] (is it a TEI server?)",
                )
            seen.add(index)
            scores[offset + index] = min(1.0, max(0.0, value)) if self.config.normalize else value


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


def _close_async_client(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
    """Close ``client`` on ``loop``: wait when called from another thread, else schedule."""
    if loop.is_closed():
        return  # its connections died with the loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task = loop.create_task(client.aclose())
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    elif loop.is_running():
        future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=5)
    else:
        with contextlib.suppress(Exception):
            loop.run_until_complete(client.aclose())


_pending: set[asyncio.Task[None]] = set()

__all__ = ["PROVIDER", "RETRY_STATUSES", "TEIClient", "redact_url", "rerank_url", "retry_after"]
