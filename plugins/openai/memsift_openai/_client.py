"""The SDK's clients (a sync one, and an async one per event loop) and the translation of the
SDK's errors into memsift's, shared by the LLM and the embedder.

The SDK is imported when a client is first needed, never when the plugin loads. Errors carry
the provider name, the HTTP status and the server's message with the API key scrubbed out;
they are raised outside of any ``except`` block, so the SDK's exception (which holds the raw
error body and the request) is never chained to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from memsift import ProviderError
from memsift.kit.clients import ClientPair
from memsift.kit.hosted import error_message, scrub
from memsift_openai.config import API_KEY_ENV, DEFAULT_BASE_URL, OpenAIConnection

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

PROVIDER = "openai"
#: The key given to the SDK when a server needs none (the SDK insists on one).
NO_KEY = "no-key-required"


class Clients(ClientPair["OpenAI", "AsyncOpenAI"]):
    """The SDK clients of one provider: built on first use, rebuilt after :meth:`close`."""

    def __init__(self, config: OpenAIConnection) -> None:
        self.config = config
        super().__init__(self._build_sync, self._build_async)

    @property
    def base_url(self) -> str:
        return self.config.base_url or DEFAULT_BASE_URL

    @property
    def shown_url(self) -> str:
        """The base URL as messages and reprs show it (without any user:password@)."""
        return shown_url(self.base_url)

    def _options(self) -> dict[str, Any]:
        cfg = self.config
        key = cfg.api_key.get_secret_value() if cfg.api_key is not None else ""
        return {
            "api_key": key or NO_KEY,
            "base_url": self.base_url,
            "organization": cfg.organization,
            "project": cfg.project,
            "timeout": cfg.timeout,
            "max_retries": cfg.max_retries,
        }

    def _build_sync(self) -> OpenAI:
        from openai import OpenAI

        return OpenAI(**self._options())

    def _build_async(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(**self._options())


@dataclass(frozen=True)
class Failure:
    """A failed request, translated: the ``error`` to raise (already scrubbed) and what the
    server said, lower-cased (``detail``: its message, ``param`` and body), for the caller
    to recognise a refused parameter."""

    error: ProviderError
    status: int | None = None
    param: str | None = None
    detail: str = ""


def translate(
    exc: BaseException,
    config: OpenAIConnection,
    *,
    error: type[ProviderError] = ProviderError,
    response_error: type[ProviderError] = ProviderError,
) -> Failure:
    """An SDK or transport exception as a memsift error of class ``error`` (a body the SDK
    could not read: ``response_error``), with no secret in its message."""
    import openai

    secret = config.api_key
    url = shown_url(config.base_url or DEFAULT_BASE_URL)
    status: int | None = None
    param: str | None = None
    detail = ""
    cls = error
    if isinstance(exc, openai.APITimeoutError):
        message = f"timed out: no answer from {url} within the timeout of {config.timeout:g} s"
        message += _retried(config)
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        reason = f"{type(cause).__name__}" if cause is not None else exc.message
        message = f"could not connect to {url} ({reason}){_retried(config)}"
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        param = exc.param if isinstance(exc.param, str) else None
        said = error_message(exc.body) or exc.message
        detail = f"{said} {param or ''} {_body_text(exc.body)}".lower()
        message = said
        if status in (401, 403):
            message += f" (check the API key: the config's api_key or ${API_KEY_ENV[0]})"
        elif status == 404:
            message += f" (check the model and base_url {url})"
        elif status in (408, 409, 429) or status >= 500:
            message += _retried(config)
    elif isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        cls = response_error
        message = "malformed response: the body is not a valid answer"
    elif isinstance(exc, openai.OpenAIError):
        message = f"{type(exc).__name__}: {exc}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return Failure(cls(PROVIDER, scrub(message, secret), status=status), status, param, detail)


def shown_url(url: str) -> str:
    """``url`` without the credentials a URL may carry (``user:password@``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _retried(config: OpenAIConnection) -> str:
    retries = config.max_retries
    if not retries:
        return ""
    return f" (retried up to {retries} {'time' if retries == 1 else 'times'})"


def _body_text(body: object) -> str:
    try:
        return json.dumps(body)[:2000]
    except (TypeError, ValueError):
        return str(body)[:2000]
