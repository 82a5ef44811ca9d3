"""The ``anthropic`` LLM: Anthropic's Messages API through the official SDK.

One request per call (``POST /v1/messages``). The chat messages are mapped as
:mod:`memsift_anthropic.mapping` describes; JSON is asked for by instruction (or, with
``structured_outputs``, a JSON schema through ``output_config.format``) and the answer is
parsed strictly. The API returns no token log-probabilities: ``logprobs`` is accepted and
the answer's ``logprobs`` is ``None``.

Retries are the SDK's own. It waits for the server's Retry-After however long it is, so a
response hook marks a retryable answer whose Retry-After exceeds ``max_retry_wait`` as not
to be retried (the SDK's ``x-should-retry: false``): the call then fails at once with the
server's status. Errors are :class:`memsift.LLMError` (an answer that is not what was asked
for: :class:`memsift.LLMResponseError`) naming the provider and the HTTP status, with the
key scrubbed from the message and nothing chained to them (the SDK's exception holds the
raw error body, which may echo the key).

The SDK is imported when the provider is built, never when the plugin loads.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsift import (
    LLM,
    Completion,
    InvalidInputError,
    LLMCapabilities,
    LLMError,
    LLMResponseError,
    Usage,
)
from memsift.completions import ResponseFormat, format_kind
from memsift.kit.clients import ClientPair
from memsift.kit.hosted import (
    clean_error,
    error_message,
    retry_after,
    retryable_status,
    scrub,
)
from memsift_anthropic.config import API_KEY_ENV, AnthropicConfig
from memsift_anthropic.mapping import (
    expects_object,
    json_instruction,
    map_messages,
    parse_json_answer,
    with_instruction,
)

if TYPE_CHECKING:
    import httpx2
    from anthropic import Anthropic, AsyncAnthropic

log = logging.getLogger("memsift_anthropic")

PROVIDER = "anthropic"
#: The SDK's header that tells it whether to retry a response.
SHOULD_RETRY_HEADER = "x-should-retry"
#: The header the SDK numbers its attempts with (0 for the first).
RETRY_COUNT_HEADER = "x-stainless-retry-count"
#: Stop reasons that mean the answer was cut short.
TRUNCATED = frozenset({"max_tokens", "model_context_window_exceeded"})
#: Anthropic's stop reasons in the chat-completions vocabulary of ``Completion.finish_reason``.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: The prefill of a JSON object answer.
OBJECT_PREFILL = "{"


@dataclass(frozen=True)
class _Request:
    """One call, ready to send: the SDK's keyword arguments, and how to read the answer."""

    arguments: dict[str, Any]
    kind: str | None
    schema: Mapping[str, Any] | None
    prefix: str


