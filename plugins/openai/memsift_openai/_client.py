"""The SDK's clients (a sync one, and an async one per event loop) and the translation of the
SDK's errors into memsift's, shared by the LLM and the embedder.

The SDK is imported when a client is first needed, never when the plugin loads. Retries are
the SDK's own; it would wait for a Retry-After of up to 2 minutes, so a response hook marks a
retryable answer whose Retry-After exceeds :data:`~memsift_openai.config.MAX_RETRY_WAIT`
(30 s) as not to be retried (the SDK's ``x-should-retry: false``): the call then fails at
once with the server's status. Errors carry the provider name, the HTTP status and the
server's message with the API key scrubbed out; they are raised outside of any ``except``
block, so the SDK's exception (which holds the raw error body and the request) is never
chained to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from memsift import ProviderError
from memsift.kit.clients import ClientPair
from memsift.kit.hosted import error_message, retry_after, retryable_status, scrub
from memsift_openai.config import API_KEY_ENV, DEFAULT_BASE_URL, MAX_RETRY_WAIT, OpenAIConnection

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
        from openai import DefaultHttpxClient, OpenAI

        hooks = {"response": [self._check_retry]}
        http = DefaultHttpxClient(timeout=self.config.timeout, event_hooks=hooks)
        return OpenAI(**self._options(), http_client=http)

    def _build_async(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        hooks = {"response": [self._acheck_retry]}
        http = DefaultAsyncHttpxClient(timeout=self.config.timeout, event_hooks=hooks)
        return AsyncOpenAI(**self._options(), http_client=http)

    def _check_retry(self, response: Any) -> None:
        """Tell the SDK not to retry (its ``x-should-retry: false``) when the server asks
        for a longer wait than :data:`MAX_RETRY_WAIT`: the call then fails at once."""
        if too_long_a_wait(response.status_code, response.headers):
            response.headers["x-should-retry"] = "false"

    async def _acheck_retry(self, response: Any) -> None:
        self._check_retry(response)


def too_long_a_wait(status: int | None, headers: Any) -> float | None:
    """The Retry-After of a retryable answer when it exceeds :data:`MAX_RETRY_WAIT`, else
    None."""
    if not retryable_status(status) or headers is None:
        return None
    wait = retry_after(headers)
    return wait if wait is not None and wait > MAX_RETRY_WAIT else None


@dataclass(frozen=True)
class Failure:
    """A failed request, translated: the ``error`` to raise (already scrubbed) and what the
    server said, scrubbed of the key and lower-cased (``detail``: its message, ``param`` and
    body), for the caller to recognise a refused parameter."""

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
        param = (
            scrub(exc.param, secret, limit=len(exc.param)) if isinstance(exc.param, str) else None
        )
        said = error_message(exc.body) or exc.message
        # scrubbed before it is lower-cased: the Failure is a local of the caller's frame,
        # which error trackers show with the traceback
        text = f"{said} {param or ''} {_body_text(exc.body, secret)}"
        detail = scrub(text, secret, limit=len(text)).lower()
        message = said
        if status in (401, 403):
            message += f" (check the API key: the config's api_key or ${API_KEY_ENV[0]})"
        elif status == 404:
            message += f" (check the model and base_url {url})"
        elif status in (408, 409, 429) or status >= 500:
            wait = too_long_a_wait(status, getattr(exc.response, "headers", None))
            if wait is not None:
                message += f" (Retry-After {wait:g} s exceeds {MAX_RETRY_WAIT:g} s: not retried)"
            else:
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


def _body_text(body: object, secret: SecretStr | None) -> str:
    """The body as text, its first 2,000 characters (the key scrubbed before the cut)."""
    try:
        text = json.dumps(body)
    except (TypeError, ValueError):
        text = str(body)
    return scrub(text, secret, limit=2000)
