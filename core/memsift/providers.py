"""Helpers for provider packages that call a hosted API (rerankers over HTTP).

They hold what every hosted provider needs and would otherwise write again: reading a
rank-style answer into one score per document (:func:`rank_scores`), splitting a pool
into request-sized batches (:func:`batches`), sending batches concurrently
(:func:`gather_all`), turning an error body into a message that is safe to show
(:func:`error_message`, :func:`scrub`), and closing an async client on the event loop it
belongs to (:func:`close_on_loop`). Every failure they report is a
:class:`memsift.RerankError` naming the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import SecretStr

from memsift.errors import RerankError

T = TypeVar("T")

#: Longest message :func:`scrub` keeps.
MAX_MESSAGE = 500

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


def error_message(body: object, keys: Sequence[str] = ("message", "detail", "error")) -> str:
    """The human part of an API error body.

    The first non-empty of ``keys`` in a JSON object (looked into when it is itself an
    object or a list), else the body as text; ``""`` for no body.
    """
    if isinstance(body, Mapping):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping | list) and value:
                return error_message(value, keys) or str(value)
    if body is None:
        return ""
    return str(body)


def scrub(message: str, secret: str | SecretStr | None, *, limit: int = MAX_MESSAGE) -> str:
    """``message`` with ``secret`` replaced by ``***``, cut to ``limit`` characters."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if value:
        message = message.replace(value, "***")
    if len(message) > limit:
        message = message[:limit] + "..."
    return message


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


__all__ = [
    "MAX_MESSAGE",
    "batches",
    "close_on_loop",
    "error_message",
    "gather_all",
    "rank_scores",
    "scrub",
]
