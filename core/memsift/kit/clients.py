"""A hosted provider's SDK clients: one sync client, built once, and one async client per
event loop (its connections belong to that loop), each closed where it belongs.

:class:`ClientPair` is what LLM and embedder providers on an SDK share (the rerank base
:class:`memsift.kit.hosted.HostedReranker` keeps its own, with the retry budget around it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from pydantic import SecretStr

from memsift.kit.hosted import LoopClient, close_on_loop
from memsift.kit.redact import install_log_redaction

S = TypeVar("S")
A = TypeVar("A")


def _close_sync(client: Any) -> None:
    client.close()


def _close_async(client: Any) -> Awaitable[object]:
    result: Awaitable[object] = client.close()
    return result


class ClientPair(Generic[S, A]):
    """Builds clients on first use, thread-safely; a later call after :meth:`close` builds
    new ones. ``close_sync`` / ``close_async`` default to the client's ``close()``. Building
    one installs :func:`memsift.kit.redact.install_log_redaction` (with ``secret``, the API
    key, when given)."""

    def __init__(
        self,
        build_sync: Callable[[], S],
        build_async: Callable[[], A],
        *,
        close_sync: Callable[[S], None] = _close_sync,
        close_async: Callable[[A], Awaitable[object]] = _close_async,
        secret: str | SecretStr | None = None,
    ) -> None:
        install_log_redaction(secret)  # URLs with credentials (and ``secret``) out of SDK logs
        self._build_sync = build_sync
        self._build_async = build_async
        self._close_sync = close_sync
        self._close_async = close_async
        self._lock = threading.Lock()
        self._sync: S | None = None
        self._async: LoopClient[A] | None = None

    def sync(self) -> S:
        with self._lock:
            if self._sync is None:
                self._sync = self._build_sync()
            return self._sync

    def for_running_loop(self) -> A:
        """The async client of the running event loop; a client of another loop is closed
        on its own loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            current = self._async
            if current is not None and current.loop is loop:
                return current.client
            client = self._build_async()
            self._async = LoopClient(loop, client)
        if current is not None:
            self._close_on_its_loop(current)
        return client

    def _close_on_its_loop(self, handle: LoopClient[A]) -> None:
        close = self._close_async

        async def aclose() -> None:
            await close(handle.client)

        close_on_loop(handle.loop, aclose)

    def _take(self) -> tuple[S | None, LoopClient[A] | None]:
        with self._lock:
            sync, self._sync = self._sync, None
            handle, self._async = self._async, None
        return sync, handle

    def close(self) -> None:
        sync, handle = self._take()
        if sync is not None:
            self._close_sync(sync)
        if handle is not None:
            self._close_on_its_loop(handle)

    async def aclose(self) -> None:
        sync, handle = self._take()
        if sync is not None:
            self._close_sync(sync)
        if handle is not None:
            if handle.loop is asyncio.get_running_loop():
                await self._close_async(handle.client)
            else:
                self._close_on_its_loop(handle)


__all__ = ["ClientPair"]
