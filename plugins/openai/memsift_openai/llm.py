"""The ``openai`` LLM: chat completions on OpenAI's API or any OpenAI-compatible server.

What a server can do is learned from its answers and remembered for the provider's life
(unless the config's ``capabilities`` say it):

- ``logprobs``: asked with ``logprobs: true, top_logprobs: N``. A server that answers without
  them (it ignores the parameter), answers with entries that are not log-probabilities, or
  refuses the parameter (a 400 or 422 that names it, or llama.cpp's 500 that does) is not
  asked again: the capability turns False, and the answers carry ``logprobs=None``;
- ``json_schema``: sent natively. A server that refuses it (a 400, 422 or 500 naming the
  response format) gets ``{"type": "json_object", "schema": ...}`` from then on (llama.cpp
  turns the schema into a grammar; others ignore it), then a plain ``json_object``, then no
  ``response_format`` at all, each with the schema as an instruction;
- ``json_object``: sent natively (with an instruction naming JSON when no message does, as
  OpenAI requires); a server that refuses it gets a ``json_schema`` of any object, then the
  instruction alone;
- ``temperature`` and ``top_p``: a server that refuses them (OpenAI's reasoning models take
  only their default) is sent none from then on; ``max_tokens``: sent as
  ``max_completion_tokens`` to OpenAI and ``max_tokens`` elsewhere, switched when refused.

An answer asked as JSON is checked: it must parse (one surrounding Markdown code fence is
taken off), be an object for ``json_object`` and be valid against the schema for
``json_schema`` (:func:`memsift.completions.schema_problem`); otherwise, as for an answer
without choices or content, a refusal, or one cut off by the token limit
(``finish_reason: "length"``), the call raises :class:`memsift.LLMResponseError`.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memsift import (
    LLM,
    Completion,
    InvalidInputError,
    LLMCapabilities,
    LLMError,
    LLMResponseError,
    TokenLogprob,
    Usage,
)
from memsift.completions import ResponseFormat, format_kind, schema_problem
from memsift.kit.hosted import clean_error, scrub
from memsift_openai._client import PROVIDER, Clients, Failure, translate
from memsift_openai.config import OpenAILLMConfig, is_openai_url

log = logging.getLogger("memsift_openai")

#: Most alternatives per token the API gives (``top_logprobs``); more are asked as this many.
MAX_TOP_LOGPROBS = 20
#: Roles a message may have.
ROLES = ("system", "user", "assistant")
#: Most parameter refusals one call adapts to before it gives up.
MAX_ADJUSTMENTS = 6

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_ANY_OBJECT = {"type": "object"}


@dataclass
class _Detected:
    """What the server was found to take (None: not known yet, assumed yes)."""

    json_object: bool | None = None
    json_schema: bool | None = None
    schema_hint: bool | None = None
    logprobs: bool | None = None
    temperature: bool = True
    top_p: bool = True
    token_param: str = "max_tokens"


@dataclass(frozen=True)
class _Ask:
    """One call's request, before the server's capabilities shape it."""

    messages: list[dict[str, str]]
    kind: str | None
    response_format: dict[str, Any] | None
    schema: dict[str, Any] | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    logprobs: int | None


class OpenAILLM(LLM):
    """Chat completions through the official ``openai`` SDK (``OpenAI`` / ``AsyncOpenAI``)."""

    config: OpenAILLMConfig

    def __init__(self, config: OpenAILLMConfig) -> None:
        super().__init__(config)
        importlib.import_module("openai")  # load the SDK now, not in the first call
        self._clients = Clients(config)
        self._lock = threading.Lock()
        caps = config.capabilities
        self._detected = _Detected(
            json_object=caps.json_object,
            json_schema=caps.json_schema,
            logprobs=caps.logprobs,
            token_param="max_completion_tokens" if is_openai_url(config.base_url) else "max_tokens",
        )

    def __repr__(self) -> str:
        return f"OpenAILLM(model={self.config.model!r}, base_url={self._clients.shown_url!r})"

    @property
    def capabilities(self) -> LLMCapabilities:
        """What the server takes, as far as known: each is True until the server shows it
        does not (or the config's ``capabilities`` say so)."""
        found = self._detected
        return LLMCapabilities(
            json_mode=found.json_object is not False or found.json_schema is not False,
            json_schema=found.json_schema is not False,
            logprobs=found.logprobs is not False,
        )

    # ------------------------------------------------------------------ calls

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        ask = self._ask(messages, response_format, temperature, max_tokens, logprobs)
        client = self._clients.sync()
        failure: Failure | None = None
        for _ in range(MAX_ADJUSTMENTS + 1):
            args = self._arguments(ask)
            try:
                raw = client.chat.completions.with_raw_response.create(**args)
                body = raw.content
            except Exception as exc:
                failure = self._failure(exc)
            else:
                return self._read(body, ask, args)
            if not self._adapt(failure, args):
                break
        assert failure is not None
        raise clean_error(failure.error, self.config.api_key)

    async def acomplete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        ask = self._ask(messages, response_format, temperature, max_tokens, logprobs)
        client = self._clients.for_running_loop()
        failure: Failure | None = None
        for _ in range(MAX_ADJUSTMENTS + 1):
            args = self._arguments(ask)
            try:
                raw = await client.chat.completions.with_raw_response.create(**args)
                body = raw.content
            except Exception as exc:
                failure = self._failure(exc)
            else:
                return self._read(body, ask, args)
            if not self._adapt(failure, args):
                break
        assert failure is not None
        raise clean_error(failure.error, self.config.api_key)

    def close(self) -> None:
        """Close the SDK clients; a later call opens new ones."""
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    # ------------------------------------------------------------------ requests

    def _ask(
        self,
        messages: Sequence[Mapping[str, str]],
        response_format: ResponseFormat | None,
        temperature: float | None,
        max_tokens: int | None,
        logprobs: int | None,
    ) -> _Ask:
        try:
            kind = format_kind(response_format)
        except ValueError as exc:
            problem = str(exc)
        else:
            problem = ""
        if problem:
            raise InvalidInputError(problem)
        schema: dict[str, Any] | None = None
        if kind == "json_schema" and response_format is not None:
            schema = dict(response_format["json_schema"]["schema"])
        if logprobs is not None and (isinstance(logprobs, bool) or logprobs < 0):
            raise InvalidInputError(f"logprobs must be None or an integer >= 0, got {logprobs!r}")
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise InvalidInputError(f"max_tokens must be None or >= 1, got {max_tokens!r}")
        if temperature is not None and not 0 <= temperature <= 2:
            raise InvalidInputError(f"temperature must be in [0, 2], got {temperature!r}")
        cfg = self.config
        return _Ask(
            messages=_checked_messages(messages),
            kind=kind,
            response_format=None
            if response_format is None
            else copy.deepcopy(dict(response_format)),
            schema=schema,
            temperature=temperature if temperature is not None else cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=max_tokens if max_tokens is not None else cfg.max_tokens,
            logprobs=logprobs,
        )

    def _arguments(self, ask: _Ask) -> dict[str, Any]:
        """The arguments of ``chat.completions.create`` for ``ask``, as the server takes them."""
        found = self._detected
        args: dict[str, Any] = {"model": self.config.model}
        instruction: str | None = None
        if ask.kind == "json_schema" and ask.schema is not None:
            schema_text = json.dumps(ask.schema, ensure_ascii=False)
            if found.json_schema is not False:
                args["response_format"] = ask.response_format
            else:
                instruction = (
                    "Answer with a single JSON document, and nothing else, that is valid "
                    f"against this JSON schema: {schema_text}"
                )
                if found.json_object is not False:
                    fmt: dict[str, Any] = {"type": "json_object"}
                    if found.schema_hint is not False:
                        fmt["schema"] = ask.schema
                    args["response_format"] = fmt
        elif ask.kind == "json_object":
            if found.json_object is not False:
                args["response_format"] = {"type": "json_object"}
                if not any("json" in m["content"].lower() for m in ask.messages):
                    instruction = "Answer with a JSON object."
            else:
                instruction = "Answer with a single JSON object, and nothing else."
                if found.json_schema is not False:
                    args["response_format"] = {
                        "type": "json_schema",
                        "json_schema": {"name": "object", "schema": _ANY_OBJECT, "strict": False},
                    }
        args["messages"] = _with_instruction(ask.messages, instruction)
        if ask.temperature is not None and found.temperature:
            args["temperature"] = ask.temperature
        if ask.top_p is not None and found.top_p:
            args["top_p"] = ask.top_p
        if ask.max_tokens is not None:
            args[found.token_param] = ask.max_tokens
        if ask.logprobs is not None and found.logprobs is not False:
            args["logprobs"] = True
            args["top_logprobs"] = min(ask.logprobs, MAX_TOP_LOGPROBS)
        return args

    # ------------------------------------------------------------------ adapting

    def _adapt(self, failure: Failure, args: Mapping[str, Any]) -> bool:
        """Learn from a refused request; True when the next attempt asks differently."""
        status = failure.status
        if status not in (400, 422, 500):
            return False
        said = failure.detail
        param = (failure.param or "").lower()
        found = self._detected
        overrides = self.config.capabilities

        def names(*words: str) -> bool:
            return param in words if param else any(w in said for w in words)

        with self._lock:
            if "logprobs" in args and names("logprobs", "top_logprobs"):
                if overrides.logprobs is not None:
                    return False
                found.logprobs = False
                self._note("log-probabilities", status)
                return True
            fmt = args.get("response_format")
            if fmt is not None and names("response_format", "json_schema", "json_object"):
                return self._refused_format(fmt, status)
            if status == 500:
                return False  # llama.cpp refuses log-probs and formats with a 500; not others
            for key in ("temperature", "top_p"):
                if key in args and names(key):
                    setattr(found, key, False)
                    self._note(f"`{key}`", status)
                    return True
            token_param = found.token_param
            if token_param in args and names(token_param):
                other = (
                    "max_tokens"
                    if token_param == "max_completion_tokens"
                    else "max_completion_tokens"
                )
                found.token_param = other
                log.info(
                    "openai: %s refused %s; sending %s instead", self._where(), token_param, other
                )
                return True
        return False

    def _refused_format(self, fmt: Mapping[str, Any], status: int | None) -> bool:
        found = self._detected
        overrides = self.config.capabilities
        if fmt.get("type") == "json_schema":
            if overrides.json_schema is not None:
                return False
            found.json_schema = False
            self._note("response_format json_schema", status)
            return True
        if "schema" in fmt:
            found.schema_hint = False
            return True
        if overrides.json_object is not None:
            return False
        found.json_object = False
        self._note("response_format json_object", status)
        return True

    def _note(self, what: str, status: int | None) -> None:
        log.warning(
            "openai: %s does not take %s (HTTP %s); not asking for it again",
            self._where(),
            what,
            status,
        )

    def _where(self) -> str:
        return f"{self._clients.shown_url} ({self.config.model})"

    def _failure(self, exc: BaseException) -> Failure:
        return translate(exc, self.config, error=LLMError, response_error=LLMResponseError)

    # ------------------------------------------------------------------ answers

    def _read(self, body: bytes, ask: _Ask, args: Mapping[str, Any]) -> Completion:
        """The Completion in a response body; LLMResponseError when it is not one."""
        data, problem = _parse_json(body)
        if problem is None and not isinstance(data, dict):
            problem = "the body is not a JSON object"
        if problem is not None:
            raise self._response_error(f"malformed response: {problem}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._response_error("the answer has no choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise self._response_error("the answer's choice has no message")
        content = _text_of(message.get("content"))
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else None
        if content is None:
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal:
                raise self._response_error(f"the model refused: {refusal}")
            raise self._response_error("the answer has no content")
        text = content
        if ask.kind is not None:
            text = self._json_text(content, ask, finish)
        tokens = self._logprobs(choice.get("logprobs"), args, bool(content))
        return Completion(
            text=text,
            logprobs=tokens,
            usage=_usage(data.get("usage")),
            finish_reason=finish,
            model=data["model"] if isinstance(data.get("model"), str) else self.config.model,
        )

    def _json_text(self, content: str, ask: _Ask, finish: str | None) -> str:
        if finish == "length":
            raise self._response_error(
                "the answer was cut off at the token limit (finish_reason 'length') before "
                "its JSON was complete; raise max_tokens"
            )
        if finish == "content_filter":
            raise self._response_error("the answer was withheld by the content filter")
        text = content.strip()
        value, problem = _parse_json(text)
        if problem is not None:
            fenced = _FENCE.match(text)
            if fenced:
                text = fenced.group(1).strip()
                value, problem = _parse_json(text)
        if problem is not None:
            raise self._response_error(f"the answer is not JSON ({problem}): {content[:200]!r}")
        if ask.kind == "json_object" and not isinstance(value, dict):
            raise self._response_error("the answer is JSON but not an object")
        if ask.schema is not None:
            wrong = schema_problem(value, ask.schema)
            if wrong is not None:
                raise self._response_error(f"the answer does not match the schema: {wrong}")
        return text

    def _logprobs(
        self, raw: Any, args: Mapping[str, Any], has_text: bool
    ) -> tuple[TokenLogprob, ...] | None:
        if "logprobs" not in args:
            return None
        entries = raw.get("content") if isinstance(raw, dict) else None
        tokens = _tokens(entries, int(args.get("top_logprobs") or 0))
        if tokens is None or (not tokens and has_text):
            if self.config.capabilities.logprobs is None:
                with self._lock:
                    if self._detected.logprobs is not False:
                        self._detected.logprobs = False
                        why = "no" if not entries else "invalid"
                        log.warning(
                            "openai: %s answered with %s log-probabilities; not asking again",
                            self._where(),
                            why,
                        )
            return None
        if self._detected.logprobs is None:
            self._detected.logprobs = True
        return tokens

    def _response_error(self, message: str) -> LLMResponseError:
        error = LLMResponseError(PROVIDER, scrub(message, self.config.api_key))
        return clean_error(error, self.config.api_key)


def _checked_messages(messages: Any) -> list[dict[str, str]]:
    """Plain copies of ``messages``; InvalidInputError for anything but role/content dicts."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidInputError("messages must be a list of {'role', 'content'} dicts")
    if not messages:
        raise InvalidInputError("messages must not be empty")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidInputError(f"messages[{i}] must be a dict with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidInputError(f"messages[{i}]['role'] must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise InvalidInputError(f"messages[{i}]['content'] must be a string")
        out.append({"role": str(role), "content": content})
    return out


def _with_instruction(
    messages: list[dict[str, str]], instruction: str | None
) -> list[dict[str, str]]:
    """``messages`` with ``instruction`` added to the first system message (one system
    message, first: some chat templates take no other), or as one in front."""
    if instruction is None:
        return [dict(m) for m in messages]
    if messages and messages[0]["role"] == "system":
        first = {"role": "system", "content": f"{messages[0]['content']}\n\n{instruction}"}
        return [first, *(dict(m) for m in messages[1:])]
    return [{"role": "system", "content": instruction}, *(dict(m) for m in messages)]


def _parse_json(body: bytes | str) -> tuple[Any, str | None]:
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError) as exc:
        problem = f"{type(exc).__name__} at {getattr(exc, 'pos', '?')}"
    return None, problem


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some servers answer
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        texts = [p for p in parts if isinstance(p, str)]
        return "".join(texts) if texts else None
    return None


def _tokens(entries: Any, alternatives: int) -> tuple[TokenLogprob, ...] | None:
    """The log-probs of an answer's tokens, with at most ``alternatives`` alternatives each
    (the likeliest: llama.cpp adds the chosen token to the ones asked for), or None when
    they are not log-probabilities."""
    if not isinstance(entries, list):
        return None
    out: list[TokenLogprob] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        logprob = _logprob(entry.get("logprob"))
        if logprob is None:
            return None
        top: list[tuple[str, float]] = []
        for alt in entry.get("top_logprobs") or ():
            alt_lp = _logprob(alt.get("logprob")) if isinstance(alt, dict) else None
            if alt_lp is None or not isinstance(alt.get("token"), str):
                return None
            top.append((alt["token"], alt_lp))
        top.sort(key=lambda pair: -pair[1])
        out.append(TokenLogprob(entry["token"], logprob, tuple(top[:alternatives])))
    return tuple(out)


def _logprob(value: Any) -> float | None:
    """A log-probability (a finite number <= 0; rounding up to 1e-6 above is clamped)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number > 1e-6:
        return None
    return min(number, 0.0)


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()

    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    return Usage(prompt_tokens=count("prompt_tokens"), completion_tokens=count("completion_tokens"))