class AnthropicLLM(LLM):
    """Answers chat messages with Anthropic's Messages API (``Anthropic.messages.create``)."""

    config: AnthropicConfig

    def __init__(self, config: AnthropicConfig) -> None:
        super().__init__(config)
        # Load the SDK now, so the first call does not pay for the import.
        importlib.import_module("anthropic")
        self._clients: ClientPair[Anthropic, AsyncAnthropic] = ClientPair(
            self._build_sync, self._build_async
        )

    @property
    def capabilities(self) -> LLMCapabilities:
        """No JSON mode and no log-probabilities; a JSON schema natively only with
        ``structured_outputs``."""
        return LLMCapabilities(
            json_mode=False, json_schema=self.config.structured_outputs, logprobs=False
        )

    # ------------------------------------------------------------------ completing

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        request = self._request(messages, response_format, temperature, max_tokens, logprobs)
        client = self._sync_client()
        try:
            answer = client.messages.create(**request.arguments)
        except Exception as exc:  # every SDK and transport error, translated below
            failure = self._error(exc)
        else:
            return self._completion(answer, request)
        raise clean_error(failure, self.config.api_key)

    async def acomplete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        request = self._request(messages, response_format, temperature, max_tokens, logprobs)
        client = self._async_client()
        try:
            answer = await client.messages.create(**request.arguments)
        except Exception as exc:
            failure = self._error(exc)
        else:
            return self._completion(answer, request)
        raise clean_error(failure, self.config.api_key)

    def _request(
        self,
        messages: Sequence[Mapping[str, str]],
        response_format: ResponseFormat | None,
        temperature: float | None,
        max_tokens: int | None,
        logprobs: int | None,
    ) -> _Request:
        cfg = self.config
        try:
            kind = format_kind(response_format)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        schema: Mapping[str, Any] | None = None
        if kind == "json_schema" and response_format is not None:
            schema = response_format["json_schema"]["schema"]
        tokens = cfg.max_tokens if max_tokens is None else max_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise InvalidInputError(f"max_tokens must be a positive integer, got {tokens!r}")
        if logprobs is not None and (
            isinstance(logprobs, bool) or not isinstance(logprobs, int) or logprobs < 0
        ):
            raise InvalidInputError(f"logprobs must be None or an integer >= 0, got {logprobs!r}")
        turns = map_messages(messages)
        system = turns.system
        prefix = ""
        arguments: dict[str, Any] = {"model": cfg.model, "max_tokens": tokens}
        if kind == "json_schema" and cfg.structured_outputs:
            arguments["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif kind is not None:
            system = with_instruction(system, json_instruction(kind, schema))
        chat = turns.messages
        if kind is not None and turns.ends_with_assistant:
            # The caller's prefill: a JSON answer is the whole value, so it goes in front.
            prefix = chat[-1]["content"]
        elif (
            kind is not None
            and cfg.json_prefill
            and expects_object(kind, schema)
            and "output_config" not in arguments
        ):
            prefix = OBJECT_PREFILL
            chat = [*chat, {"role": "assistant", "content": prefix}]
        arguments["messages"] = chat
        if system is not None:
            arguments["system"] = system
        if cfg.temperature is not None:
            # The SDK has no parameter for it (since 1.0); models that take one read it here.
            value = cfg.temperature if temperature is None else temperature
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise InvalidInputError(f"temperature must be a number in [0, 1], got {value!r}")
            arguments["extra_body"] = {"temperature": float(value)}
        log.debug(
            "anthropic: %s, %d turns, format %s, max_tokens %d",
            cfg.model,
            len(arguments["messages"]),
            kind or "text",
            tokens,
        )
        return _Request(arguments, kind, schema, prefix)

    def _completion(self, answer: Any, request: _Request) -> Completion:
        """The Completion of a Messages API answer; LLMResponseError when it is not one, or
        not what was asked for."""
        content = getattr(answer, "content", None)
        if not isinstance(content, list):
            raise LLMResponseError(PROVIDER, "malformed response: the body is not a message")
        parts: list[str] = []
        for block in content:
            if _field(block, "type") == "text":
                text = _field(block, "text")
                if not isinstance(text, str):
                    raise LLMResponseError(PROVIDER, "malformed response: a text block has no text")
                parts.append(text)
        text = request.prefix + "".join(parts)
        stop = _field(answer, "stop_reason")
        stop_reason = stop if isinstance(stop, str) else None
        usage = _usage(_field(answer, "usage"))
        model = _field(answer, "model")
        if request.kind is not None:
            text = self._json_text(text, stop_reason, request)
        return Completion(
            text=text,
            logprobs=None,
            usage=usage,
            finish_reason=FINISH_REASONS.get(stop_reason, stop_reason) if stop_reason else None,
            model=model if isinstance(model, str) and model else self.config.model,
        )

    def _json_text(self, text: str, stop_reason: str | None, request: _Request) -> str:
        assert request.kind is not None
        if stop_reason in TRUNCATED:
            raise LLMResponseError(
                PROVIDER,
                f"truncated answer: it stopped at {stop_reason} before the JSON was complete "
                f"(max_tokens {request.arguments['max_tokens']}; raise max_tokens)",
            )
        if stop_reason == "refusal":
            raise LLMResponseError(PROVIDER, "the model refused to answer; no JSON was given")
        try:
            return parse_json_answer(text, request.kind, request.schema)
        except ValueError as exc:
            problem = str(exc)
        raise LLMResponseError(PROVIDER, scrub(problem, self.config.api_key))

    # ------------------------------------------------------------------ errors

    def _error(self, exc: Exception) -> LLMError:
        """An LLMError for an SDK or transport error, its message free of the key.

        The caller raises it outside the ``except`` block, through ``clean_error``, so
        that the SDK's exception is not chained to it.
        """
        from anthropic import (
            APIConnectionError,
            APIResponseValidationError,
            APIStatusError,
            APITimeoutError,
        )

        cfg = self.config
        if isinstance(exc, LLMError):
            return exc
        retries = _retries_taken(exc)
        after = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""
        if isinstance(exc, APITimeoutError):
            message = f"timed out: no answer within the request timeout of {cfg.timeout:g} s{after}"
            return LLMError(PROVIDER, scrub(message, cfg.api_key))
        if isinstance(exc, APIConnectionError):
            cause = exc.__cause__
            detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
            message = f"could not reach the API at {self._base_url()}{detail}{after}"
            return LLMError(PROVIDER, scrub(message, cfg.api_key))
        if isinstance(exc, APIStatusError):
            status = exc.status_code if isinstance(exc.status_code, int) else None
            body = exc.body
            kind = _error_type(body)
            text = error_message(body) or "request failed"
            if kind is not None:
                message = text if text.startswith(kind) else f"{kind}: {text}"
            else:
                message = f"{_status_words(status)}{text}"
            if status in (401, 403):
                message += f" (check the API key: the config's api_key or ${API_KEY_ENV[0]})"
            headers = getattr(exc.response, "headers", None)
            wait = retry_after(headers) if headers is not None else None
            if retryable_status(status) and wait is not None and wait > cfg.max_retry_wait:
                message += (
                    f" (Retry-After {wait:g} s exceeds max_retry_wait {cfg.max_retry_wait:g} s: "
                    "not retried)"
                )
            else:
                message += after
            return LLMError(PROVIDER, scrub(message, cfg.api_key), status=status)
        if isinstance(exc, APIResponseValidationError):
            return LLMResponseError(PROVIDER, "malformed response: the body is not a message")
        if isinstance(exc, ValueError):  # a body the SDK could not decode (not JSON)
            return LLMResponseError(
                PROVIDER, f"malformed response: the body is not valid JSON ({type(exc).__name__})"
            )
        return LLMError(PROVIDER, scrub(f"{type(exc).__name__}: {exc}", cfg.api_key))

    def _base_url(self) -> str:
        return self.config.base_url or "https://api.anthropic.com"

    # ------------------------------------------------------------------ clients

    def _api_key(self) -> str:
        key = self.config.api_key
        if key is None or not key.get_secret_value():  # the config validator rules this out
            raise LLMError(PROVIDER, f"no API key: set api_key or {API_KEY_ENV[0]}")
        return key.get_secret_value()

    def _build_sync(self) -> Anthropic:
        from anthropic import Anthropic, DefaultHttpxClient

        cfg = self.config
        http = DefaultHttpxClient(
            timeout=cfg.timeout, event_hooks={"response": [self._check_retry]}
        )
        return Anthropic(
            api_key=self._api_key(),
            base_url=cfg.base_url,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            http_client=http,
        )

    def _build_async(self) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

        cfg = self.config
        http = DefaultAsyncHttpxClient(
            timeout=cfg.timeout, event_hooks={"response": [self._acheck_retry]}
        )
        return AsyncAnthropic(
            api_key=self._api_key(),
            base_url=cfg.base_url,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            http_client=http,
        )

    def _sync_client(self) -> Anthropic:
        return self._clients.sync()

    def _async_client(self) -> AsyncAnthropic:
        """The async client of the running event loop (its connections belong to it)."""
        return self._clients.for_running_loop()

    def _check_retry(self, response: httpx2.Response) -> None:
        """Tell the SDK not to retry when the server asks for a wait over the cap."""
        if retryable_status(response.status_code):
            wait = retry_after(response.headers)
            if wait is not None and wait > self.config.max_retry_wait:
                response.headers[SHOULD_RETRY_HEADER] = "false"

    async def _acheck_retry(self, response: httpx2.Response) -> None:
        self._check_retry(response)

    def close(self) -> None:
        """Close the SDK clients; the next call opens new ones."""
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()


def _field(item: object, name: str) -> object:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(usage: object) -> Usage:
    """Usage: the prompt's tokens are the input tokens, cached or not; and the answer's."""
    prompt = sum(
        _count(_field(usage, key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt_tokens=prompt, completion_tokens=_count(_field(usage, "output_tokens")))


def _error_type(body: object) -> str | None:
    """The ``error.type`` of an error body (``rate_limit_error``, ``overloaded_error``...)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    return kind if isinstance(kind, str) and kind else None


def _status_words(status: int | None) -> str:
    if status == 429:
        return "rate limited: "
    if status == 529:
        return "overloaded: "
    return ""


def _retries_taken(exc: Exception) -> int:
    """How many retries the SDK made before giving up (from its last request's header)."""
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    try:
        value = headers.get(RETRY_COUNT_HEADER) if headers is not None else None
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
