"""Retries of a hosted provider's requests, within the reranker's time budget.

A hosted provider turns its SDK's own retries off (their sleeps can outlast the search's
``timeout`` by minutes, keep rerank worker threads asleep, and block process exit) and sends
each request through a :class:`Retrier` instead. It retries what the provider marks as
retryable (429, 408, 409, 5xx, refused connections: :func:`retryable_status`), waiting for
``Retry-After`` (or ``Retry-After-Ms``, :func:`retry_after`) when the server sends one and for
an exponential backoff otherwise; but only while the wait fits in what is left of the
reranker's ``timeout`` (or, without a timeout, in :data:`MAX_RETRY_WAIT`). A wait that does
not fit fails at once with the server's status, e.g. ``RerankError`` with status 429, "rate
limited (Retry-After 120 s exceeds the remaining budget of 1.8 s)". Every attempt's request
timeout is cut to the remaining budget, and closing the provider (or the process exiting)
wakes every sleeping retry, which then fails at once.

:class:`memsift.kit.hosted.HostedReranker` owns one; a provider written without that base
can use it directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)
import contextlib
import email.utils
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from pydantic import SecretStr

from memsift.errors import RerankError
from memsift.kit.messages import clean_error

T = TypeVar("T")

#: The longest wait for a retry (Retry-After or backoff) when the reranker has no
#: ``timeout``; with one, the wait must fit in what is left of it instead.
MAX_RETRY_WAIT = 30.0
#: The first backoff when the server gives no Retry-After, doubled after each retry.
DEFAULT_BACKOFF = 0.5
#: The longest backoff (a Retry-After is not capped by it, only by the budget).
MAX_BACKOFF = 8.0


def retryable_status(status: int | None) -> bool:
    """Whether an HTTP status is worth a retry: 408, 409, 429 and 5xx (the hosted SDKs' rule)."""
    return status is not None and (status in (408, 409, 429) or status >= 500)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a response asks the client to wait, or None when it does not say.

    Reads ``Retry-After-Ms`` (milliseconds), then ``Retry-After`` as seconds (a float is
    accepted) or as an HTTP date (a date in the past gives 0). Header names are matched
    case-insensitively.
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        with contextlib.suppress(ValueError):
            value = float(millis) / 1000
            if math.isfinite(value):
                return max(0.0, value)
    text = lowered.get("retry-after")
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the provider translated it.

    ``error`` is what to raise (its message already scrubbed by the provider); ``retry``
    says whether another attempt may succeed; ``retry_after`` is the wait the server asked
    for, in seconds (see :func:`retry_after`), or None.
    """

    error: RerankError
    retry: bool = False
    retry_after: float | None = None


class Deadline:
    """The time budget of one rerank call: ``budget`` seconds from now, or none."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self._end = None if budget is None else time.monotonic() + budget

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a budget."""
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def attempt_timeout(self, request_timeout: float) -> float:
        """The timeout of the next attempt: ``request_timeout`` cut to the time left."""
        left = self.remaining()
        return request_timeout if left is None else max(min(request_timeout, left), 1e-3)


class _Gate:
    """Where retries sleep; :meth:`close` wakes every sleeper, sync or async, at once."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when woken because the gate closed."""
        return self.closed.wait(seconds)

    async def asleep(self, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            if self.closed.is_set():
                return True
            self._waiters.add(entry)
        timer = loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            with self._lock:
                self._waiters.discard(entry)
        return self.closed.is_set()

    def close(self) -> None:
        with self._lock:
            self.closed.set()
            waiters, self._waiters = list(self._waiters), set()
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nothing waits
                loop.call_soon_threadsafe(_wake, waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Retrier:
    """Sends a hosted provider's requests, retrying within the reranker's time budget.

    ``timeout`` is the reranker config's ``timeout`` (the search stage's deadline for the
    whole call): a call never waits for a retry past it, and each attempt's request
    timeout (``request_timeout`` otherwise) is cut to what is left of it. Without a
    timeout a single wait may last at most ``max_wait``. Waits follow the server's
    Retry-After, else ``backoff * 2**retry`` capped at ``max_backoff`` (None: no cap).

    :meth:`close` wakes every retry sleeping at that moment (it fails at once with the
    last error); calls made afterwards retry normally. So does the process exiting.
    """

    def __init__(
        self,
        provider: str,
        *,
        max_retries: int,
        timeout: float | None,
        request_timeout: float,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float | None = MAX_BACKOFF,
        max_wait: float = MAX_RETRY_WAIT,
        secret: str | SecretStr | None = None,
    ) -> None:
        self.provider = provider
        self.max_retries = max_retries
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_wait = max_wait
        self._secret = secret
        self._lock = threading.Lock()
        self._gate = _Gate()
        _live.add(self)
        _register_exit_hook()

    def deadline(self) -> Deadline:
        """A new budget of ``timeout`` seconds, for one call (share it between its batches)."""
        return Deadline(self.timeout)

    def call(
        self,
        send: Callable[[float], T],
        translate: Callable[[Exception], Failure],
        deadline: Deadline | None = None,
    ) -> T:
        """``send(attempt_timeout)``, retried as ``translate`` of each error allows."""
        deadline = deadline if deadline is not None else self.deadline()
        gate = self._gate
        retries = 0
        while True:
            try:
                return send(deadline.attempt_timeout(self.request_timeout))
            except Exception as exc:
                failure = _translated(self.provider, translate, exc)
            wait = self._wait(failure, retries, deadline)
            if gate.sleep(wait):
                raise self._closed(failure, wait)
            retries += 1

    async def acall(
        self,
        send: Callable[[float], Awaitable[T]],
        translate: Callable[[Exception], Failure],
        deadline: Deadline | None = None,
    ) -> T:
        """The async twin of :meth:`call`; a retry sleeps without blocking the loop."""
        deadline = deadline if deadline is not None else self.deadline()
        gate = self._gate
        retries = 0
        while True:
            try:
                return await send(deadline.attempt_timeout(self.request_timeout))
            except Exception as exc:
                failure = _translated(self.provider, translate, exc)
            wait = self._wait(failure, retries, deadline)
            if await gate.asleep(wait):
                raise self._closed(failure, wait)
            retries += 1

    def close(self) -> None:
        """Wake every sleeping retry (each fails at once); later calls are unaffected."""
        with self._lock:
            gate, self._gate = self._gate, _Gate()
        gate.close()

    # ------------------------------------------------------------------ decisions

    def _wait(self, failure: Failure, retries: int, deadline: Deadline) -> float:
        """Seconds to sleep before the next attempt; raises the error when there is none."""
        # cleaned in place first: this frame, reachable from what is raised, holds it
        error = self._clean(failure.error)
        if not failure.retry or retries >= self.max_retries:
            if retries:
                error = _with_message(error, f"{error.message} (after {_count(retries)})")
            raise self._clean(error)
        asked = failure.retry_after
        if asked is not None:
            wait, what = asked, f"Retry-After {_secs(asked)} s"
        else:
            wait = self.backoff * 2**retries
            if self.max_backoff is not None:
                wait = min(wait, self.max_backoff)
            what = f"the retry backoff of {_secs(wait)} s"
        left = deadline.remaining()
        if left is None and wait > self.max_wait:
            limit = f"the longest retry wait of {_secs(self.max_wait)} s"
        elif left is not None and wait >= left:
            limit = f"the remaining budget of {_secs(left)} s"
        else:
            return wait
        if error.status == 429:
            message = f"rate limited ({what} exceeds {limit}): {error.message}"
        else:
            message = f"{error.message} (not retried: {what} exceeds {limit})"
        raise self._clean(_with_message(error, message))

    def _closed(self, failure: Failure, wait: float) -> RerankError:
        error = self._clean(failure.error)
        message = f"{error.message} (the reranker was closed during a {_secs(wait)} s retry wait)"
        return self._clean(_with_message(error, message))

    def _clean(self, error: RerankError) -> RerankError:
        return clean_error(error, self._secret)


def _translated(
    provider: str, translate: Callable[[Exception], Failure], exc: Exception
) -> Failure:
    if isinstance(exc, RerankError):
        return Failure(exc)
    try:
        return translate(exc)
    except Exception as broken:  # a translator that fails must not leak ``exc`` either
        message = f"{type(exc).__name__} (not translated: {type(broken).__name__})"
        return Failure(RerankError(provider, message))


def _with_message(error: RerankError, message: str) -> RerankError:
    """A RerankError like ``error`` (same class, provider and status) saying ``message``."""
    try:
        return type(error)(error.provider, message, status=error.status)
    except TypeError:  # a subclass with another constructor
        return RerankError(error.provider, message, status=error.status)


def _secs(seconds: float) -> str:
    return f"{seconds:.3g}"


def _count(retries: int) -> str:
    return "1 retry" if retries == 1 else f"{retries} retries"


# Every Retrier alive; the process's exit wakes their sleeping retries.
_live: weakref.WeakSet[Retrier] = weakref.WeakSet()
_exit_hook_registered = False


def _wake_all_at_exit() -> None:
    for retrier in list(_live):
        retrier.close()


def _register_exit_hook() -> None:
    """Close every Retrier when the interpreter starts to exit.

    A rerank worker thread asleep in a retry would otherwise hold up exit: the interpreter
    joins the thread-pool workers (and every non-daemon thread) before plain ``atexit``
    functions run, so the hook goes where ``concurrent.futures`` registers its own, and
    runs before it (those hooks run last-registered first).
    """
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    _exit_hook_registered = True
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # already shutting down
            register(_wake_all_at_exit)


__all__ = [
    "DEFAULT_BACKOFF",
    "MAX_BACKOFF",
    "MAX_RETRY_WAIT",
    "Deadline",
    "Failure",
    "Retrier",
    "retry_after",
    "retryable_status",
]
