"""Error messages a provider can show: the human part of an error body, with no secret in it.

:func:`error_message` reads an API's error body, :func:`scrub` takes a secret out of a
message and cuts it to a readable length, and :func:`clean_error` readies an exception to be
raised with no secret anywhere in its exception chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from pydantic import SecretStr

from memsift.errors import ProviderError

E = TypeVar("E", bound=BaseException)

#: Longest message :func:`scrub` keeps.
MAX_MESSAGE = 500


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


def clean_error(error: E, *secrets: str | SecretStr | None) -> E:
    """``error``, ready to be raised with nothing secret reachable from it.

    Its chain is cut (``__cause__`` and ``__context__``: an SDK's exception, a pydantic
    ValidationError quoting ``input_value``, an error body echoing the key), and each of
    ``secrets`` is scrubbed from its message. Raise the result *outside* any ``except``
    block, or Python chains the exception being handled onto it again::

        try:
            answer = client.call()
        except SDKError as exc:
            failure = translate(exc)
        else:
            return answer
        raise clean_error(failure, api_key)
    """
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = False
    raw = (s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets)
    values = [v for v in raw if v]
    if values:

        def clean(text: str) -> str:
            for value in values:
                text = text.replace(value, "***")
            return text

        error.args = tuple(clean(a) if isinstance(a, str) else a for a in error.args)
        if isinstance(error, ProviderError):
            error.message = clean(error.message)
    return error


__all__ = ["MAX_MESSAGE", "clean_error", "error_message", "scrub"]
