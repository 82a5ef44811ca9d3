"""Error messages a provider can show: the human part of an error body, with no secret in it.

:func:`error_message` reads an API's error body, :func:`scrub` takes a secret out of a
message (whole or cut off: :func:`mask_secret`) and cuts it to a readable length, and
:func:`clean_error` readies an exception to be raised with no secret anywhere in its exception
chain.
"""

from __future__ import annotations

import re
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


#: An echoed ``Authorization`` value (a token with a digit or a symbol in it, not a word): a
#: credential whatever key it holds (a ``Basic`` one is built from a URL's ``user:password``,
#: which is not the provider's key).
_AUTH_VALUE = re.compile(
    r"\b(Bearer|Basic)\s+(?=[A-Za-z.~]*[0-9+/=_-])[A-Za-z0-9+/=._~-]{7,}[A-Za-z0-9+/=_~-]"
)


#: How many first characters of a key make a cut-off key (an excerpt that ends inside it).
KEY_HEAD = 8


def mask_secret(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by ``***``, and so is a cut-off copy of it: its
    first :data:`KEY_HEAD` characters or more, as far as they match (an excerpt of an error
    body or an answer cut inside the key)."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    head = secret[:KEY_HEAD]
    if len(secret) <= KEY_HEAD or head not in text:
        return text
    out: list[str] = []
    start = 0
    while (found := text.find(head, start)) >= 0:
        end = found + len(head)
        while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
            end += 1
        out += [text[start:found], "***"]
        start = end
    out.append(text[start:])
    return "".join(out)


def scrub(message: str, secret: str | SecretStr | None, *, limit: int = MAX_MESSAGE) -> str:
    """``message`` with ``secret`` (whole or cut off, see :func:`mask_secret`), and any
    echoed ``Bearer`` / ``Basic`` credential, replaced by ``***``, cut to ``limit``
    characters."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if value:
        message = mask_secret(message, value)
    message = _AUTH_VALUE.sub(r"\1 ***", message)
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
                text = mask_secret(text, value)
            return text

        error.args = tuple(clean(a) if isinstance(a, str) else a for a in error.args)
        if isinstance(error, ProviderError):
            error.message = clean(error.message)
    return error


__all__ = ["KEY_HEAD", "MAX_MESSAGE", "clean_error", "error_message", "mask_secret", "scrub"]
