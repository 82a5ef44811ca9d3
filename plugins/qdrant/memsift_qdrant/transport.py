"""How the store talks to ``qdrant_client``: the same request plans over the sync or the async
client.

Every store operation is written once, as a *plan*: a generator that yields :class:`Call`s
(a client method and its arguments) and receives their results. The sync methods run a plan
with :func:`run_plan` over :meth:`Transport.call`, the async twins with :func:`arun_plan`
over :meth:`Transport.acall`. The transports:

- :class:`SyncTransport` (a ``QdrantClient``: a server, or the local mode): the sync methods
  call it directly; the async twins run those calls in a worker thread. The local mode is
  not thread-safe, so its calls are serialised by a lock.
- :class:`AsyncTransport` (an ``AsyncQdrantClient``): every call runs on one private event
  loop in a thread of its own, so the client (and its connections) only ever see one loop;
  the async twins await it there without blocking their own loop, the sync methods wait.
- :class:`ServerTransport` (a config with ``url`` or ``host``): both clients, the sync one
  for the sync methods and the async one (on its private loop) for the async twins.

Every exception of the client becomes a :class:`memsift.StoreError` that says what failed,
where, and what to do, with no exception chain (an SDK exception can carry request data).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from memsift.errors import MemsiftError, StoreError

T = TypeVar("T")


@dataclass
class Call:
    """One request: a client method's name and its keyword arguments."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    what: str = ""  # for messages: "search", "store 3 memories", ...


Plan = Generator[Call, Any, T]


def run_plan(plan: Plan[T], call: Any) -> T:
    """Run ``plan``, answering each :class:`Call` with ``call(c)``; a StoreError raised by a
    call is thrown into the plan (which may clean up and re-raise)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = plan.throw(error) if error is not None else plan.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            value, error = call(request), None
        except MemsiftError as exc:
            value, error = None, exc


async def arun_plan(plan: Plan[T], acall: Any) -> T:
    """The async twin of :func:`run_plan`."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = plan.throw(error) if error is not None else plan.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            value, error = await acall(request), None
        except MemsiftError as exc:
            value, error = None, exc


class Transport:
    """Runs :class:`Call`s on a client."""

    #: whether the client is the local mode (in this process), not a server
    local: bool = False

    def __init__(self, where: str, secret: str | None) -> None:
        self.where = where
        self._secret = secret

    def call(self, request: Call) -> Any:
        raise NotImplementedError

    async def acall(self, request: Call) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close what this transport created (never a client it was given)."""

    def error(self, request: Call, exc: BaseException) -> StoreError:
        """The StoreError of a failed request (to raise outside the ``except`` block)."""
        return clean_error(
            StoreError(describe_failure(request, exc, self.where, self.local)), self._secret
        )


class SyncTransport(Transport):
    """A ``QdrantClient``."""

    def __init__(
        self, client: Any, *, owned: bool, local: bool, where: str, secret: str | None = None
    ) -> None:
        super().__init__(where, secret)
        self.client = client
        self.owned = owned
        self.local = local
        self._lock = threading.RLock() if local else None

    def call(self, request: Call) -> Any:
        method = getattr(self.client, request.method)
        try:
            if self._lock is None:
                return method(**request.kwargs)
            with self._lock:
                return method(**request.kwargs)
        except Exception as exc:
            failure = self.error(request, exc)
        raise failure

    async def acall(self, request: Call) -> Any:
        return await asyncio.to_thread(self.call, request)

    def close(self) -> None:
        if self.owned:
            with contextlib.suppress(Exception):  # closing must not raise
                self.client.close()


class _LoopThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="memsift-qdrant-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class AsyncTransport(Transport):
    """An ``AsyncQdrantClient``, used only on a private event loop."""

    def __init__(
        self,
        client: Any,
        *,
        owned: bool,
        local: bool,
        where: str,
        secret: str | None = None,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(where, secret)
        self.owned = owned
        self.local = local
        self._loop = _LoopThread()
        self._closed = False
        self.client = client
        if factory is not None:
            # built on the private loop, so that whatever the client sets up at construction
            # belongs to the loop it will run on
            try:
                self.client = self._loop.submit(_built(factory)).result()
            except BaseException:
                self._loop.stop()
                raise

    async def _on_loop(self, request: Call) -> Any:
        method = getattr(self.client, request.method)
        try:
            return await method(**request.kwargs)
        except Exception as exc:
            failure = self.error(request, exc)
        raise failure

    def call(self, request: Call) -> Any:
        if self._on_own_loop():
            raise StoreError(
                "a sync store method was called from inside the store's own event loop"
            )
        return self._loop.submit(self._on_loop(request)).result()

    async def acall(self, request: Call) -> Any:
        return await asyncio.wrap_future(self._loop.submit(self._on_loop(request)))

    def _on_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop.loop
        except RuntimeError:
            return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.owned:
            with contextlib.suppress(Exception):  # closing must not raise
                self._loop.submit(self.client.close()).result(timeout=10)
        self._loop.stop()


async def _built(factory: Callable[[], Any]) -> Any:
    return factory()


class ServerTransport(Transport):
    """A server reached by both clients: the sync one for the sync methods, the async one for
    the async twins."""

    def __init__(self, sync: SyncTransport, async_: AsyncTransport) -> None:
        super().__init__(sync.where, sync._secret)
        self.sync = sync
        self.async_ = async_

    def call(self, request: Call) -> Any:
        return self.sync.call(request)

    async def acall(self, request: Call) -> Any:
        return await self.async_.acall(request)

    def close(self) -> None:
        self.sync.close()
        self.async_.close()


def clean_error(error: StoreError, secret: str | None = None) -> StoreError:
    """``error`` with no exception chain (an SDK exception may carry request data) and
    ``secret`` scrubbed from its message; raise it outside any ``except`` block."""
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = False
    if secret:
        error.args = tuple(
            a.replace(secret, "***") if isinstance(a, str) else a for a in error.args
        )
    return error


def describe_failure(request: Call, exc: BaseException, where: str, local: bool) -> str:
    """What went wrong, where, and what to do -- from a client exception."""
    what = request.what or request.method
    kind = type(exc).__name__
    detail = str(exc).strip() or kind
    status = getattr(exc, "status_code", None)
    content = getattr(exc, "content", None)
    if isinstance(content, bytes) and content:
        detail = f"HTTP {status}: {content.decode('utf-8', 'replace')[:500]}"
    elif status is not None:
        detail = f"HTTP {status}: {detail}"
    low = detail.lower()
    if "already accessed by another instance" in low:
        advice = (
            "the local mode allows one client per folder: close the other Memory (or process) "
            "using it, or run a Qdrant server for several processes"
        )
    elif local:
        advice = "this call changed nothing"
    elif status == 401 or status == 403 or "unauthorized" in low or "forbidden" in low:
        advice = "check api_key (or $QDRANT_API_KEY)"
    elif status is None and (
        "connect" in low or "refused" in low or "timed out" in low or "timeout" in kind.lower()
    ):
        advice = "check that the Qdrant server is running and reachable there, then retry"
    else:
        advice = "retry; if it persists, check the server's log"
    return f"Qdrant ({where}) failed to {what}: {kind}: {detail[:800]}; {advice}"


__all__ = [
    "AsyncTransport",
    "Call",
    "Plan",
    "ServerTransport",
    "SyncTransport",
    "Transport",
    "arun_plan",
    "clean_error",
    "describe_failure",
    "run_plan",
]
