"""The remote mode: a Text Embeddings Inference (TEI) server's ``POST /rerank`` route.

Wire format (TEI's own): the request is ``{"query": str, "texts": [str], "raw_scores":
bool, "truncate": bool}``, the answer a JSON list of ``{"index": int, "score": float}``
(sorted by score; ``index`` points into ``texts``). ``raw_scores`` is ``not normalize``:
with it false the server applies the sigmoid, so scores lie in [0, 1]. Texts go in
requests of at most ``batch_size`` (TEI refuses batches over its ``max_client_batch_size``,
32 by default); the async twin sends them concurrently.

Client lifecycle, batching and retries come from :class:`memsift.kit.hosted.HostedReranker`
(one sync and one async httpx client): 429, 502, 503 and 504 answers and refused
connections are retried up to ``max_retries`` times, waiting for the ``Retry-After`` header
when there is one and ``backoff * 2**retry`` seconds otherwise, but only while the wait
fits in what is left of ``timeout`` (without a ``timeout``: a wait of at most
:data:`MAX_RETRY_WAIT`); a longer one fails at once with the server's status. Each
attempt's HTTP timeout is cut to the budget left. Any other failure (424 model error, 413,
422, a timeout, a malformed body) raises :class:`memsift.RerankError` at once, and the
search falls back to vector order. Error messages never carry the ``api_key``, even when
the server's answer echoes it.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from memsift import RerankError
from memsift.kit.hosted import MAX_RETRY_WAIT, Failure, HostedReranker, rank_scores, scrub
from memsift.kit.hosted import retry_after as _retry_after
from memsift.kit.local import LogitReranker
from memsift_huggingface.config import DEFAULT_HTTP_TIMEOUT, HuggingFaceRerankerConfig

PROVIDER = "huggingface"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
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
    return _retry_after(response.headers)


class _StatusAnswer(Exception):
    """A non-200 answer, handed from an attempt to the retry decision."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class TEIReranker(LogitReranker, HostedReranker[httpx.Client, httpx.AsyncClient]):
    """The remote mode of the ``huggingface`` reranker: one TEI ``/rerank`` route."""

    config: HuggingFaceRerankerConfig
    provider = PROVIDER
    #: Seconds ``close()`` waits for an async client closing on a loop in another thread.
    close_wait = 5.0

    def __init__(self, config: HuggingFaceRerankerConfig) -> None:
        assert config.endpoint_url is not None
        super().__init__(
            config,
            max_retries=config.max_retries,
            request_timeout=config.timeout if config.timeout is not None else DEFAULT_HTTP_TIMEOUT,
            secret=config.api_key,
            backoff=config.backoff,
            max_backoff=None,  # backoff * 2**retry, as configured; the budget bounds it
        )
        self.url = rerank_url(config.endpoint_url)
        self.display_url = redact_url(self.url)
        headers = {"Accept": "application/json"}
        if config.api_key is not None and config.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._headers = headers

    @property
    def model_name(self) -> str:
        return self.display_url

    # ------------------------------------------------------------------ the wire

    def _max_documents(self) -> int:
        return self.config.batch_size

    def _build_client(self) -> httpx.Client:
        return httpx.Client(headers=self._headers, timeout=self.request_timeout)

    def _build_async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers=self._headers, timeout=self.request_timeout)

    def _body(self, query: str, texts: list[str]) -> dict[str, Any]:
        return {
            "query": query,
            "texts": texts,
            "raw_scores": not self.config.normalize,
            "truncate": self.config.truncate,
        }

    def _send(
        self, client: httpx.Client, query: str, documents: list[str], timeout: float
    ) -> httpx.Response:
        return client.post(self.url, json=self._body(query, documents), timeout=timeout)

    async def _asend(
        self, client: httpx.AsyncClient, query: str, documents: list[str], timeout: float
    ) -> httpx.Response:
        return await client.post(self.url, json=self._body(query, documents), timeout=timeout)

    def _read_scores(self, answer: httpx.Response, count: int) -> list[float]:
        """The ``count`` scores of one answer, in the order of the texts sent."""
        if answer.status_code != 200:
            raise _StatusAnswer(answer)
        try:
            data = answer.json()
        except ValueError:
            raise RerankError(PROVIDER, "the server's answer is not JSON") from None
        # With raw_scores=false TEI applies the sigmoid: scores in [0, 1], up to rounding.
        return rank_scores(PROVIDER, data, count, score="score", unit=self.normalize, slack=1e-6)

    def _failure(self, exc: Exception) -> Failure:
        """Translate an answer or transport error, and say whether a retry may help."""
        if isinstance(exc, _StatusAnswer):
            response = exc.response
            message = f"{self.display_url} answered: {_error_text(response, self._secret)}"
            error = RerankError(PROVIDER, message, status=response.status_code)
            retry = response.status_code in RETRY_STATUSES
            return Failure(error, retry=retry, retry_after=retry_after(response) if retry else None)
        if isinstance(exc, httpx.TimeoutException):
            message = f"{self.display_url} did not answer within {self.request_timeout:g} s"
            return Failure(RerankError(PROVIDER, message))
        if isinstance(exc, httpx.HTTPError):
            error = RerankError(PROVIDER, f"cannot reach {self.display_url}: {type(exc).__name__}")
            # refused, reset or closed before the answer: a rerank is safe to send again
            retry = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
            return Failure(error, retry=retry)
        return Failure(RerankError(PROVIDER, f"{type(exc).__name__}: {exc}"))


def _error_text(response: httpx.Response, secret: str | SecretStr | None) -> str:
    """TEI's ``{"error": ..., "error_type": ...}`` message, or the start of the body (the
    key scrubbed before it is cut, so that no cut-off key is left)."""
    message = ""
    with contextlib.suppress(ValueError):
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            kind = data.get("error_type")
            message = f"{kind}: {data['error']}" if isinstance(kind, str) else data["error"]
    if not message:
        message = scrub(response.text.strip(), secret, limit=_BODY_SNIPPET)
        message = message or response.reason_phrase
    return message


__all__ = [
    "MAX_RETRY_WAIT",
    "PROVIDER",
    "RETRY_STATUSES",
    "TEIReranker",
    "redact_url",
    "rerank_url",
    "retry_after",
]
