"""A correct scripted LLM, and LLMs that each break one rule.

The reference answers from the last message, honours ``response_format`` (a JSON object, or
a document valid for the schema), gives log-probs when asked, and with ``fault`` set meets it
the way a hosted provider does: its "SDK" raises an exception that quotes the API key, which
the provider translates into a clean :class:`memsift.LLMError` raised outside the ``except``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from memsift.completions import Completion, LLMCapabilities, TokenLogprob, Usage, format_kind
from memsift.errors import LLMError, LLMResponseError
from memsift.interfaces import LLM, LLMConfig
from memsift.kit.messages import clean_error

#: The key the scripted LLMs are given in the suite.
SECRET = "sk-scripted-0123456789abcdef"


class ScriptedLLMConfig(LLMConfig):
    model: str = "scripted-llm"
    api_key: SecretStr = SecretStr(SECRET)
    fault: str | None = None


class SDKError(Exception):
    """What a vendor SDK raises: its message quotes the request, key included."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _instance(schema: Mapping[str, Any], text: str) -> Any:
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            k: _instance(props.get(k, {"type": "string"}), text) for k in schema.get("required", [])
        }
    if kind == "array":
        return [_instance(schema.get("items", {"type": "string"}), text)]
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return True
    return text


class ScriptedLLM(LLM):
    """Answers with the last message's content, as JSON when asked for JSON."""

    config: ScriptedLLMConfig

    @property
    def capabilities(self) -> LLMCapabilities:
        return LLMCapabilities(json_mode=True, json_schema=True, logprobs=True)

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        try:
            self._send()
        except SDKError as exc:
            error = self._translate(exc)
        else:
            return self._answer(messages, response_format, logprobs)
        raise clean_error(error, self.config.api_key)

    async def acomplete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        await asyncio.sleep(0)
        return self.complete(messages, **options)

    def _send(self) -> None:
        """The scripted transport: raises like an SDK for the configured fault."""
        key = self.config.api_key.get_secret_value()
        fault = self.config.fault
        if fault == "401":
            raise SDKError(f"Error code: 401 - Incorrect API key provided: {key}", 401)
        if fault == "429":
            raise SDKError(f"Error code: 429 - rate limited for key {key}", 429)
        if fault == "500":
            raise SDKError("Error code: 500 - server error", 500)
        if fault == "timeout":
            raise SDKError("Request timed out.")
        if fault == "malformed":
            raise SDKError("Expecting value: line 1 column 1 (char 0)", 200)

    def _translate(self, exc: SDKError) -> LLMError:
        if self.config.fault == "timeout":
            return LLMError("scripted", "timed out after 0.1 s")
        if exc.status == 200:
            return LLMResponseError("scripted", "malformed response: the body is not JSON")
        return LLMError("scripted", "request failed", status=exc.status)

    def _answer(
        self,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        logprobs: int | None,
    ) -> Completion:
        content = messages[-1]["content"] if messages else ""
        kind = format_kind(response_format)
        if kind == "json_schema" and response_format is not None:
            text = json.dumps(_instance(response_format["json_schema"]["schema"], content))
        elif kind == "json_object":
            text = json.dumps({"answer": content})
        else:
            text = content
        tokens = None
        if logprobs is not None:
            pieces = text.split(" ")
            tokens = tuple(
                TokenLogprob(p, -0.25, ((p, -0.25), (p + "~", -2.0))[: max(logprobs, 1)])
                for p in pieces
            )
        return Completion(text, logprobs=tokens, usage=Usage(3, len(text.split())))


class ProseAroundJSON(ScriptedLLM):
    """Wraps the JSON answer in prose ("Sure! Here it is: {...}")."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        answer = super().complete(messages, **options).text
        fmt = options.get("response_format")
        return Completion(f"Sure! Here it is: {answer}" if fmt else answer)


class MutatesMessages(ScriptedLLM):
    """Drops the system message from the caller's list."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        if isinstance(messages, list) and messages and messages[0].get("role") == "system":
            messages.pop(0)
        return super().complete(messages, **options)


class RawSDKErrorOn401(ScriptedLLM):
    """Lets the SDK's exception out on a 401 (its message quotes the key)."""

    def _translate(self, exc: SDKError) -> LLMError:
        if exc.status == 401:
            raise exc
        return super()._translate(exc)


