"""``assert_secret_absent``: no secret anywhere in what an exception lets a reader reach.

A scrubbed message is not enough: ``raise X from None`` only hides the exception that was
being handled (``__suppress_context__``); ``__context__`` still holds it, and error
trackers and code that walks the chain reach it. An SDK's error holds the error body that
echoes the key; pydantic's ValidationError quotes the offending ``input_value``. The
helpers here walk all of it::

    from memsift.testing import assert_secret_absent

    with pytest.raises(RerankError) as info:
        reranker.rerank("query", ["a document"])
    assert_secret_absent(info.value, API_KEY)
"""

from __future__ import annotations

import traceback

__all__ = ["assert_secret_absent", "reachable_exceptions"]


def reachable_exceptions(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it: its ``__cause__`` and
    ``__context__``, and the exceptions held by local variables of its traceback's frames,
    recursively."""
    seen: set[int] = set()
    out: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        stack.extend((current.__cause__, current.__context__))
        tb = current.__traceback__
        while tb is not None:
            stack.extend(v for v in tb.tb_frame.f_locals.values() if isinstance(v, BaseException))
            tb = tb.tb_next
    return out


def assert_secret_absent(error: BaseException, *secrets: str) -> None:
    """Fail when any of ``secrets`` appears in ``str``, ``repr`` or ``args`` of an exception
    reachable from ``error`` (see :func:`reachable_exceptions`), or in the text of
    ``traceback.format_exception(error)``. The failure names where, never the secret."""
    needles = [s for s in secrets if s]
    assert needles, "give the secret(s) to look for"
    for found in reachable_exceptions(error):
        for text in (str(found), repr(found), repr(found.args)):
            for needle in needles:
                assert needle not in text, (
                    f"a {type(found).__name__} reachable from the {type(error).__name__} "
                    "holds the secret"
                )
    formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for needle in needles:
        assert needle not in formatted, "the formatted traceback holds the secret"
