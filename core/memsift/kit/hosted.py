"""The base of a hosted reranker, and the helpers every hosted provider needs.

:class:`HostedReranker` is what a reranker on a hosted rerank API (an SDK or plain HTTP)
subclasses; it owns the client lifecycle, batching, retries, error mapping and secret
scrubbing, and leaves the subclass only what differs between APIs (see its docstring).

The helpers it is built from serve a provider written without it too: reading a rank-style
answer into one score per document (:func:`rank_scores`), splitting a pool into
request-sized batches (:func:`batches`), sending batches concurrently (:func:`gather_all`),
closing an async client on the event loop it belongs to (:func:`close_on_loop`), and,
re-exported here from :mod:`memsift.kit.retry` and :mod:`memsift.kit.messages`, retrying
within the reranker's time budget (:class:`Retrier`, :class:`Failure`, :func:`retry_after`,
:func:`retryable_status`) and turning an error body into a message that is safe to show
(:func:`error_message`, :func:`scrub`, :func:`clean_error`); and, from
:mod:`memsift.kit.config`, the config base :class:`HostedRerankerConfig`. Every failure
they report is a :class:`memsift.RerankError` naming the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import threading
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import SecretStr

from memsift.errors import RerankError
from memsift.interfaces import Reranker, RerankerConfig, check_rerank_input
from memsift.kit.config import HostedRerankerConfig, env_default
from memsift.kit.messages import MAX_MESSAGE, clean_error, error_message, scrub
from memsift.kit.redact import install_log_redaction
from memsift.kit.retry import (
    DEFAULT_BACKOFF,
    MAX_BACKOFF,
    MAX_RETRY_WAIT,
    Deadline,
    Failure,
    Retrier,
    _with_message,
    retry_after,
    retryable_status,
)

T = TypeVar("T")
#: The type of a provider's sync client, and of its async client.
SyncClient = TypeVar("SyncClient")
AsyncClient = TypeVar("AsyncClient")

# Tasks that close a client on the running loop; held here so they are not collected.
_closing: set[asyncio.Task[Any]] = set()


def rank_scores(
    provider: str,
    results: object,
    count: int,
    *,
    score: str = "relevance_score",
    index: str = "index",
    unit: bool = True,
    slack: float = 0.0,
) -> list[float]:
    """The scores of ``count`` documents, in input order, from a rank-style answer.

    ``results`` is the answer's list of items, each naming a document by its position in
    the request (``index``) and giving its ``score``; an item is read by key when it is a
    mapping and by attribute otherwise, so SDK objects and parsed JSON both fit. Every
    document must be scored exactly once, at an index in range, with a finite number.
    With ``unit`` the score must lie in [0, 1]; ``slack`` lets it stray that far outside
    (rounding), and such a score is clamped. Anything else raises
    ``RerankError(provider, "malformed response: ...")``.
    """
    if not isinstance(results, list):
        raise RerankError(provider, "malformed response: it has no list of results")
    scores: list[float | None] = [None] * count
    for item in results:
        position = _field(item, index)
        value = _field(item, score)
        if isinstance(position, bool) or not isinstance(position, int):
            raise RerankError(provider, "malformed response: a result has no integer index")
        if not 0 <= position < count:
            raise RerankError(
                provider,
                f"malformed response: index {position} is out of range for {count} documents",
            )
        if scores[position] is not None:
            raise RerankError(provider, f"malformed response: document {position} is scored twice")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RerankError(provider, f"malformed response: document {position} has no score")
        number = float(value)
        if not math.isfinite(number) or (unit and not -slack <= number <= 1.0 + slack):
            raise RerankError(
                provider,
                f"malformed response: score {number!r} of document {position} is "
                + ("not in [0, 1]" if unit else "not finite"),
            )
        scores[position] = min(1.0, max(0.0, number)) if unit else number
    missing = sum(1 for s in scores if s is None)
    if missing:
        raise RerankError(
            provider, f"malformed response: {missing} of {count} documents were not scored"
        )
    return [s for s in scores if s is not None]


def _field(item: object, name: str) -> object:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def batches(
    items: Sequence[T], limit: int, *, cost: Callable[[T], int] | None = None
) -> list[list[T]]:
    """``items`` split, in order, into batches of at most ``limit`` items.

    With ``cost``, a batch is instead limited to items whose costs sum to at most
    ``limit`` (a request-size budget, say); an item over the budget on its own goes alone.
    """
    if cost is None:
        size = max(1, limit)
        return [list(items[i : i + size]) for i in range(0, len(items), size)]
    out: list[list[T]] = []
    batch: list[T] = []
    total = 0
    for item in items:
        weight = cost(item)
        if batch and total + weight > limit:
            out.append(batch)
            batch, total = [], 0
        batch.append(item)
        total += weight
    if batch:
        out.append(batch)
    return out


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``aws`` concurrently and return their results in order.

    On the first failure (or a cancellation) the others are cancelled and awaited before
    the error propagates, so no request outlives the call.
    """
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def close_on_loop(
    loop: asyncio.AbstractEventLoop,
    aclose: Callable[[], Coroutine[Any, Any, object]],
    *,
    wait: float = 0.0,
) -> None:
    """Run ``aclose()`` on ``loop``, the event loop an async client's connections belong to.

    Called on that loop, it schedules the close; from another thread while the loop runs,
    it submits it there and waits up to ``wait`` seconds; on an idle loop (and no loop
    running here) it runs it to completion. A closed loop took the connections with it:
    nothing to do. Errors while closing are ignored.
    """
    if loop.is_closed():
        return
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task = loop.create_task(aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    elif loop.is_running():
        future = asyncio.run_coroutine_threadsafe(aclose(), loop)
        if wait > 0:
            with contextlib.suppress(Exception):
                future.result(timeout=wait)
    elif running is None:
        with contextlib.suppress(Exception):
            loop.run_until_complete(aclose())


# --------------------------------------------------------------------------- the base


@dataclass
class LoopClient(Generic[AsyncClient]):
    """An async client and the event loop its connections belong to."""

    loop: asyncio.AbstractEventLoop
    client: AsyncClient


class HostedReranker(Reranker, Generic[SyncClient, AsyncClient]):
    """A reranker on a hosted rerank API. Subclass it; implement five methods.

    The base owns: the sync client, built once under a lock; the async client of the
    running event loop (rebuilt when a call comes from another loop, the old one closed
    on its own loop); the split of a pool into requests (:meth:`_batches`), sent one after
    the other by ``rerank`` and concurrently by ``arerank``, all within one time budget; a
    :class:`Retrier` for every request; the mapping of errors to
    :class:`memsift.RerankError` (with a hint to check the key on 401/403, and the secret
    scrubbed); and ``close`` / ``aclose``, which close both clients and wake sleeping
    retries (the next call opens new clients).

    A subclass sets ``provider`` (the registered name) and calls ``super().__init__`` with
    its retry options, then implements:

    ``_build_client()`` / ``_build_async_client()``
        the sync and the async client (an SDK's, or an HTTP library's), with the SDK's own
        retries turned off: the base retries.
    ``_send(client, query, documents, timeout)`` / ``_asend(...)``
        send one request of ``documents`` (at most one batch), ``timeout`` seconds at most
        (the request timeout cut to the budget left); return the answer.
    ``_failure(exc)``
        a :class:`Failure` for an error ``_send``, ``_asend`` or ``_read_scores`` raised:
        the :class:`memsift.RerankError` to report (with the HTTP status when there is
        one), whether a retry may help, and the server's Retry-After.

    It may override: ``_read_scores(answer, count)`` (default: a rank-style ``results``
    list, read by :func:`rank_scores`); ``_max_documents()`` (default: no limit) or
    ``_batches(query, documents)`` to split by size; ``_close_client`` / ``_aclose_client``
    (default: ``close()``; ``aclose()``, else an awaited ``close()``).

    Class attributes: ``key_env``, the environment variable of the API key, named in the
    hint of a 401 or 403 (statuses in ``auth_statuses``) and when no key is set;
    ``close_wait``, how long ``close()`` from another thread waits for the async client
    to close on its loop.
    """

    provider: ClassVar[str] = ""
    key_env: ClassVar[str | None] = None
    auth_statuses: ClassVar[frozenset[int]] = frozenset({401, 403})
    close_wait: ClassVar[float] = 0.0

    def __init__(
        self,
        config: RerankerConfig,
        *,
        max_retries: int,
        request_timeout: float,
        secret: str | SecretStr | None = None,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float | None = MAX_BACKOFF,
    ) -> None:
        super().__init__(config)
        self._secret = secret
        install_log_redaction(secret)  # URLs with credentials, and the key, out of SDK logs
        self._lock = threading.Lock()
        self._sync: SyncClient | None = None
        self._async: LoopClient[AsyncClient] | None = None
        self._retrier = Retrier(
            self.provider,
            max_retries=max_retries,
            timeout=config.timeout,
            request_timeout=request_timeout,
            backoff=backoff,
            max_backoff=max_backoff,
            secret=secret,
        )

    @property
    def request_timeout(self) -> float:
        """Seconds one request may take (each attempt's timeout is cut to the budget left)."""
        return self._retrier.request_timeout

    # ------------------------------------------------------------------ what differs

    @abstractmethod
    def _build_client(self) -> SyncClient:
        """The sync client (built once, on the first ``rerank``)."""

    @abstractmethod
    def _build_async_client(self) -> AsyncClient:
        """An async client for the running event loop."""

    @abstractmethod
    def _send(self, client: SyncClient, query: str, documents: list[str], timeout: float) -> Any:
        """Send one request; return the answer for :meth:`_read_scores`."""

    @abstractmethod
    async def _asend(
        self, client: AsyncClient, query: str, documents: list[str], timeout: float
    ) -> Any:
        """The async twin of :meth:`_send`."""

    @abstractmethod
    def _failure(self, exc: Exception) -> Failure:
        """What an error of a request means: the RerankError, and whether to retry."""

    def _read_scores(self, answer: Any, count: int) -> list[float]:
        """The ``count`` scores of one answer, in the order of the documents sent."""
        return rank_scores(self.provider, _field(answer, "results"), count)

    def _max_documents(self) -> int | None:
        """Most documents in one request; None: all in one."""
        return None

    def _batches(self, query: str, documents: list[str]) -> list[list[str]]:
        """The requests of one call: ``documents`` split, in order."""
        limit = self._max_documents()
        return [documents] if limit is None else batches(documents, limit)

    def _close_client(self, client: SyncClient) -> None:
        """Close the sync client."""
        closer = getattr(client, "close", None)
        if callable(closer):
            closer()

    async def _aclose_client(self, client: AsyncClient) -> None:
        """Close an async client, on its own event loop."""
        closer = getattr(client, "aclose", None) or getattr(client, "close", None)
        if callable(closer):
            result = closer()
            if inspect.isawaitable(result):
                await result

    # ------------------------------------------------------------------ scoring

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        client = self._sync_client()
        deadline = self._retrier.deadline()  # one budget for every batch of this call
        scores: list[float] = []
        for batch in self._batches(query, docs):

            def send(timeout: float, batch: list[str] = batch) -> list[float]:
                return self._read_scores(self._send(client, query, batch, timeout), len(batch))

            scores.extend(self._retrier.call(send, self._translate, deadline))
        return scores

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        client = self._async_client()
        deadline = self._retrier.deadline()

        async def one(batch: list[str]) -> list[float]:
            async def send(timeout: float) -> list[float]:
                answer = await self._asend(client, query, batch, timeout)
                return self._read_scores(answer, len(batch))

            return await self._retrier.acall(send, self._translate, deadline)

        parts = await gather_all(one(b) for b in self._batches(query, docs))
        return [score for part in parts for score in part]

    def _translate(self, exc: Exception) -> Failure:
        """:meth:`_failure`, with the key hint added and the secret scrubbed."""
        failure = self._failure(exc)
        error = failure.error
        message = error.message
        if self.key_env is not None and error.status in self.auth_statuses:
            message += f" (check the API key: the config's api_key or ${self.key_env})"
        message = scrub(message, self._secret)
        if message != error.message:
            error = _with_message(error, message)
        return Failure(error, retry=failure.retry, retry_after=failure.retry_after)

    def _api_key(self) -> str:
        """The key, for building a client; RerankError when none is set."""
        key = self._secret
        value = key.get_secret_value() if isinstance(key, SecretStr) else key
        if not value:  # a config validator usually rules this out
            where = "api_key" if self.key_env is None else f"api_key or {self.key_env}"
            raise RerankError(self.provider, f"no API key: set {where}")
        return value

    # ------------------------------------------------------------------ clients

    def _sync_client(self) -> SyncClient:
        with self._lock:
            if self._sync is None:
                self._sync = self._build_client()
            return self._sync

    def _async_client(self) -> AsyncClient:
        """The async client of the running event loop (its connections belong to it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            current = self._async
            if current is not None and current.loop is loop:
                return current.client
            client = self._build_async_client()
            self._async = LoopClient(loop, client)
        if current is not None:
            self._close_on_its_loop(current)
        return client

    def _close_on_its_loop(self, handle: LoopClient[AsyncClient]) -> None:
        aclose = functools.partial(self._aclose_client, handle.client)
        close_on_loop(handle.loop, aclose, wait=self.close_wait)

    def _take_clients(self) -> tuple[SyncClient | None, LoopClient[AsyncClient] | None]:
        with self._lock:
            sync, self._sync = self._sync, None
            handle, self._async = self._async, None
        return sync, handle

    def close(self) -> None:
        """Close the clients and wake sleeping retries; the next call opens new clients."""
        self._retrier.close()
        sync, handle = self._take_clients()
        if sync is not None:
            self._close_client(sync)
        if handle is not None:
            self._close_on_its_loop(handle)

    async def aclose(self) -> None:
        """Like :meth:`close`, awaiting the async client when it belongs to this loop."""
        self._retrier.close()
        sync, handle = self._take_clients()
        if sync is not None:
            self._close_client(sync)
        if handle is not None:
            if handle.loop is asyncio.get_running_loop():
                await self._aclose_client(handle.client)
            else:
                self._close_on_its_loop(handle)


__all__ = [
    "DEFAULT_BACKOFF",
    "MAX_BACKOFF",
    "MAX_MESSAGE",
    "MAX_RETRY_WAIT",
    "Deadline",
    "Failure",
    "HostedReranker",
    "HostedRerankerConfig",
    "LoopClient",
    "Retrier",
    "batches",
    "clean_error",
    "close_on_loop",
    "env_default",
    "error_message",
    "gather_all",
    "rank_scores",
    "retry_after",
    "retryable_status",
    "scrub",
]