class KeyInMessage(ScriptedLLM):
    """Puts the SDK's message, key included, into the LLMError (cut from the chain, but
    never scrubbed)."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        try:
            self._send()
        except SDKError as exc:
            error = LLMError("scripted", str(exc), status=exc.status)
        else:
            return self._answer(messages, options.get("response_format"), options.get("logprobs"))
        raise error


class ChainsTheSDKError(ScriptedLLM):
    """Raises ``LLMError(...) from exc``: the SDK's exception rides along as ``__cause__``."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        try:
            self._send()
        except SDKError as exc:
            raise self._translate(exc) from exc
        return self._answer(messages, options.get("response_format"), options.get("logprobs"))


class SuppressedContext(ScriptedLLM):
    """Raises ``LLMError(...) from None`` inside the ``except``: the SDK's exception is
    still there, as the suppressed ``__context__``."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        try:
            self._send()
        except SDKError as exc:
            raise self._translate(exc) from None
        return self._answer(messages, options.get("response_format"), options.get("logprobs"))


class TimeoutWithoutSaying(ScriptedLLM):
    """Reports a timeout as a bare "request failed"."""

    def _translate(self, exc: SDKError) -> LLMError:
        if self.config.fault == "timeout":
            return LLMError("scripted", "request failed")
        return super()._translate(exc)


class LosesTheStatus(ScriptedLLM):
    """Raises LLMError without the HTTP status on 429."""

    def _translate(self, exc: SDKError) -> LLMError:
        if exc.status == 429:
            return LLMError("scripted", "rate limited")
        return super()._translate(exc)


class MalformedAsValueError(ScriptedLLM):
    """Lets a JSON decoding error out of a malformed success."""

    def _translate(self, exc: SDKError) -> LLMError:
        if exc.status == 200:
            raise ValueError(str(exc))
        return super()._translate(exc)


class KeyInRepr(ScriptedLLM):
    """Shows its key in its repr."""

    def __repr__(self) -> str:
        return f"KeyInRepr(api_key={self.config.api_key.get_secret_value()!r})"


class LogprobsGarbage(ScriptedLLM):
    """Gives "log-probs" that are probabilities in percent (positive numbers)."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        answer = super().complete(messages, **options)
        if answer.logprobs is None:
            return answer
        garbage = tuple(TokenLogprob(t.token, 87.5, ((t.token, 87.5),)) for t in answer.logprobs)
        return Completion(answer.text, logprobs=garbage, usage=answer.usage)


class LogprobsUnasked(ScriptedLLM):
    """Answers with log-probs even when none were asked for."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        options["logprobs"] = options.get("logprobs") or 1
        return super().complete(messages, **options)


class DeclaresLogprobsGivesNone(ScriptedLLM):
    """Declares capabilities.logprobs, and never returns any."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        options["logprobs"] = None
        return super().complete(messages, **options)


class IgnoresResponseFormat(ScriptedLLM):
    """Declares json_schema but answers in plain text whatever the response_format."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        options["response_format"] = None
        return super().complete(messages, **options)


class SchemaIgnored(ScriptedLLM):
    """Declares json_schema but answers any JSON object, not one valid for the schema."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        if options.get("response_format") is not None:
            options["response_format"] = {"type": "json_object"}
        return super().complete(messages, **options)


class NoUsage(ScriptedLLM):
    """Answers with ``usage=None``."""

    def complete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        answer = super().complete(messages, **options)
        return Completion(answer.text, logprobs=answer.logprobs, usage=None)  # type: ignore[arg-type]


class BoundToFirstLoop(ScriptedLLM):
    """Keeps the event loop of its first async call, like an async client built once: a
    call on a later loop fails with "Event loop is closed"."""

    _loop: asyncio.AbstractEventLoop | None = None

    async def acomplete(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return await self._loop.run_in_executor(None, lambda: self.complete(messages, **options))


REFERENCE = ScriptedLLM

#: breakage id -> broken LLM class; the suite must fail each one.
BROKEN: dict[str, type[ScriptedLLM]] = {
    "prose-around-json": ProseAroundJSON,
    "mutates-messages": MutatesMessages,
    "raw-sdk-error-on-401": RawSDKErrorOn401,
    "key-in-message": KeyInMessage,
    "chains-the-sdk-error": ChainsTheSDKError,
    "suppressed-context-holds-the-key": SuppressedContext,
    "timeout-without-saying": TimeoutWithoutSaying,
    "loses-the-429-status": LosesTheStatus,
    "malformed-as-valueerror": MalformedAsValueError,
    "key-in-repr": KeyInRepr,
    "logprobs-garbage": LogprobsGarbage,
    "logprobs-unasked": LogprobsUnasked,
    "declares-logprobs-gives-none": DeclaresLogprobsGivesNone,
    "ignores-response-format": IgnoresResponseFormat,
    "schema-ignored": SchemaIgnored,
    "no-usage": NoUsage,
    "bound-to-first-event-loop": BoundToFirstLoop,
}
