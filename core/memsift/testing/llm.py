"""``LLMConformance``: the contract every LLM provider must keep."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from memsift.completions import (
    Completion,
    LLMCapabilities,
    TokenLogprob,
    Usage,
    json_object,
    json_schema,
    schema_problem,
)
from memsift.errors import LLMError, LLMResponseError, ProviderError
from memsift.interfaces import LLM
from memsift.testing.secrets import assert_secret_absent

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": 'Reply with the JSON object {"facts": ["the sky is blue"]}.'},
]


def messages() -> list[dict[str, str]]:
    """A fresh copy of :data:`MESSAGES` (so a provider that mutates it cannot hide it)."""
    return copy.deepcopy(MESSAGES)


UNICODE_MESSAGES = [
    {"role": "user", "content": "Zoë wohnt in Köln 🏠. 東京は日本の首都です. Reply in JSON."},
]

#: Conversations of every shape a caller sends: a lone user turn, a system prompt, and
#: multi-turn chats with earlier assistant answers.
MESSAGE_SHAPES: dict[str, list[dict[str, str]]] = {
    "user": [{"role": "user", "content": "Say hello."}],
    "system-user": MESSAGES,
    "multi-turn": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "My name is Alice."},
        {"role": "assistant", "content": "Hello Alice."},
        {"role": "user", "content": "What is my name?"},
    ],
    "user-assistant-user": [
        {"role": "user", "content": "Remember the number 7."},
        {"role": "assistant", "content": "I will remember 7."},
        {"role": "user", "content": "Which number?"},
    ],
}

#: The schema of the ``json_schema`` checks: the shape memory extraction asks for.
FACTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
    "additionalProperties": False,
}

#: The faults ``faulty_llm`` must be able to produce.
FAULTS = ("401", "429", "500", "timeout", "malformed")
#: The HTTP status each fault's LLMError must carry (None: no status, or any for malformed).
FAULT_STATUS: dict[str, int | None] = {"401": 401, "429": 429, "500": 500, "timeout": None}

FaultyLLM = Callable[[str], LLM]


def _safe(show: Callable[[Any], str], value: Any) -> str:
    try:
        return show(value)
    except Exception as exc:  # an object whose repr fails shows nothing of itself
        return f"<{type(exc).__name__}>"


def check_logprobs(tokens: Any, text: str, asked: int) -> None:
    """Fail unless ``tokens`` are per-token log-probabilities of an answer ``text``: a tuple
    of :class:`TokenLogprob`, one or more when there is text, each a finite log-probability
    (<= 0) with at most ``asked`` alternatives that are log-probabilities too and whose
    probabilities sum to at most 1."""
    assert isinstance(tokens, tuple), f"logprobs must be a tuple or None, got {type(tokens)}"
    if text:
        assert tokens, "an answer with text must have log-probs for its tokens when given"
    for i, tok in enumerate(tokens):
        assert isinstance(tok, TokenLogprob), f"logprobs[{i}] is {type(tok)}, not TokenLogprob"
        assert isinstance(tok.token, str), f"logprobs[{i}].token is not a string"
        _check_logprob(tok.logprob, f"logprobs[{i}].logprob")
        assert isinstance(tok.top, tuple), f"logprobs[{i}].top must be a tuple"
        assert len(tok.top) <= max(asked, 1), (
            f"logprobs[{i}] has {len(tok.top)} alternatives; {asked} were asked for"
        )
        distinct: dict[str, float] = {}
        for j, alt in enumerate(tok.top):
            assert isinstance(alt, tuple) and len(alt) == 2, f"logprobs[{i}].top[{j}] is not a pair"
            assert isinstance(alt[0], str), f"logprobs[{i}].top[{j}] has no token string"
            _check_logprob(alt[1], f"logprobs[{i}].top[{j}]")
            distinct.setdefault(alt[0], alt[1])
        total = sum(math.exp(lp) for lp in distinct.values())
        assert total <= 1.0 + 1e-3, f"logprobs[{i}]: the alternatives' probabilities sum to {total}"


def _check_logprob(value: Any, what: str) -> None:
    assert isinstance(value, float) and not isinstance(value, bool), f"{what} is not a float"
    assert math.isfinite(value), f"{what} is not finite: {value}"
    assert value <= 0.0, f"{what} = {value} is not a log-probability (it must be <= 0)"


def _check_completion(answer: Any, what: str) -> Completion:
    assert isinstance(answer, Completion), f"{what} must return a Completion, got {type(answer)}"
    assert isinstance(answer.text, str), f"{what}: Completion.text is {type(answer.text)}"
    assert isinstance(answer.usage, Usage), f"{what}: Completion.usage is {type(answer.usage)}"
    for name in ("prompt_tokens", "completion_tokens"):
        count = getattr(answer.usage, name)
        assert isinstance(count, int) and count >= 0, f"{what}: usage.{name} = {count!r}"
    assert answer.finish_reason is None or isinstance(answer.finish_reason, str)
    assert isinstance(answer.model, str), f"{what}: Completion.model is {type(answer.model)}"
    return answer


class LLMConformance:
    """The contract of :class:`memsift.LLM`, for LLM plugins.

    Subclass it and provide:

    ``llm`` (required)
        a fixture returning a ready provider instance (for a hosted provider: pointed at a
        fake of its API or a local OpenAI-compatible server on 127.0.0.1).

    ``faulty_llm`` (required, unless ``fault_matrix = False``)
        a fixture returning a factory ``(fault) -> LLM``: a provider whose calls meet
        ``fault``, one of :data:`FAULTS`: ``"401"`` (the server refuses the key with a
        body that quotes it), ``"429"`` (rate limited, with ``Retry-After``), ``"500"``,
        ``"timeout"`` (no answer within the provider's timeout: configure a short one) and
        ``"malformed"`` (a success whose body is not a valid answer). Configure retries so
        that each call gives up within :attr:`fault_seconds`. A suite for a local model,
        which has no such transport to fail, sets ``fault_matrix = False`` and says why in
        ``fault_matrix_reason``; those tests are then skipped with that reason.

    ``llm_secret`` (required with the fault matrix)
        the API key string ``llm`` and ``faulty_llm`` were given (None: no key). It must
        appear nowhere in ``repr(llm)``, in the errors' messages, in their exception chains
        (``__cause__`` and ``__context__``, even suppressed) or their formatted tracebacks.

    Class attributes: ``fault_matrix`` / ``fault_matrix_reason`` (above); ``fault_seconds``
    (30 s); ``reliable_json`` / ``reliable_json_reason``: set ``reliable_json = False`` for
    a model too small to finish a JSON answer within its token limit, and the JSON checks
    accept :class:`~memsift.LLMResponseError` as well (never a non-JSON success).

    What is checked: ``generate`` returns a string and ``complete`` a
    :class:`~memsift.Completion` (text, usage) for every message shape (system, user,
    assistant turns, multi-turn); JSON answers parse (``json_object``: an object; with
    ``json_schema``: valid against a simple schema when ``capabilities.json_schema``, else
    valid or :class:`~memsift.LLMResponseError`), also for unicode input; log-probs are
    ``None`` unless asked, and when asked are valid log-probabilities, or ``None`` when the
    provider (after the call) does not declare ``capabilities.logprobs``; the async twin does
    the same, concurrently and on successive event loops; the messages are not mutated;
    faults raise :class:`~memsift.LLMError` with the HTTP status (401, 429, 500), a timeout
    says so (no status), a malformed answer is an ``LLMError`` (or ``LLMResponseError``),
    each within :attr:`fault_seconds` and with no secret anywhere; ``close`` can be called
    twice.
    """

    #: Whether the provider has a transport that can fail (see ``faulty_llm``).
    fault_matrix: ClassVar[bool] = True
    #: Why not, when ``fault_matrix = False``.
    fault_matrix_reason: ClassVar[str] = ""
    #: Seconds a call that meets a fault may take before it raises.
    fault_seconds: ClassVar[float] = 30.0
    #: Whether the model answers JSON reliably. Set it False (and say why in
    #: ``reliable_json_reason``) for a model too small to finish a JSON answer within its
    #: token limit: the JSON checks then accept an :class:`~memsift.LLMResponseError`
    #: (never a success that is not valid JSON, never another error).
    reliable_json: ClassVar[bool] = True
    reliable_json_reason: ClassVar[str] = ""

    @pytest.fixture
    def llm(self) -> LLM:
        raise NotImplementedError("provide an `llm` fixture in your test class")

    @contextlib.contextmanager
    def _json_answer(self, *, schema: bool = False, llm: LLM | None = None) -> Iterator[None]:
        """Where JSON was asked for: with ``reliable_json = False`` (or for a schema the
        provider does not honour natively) an LLMResponseError is an accepted answer."""
        try:
            yield
        except LLMResponseError:
            if self.reliable_json and not (
                schema and llm is not None and not llm.capabilities.json_schema
            ):
                raise

    @pytest.fixture
    def llm_secret(self) -> str | None:
        return None

    # ------------------------------------------------------------------ answers

    def test_generate_returns_text(self, llm: LLM) -> None:
        answer = llm.generate(messages())
        assert isinstance(answer, str)

    @pytest.mark.parametrize("shape", list(MESSAGE_SHAPES))
    def test_complete_returns_a_completion(self, llm: LLM, shape: str) -> None:
        answer = _check_completion(
            llm.complete(copy.deepcopy(MESSAGE_SHAPES[shape])), f"complete({shape})"
        )
        assert answer.logprobs is None, "log-probs were not asked for, yet the answer has some"

    def test_capabilities(self, llm: LLM) -> None:
        caps = llm.capabilities
        assert isinstance(caps, LLMCapabilities), f"capabilities is {type(caps)}"
        if not self.reliable_json:
            assert self.reliable_json_reason, "reliable_json = False needs a reliable_json_reason"

    def test_json_output_is_json(self, llm: LLM) -> None:
        with self._json_answer():
            answer = llm.generate(messages(), json_output=True)
            assert isinstance(answer, str), f"generate must return a str, got {type(answer)}"
            assert isinstance(_parse(answer), dict | list)

    def test_json_object_answer_is_an_object(self, llm: LLM) -> None:
        with self._json_answer():
            answer = _check_completion(
                llm.complete(messages(), response_format=json_object()), "complete(json_object)"
            )
            value = _parse(answer.text)
            assert isinstance(value, dict), (
                f"a json_object answer must be an object: {answer.text!r}"
            )

    def test_json_output_with_unicode_input(self, llm: LLM) -> None:
        with self._json_answer():
            answer = llm.generate(copy.deepcopy(UNICODE_MESSAGES), json_output=True)
            assert isinstance(_parse(answer), dict | list)

    def test_json_schema_answer_is_valid(self, llm: LLM) -> None:
        fmt = json_schema("facts", FACTS_SCHEMA)
        try:
            answer = llm.complete(messages(), response_format=fmt)
        except LLMResponseError as exc:
            refused: LLMResponseError | None = exc
        else:
            refused = None
        caps = llm.capabilities
        if refused is not None:
            assert not caps.json_schema or not self.reliable_json, (
                "the provider declares capabilities.json_schema, yet its answer to a schema "
                f"did not come back valid: {refused}"
            )
            return
        _check_completion(answer, "complete(json_schema)")
        problem = schema_problem(_parse(answer.text), FACTS_SCHEMA)
        assert problem is None, (
            f"the answer to a json_schema request is not valid against it ({problem}): "
            f"{answer.text!r}; a provider that cannot honour the schema raises LLMResponseError"
        )

    # ------------------------------------------------------------------ log-probs

    def test_logprobs_are_valid_or_none(self, llm: LLM) -> None:
        asked = 3
        answer = _check_completion(llm.complete(messages(), logprobs=asked), "complete(logprobs)")
        declared = llm.capabilities.logprobs
        if answer.logprobs is None:
            assert not declared, (
                "log-probs were asked for and capabilities.logprobs is True (after the call), "
                "yet the answer has none"
            )
            return
        assert declared, "the answer has log-probs but capabilities.logprobs is False"
        check_logprobs(answer.logprobs, answer.text, asked)

    def test_logprobs_alone_for_the_chosen_token(self, llm: LLM) -> None:
        answer = _check_completion(llm.complete(messages(), logprobs=0), "complete(logprobs=0)")
        if answer.logprobs is not None:
            check_logprobs(answer.logprobs, answer.text, 0)

    # ------------------------------------------------------------------ async

    def test_async_twin_returns_text(self, llm: LLM) -> None:
        answer = asyncio.run(llm.agenerate(messages()))
        assert isinstance(answer, str)

    def test_async_complete_returns_a_completion(self, llm: LLM) -> None:
        answer = asyncio.run(llm.acomplete(copy.deepcopy(MESSAGE_SHAPES["multi-turn"])))
        _check_completion(answer, "acomplete")

    def test_async_json_output_is_json(self, llm: LLM) -> None:
        async def run() -> list[str | BaseException]:
            calls = [llm.agenerate(messages(), json_output=True) for _ in range(3)]
            return list(await asyncio.gather(*calls, return_exceptions=True))

        for answer in asyncio.run(run()):
            with self._json_answer():
                if isinstance(answer, BaseException):
                    raise answer
                assert isinstance(_parse(answer), dict | list)

    def test_async_on_successive_event_loops(self, llm: LLM) -> None:
        """A provider must not keep a client bound to an event loop that has ended."""
        for _ in range(2):
            _check_completion(asyncio.run(llm.acomplete(messages())), "acomplete")
        _check_completion(llm.complete(messages()), "complete after acomplete")

    def test_async_concurrent_with_logprobs(self, llm: LLM) -> None:
        async def run() -> list[Completion]:
            calls = [llm.acomplete(messages(), logprobs=2) for _ in range(3)]
            return list(await asyncio.gather(*calls))

        for answer in asyncio.run(run()):
            _check_completion(answer, "acomplete(logprobs)")
            if answer.logprobs is not None:
                check_logprobs(answer.logprobs, answer.text, 2)

    # ------------------------------------------------------------------ hygiene

    def test_messages_are_not_mutated(self, llm: LLM) -> None:
        given = messages()
        with self._json_answer():
            llm.generate(given, json_output=True)
        assert given == messages(), "generate changed the messages it was given"
        with self._json_answer(schema=True, llm=llm):
            llm.complete(given, response_format=json_schema("facts", FACTS_SCHEMA), logprobs=1)
        assert given == messages(), "complete changed the messages it was given"
        asyncio.run(llm.agenerate(given))
        assert given == messages(), "agenerate changed the messages it was given"

    def test_repr_hides_the_secret(self, llm: LLM, llm_secret: str | None) -> None:
        if not llm_secret:
            pytest.skip("no llm_secret: the provider was given no key")
        for show in (repr, str):
            assert llm_secret not in show(llm), f"{show.__name__}(llm) shows the API key"
            assert llm_secret not in show(llm.config), f"{show.__name__}(llm.config) shows it"

    def test_model_name_is_a_string(self, llm: LLM) -> None:
        assert isinstance(llm.model_name, str)

    def test_close_is_idempotent(self, llm: LLM) -> None:
        llm.generate(messages())
        llm.close()
        llm.close()

    # ------------------------------------------------------------------ faults

    @pytest.mark.parametrize("mode", ["sync", "async"])
    @pytest.mark.parametrize("fault", FAULTS)
    def test_fault_raises_a_clean_llm_error(
        self, request: pytest.FixtureRequest, llm_secret: str | None, fault: str, mode: str
    ) -> None:
        with self._faulty(request, fault) as llm:
            started = time.monotonic()
            error = _raised(llm, mode)
            took = time.monotonic() - started
        assert error is not None, f"fault {fault!r}: the call returned instead of raising"
        assert isinstance(error, LLMError), (
            f"fault {fault!r}: raised {type(error).__module__}.{type(error).__name__} "
            f"instead of memsift.LLMError: {_safe(str, error)[:300]}"
        )
        assert took <= self.fault_seconds, (
            f"fault {fault!r}: the call took {took:.1f} s to give up (at most "
            f"{self.fault_seconds:g} s: bound the retries)"
        )
        if fault in FAULT_STATUS:
            assert error.status == FAULT_STATUS[fault], (
                f"fault {fault!r}: LLMError.status is {error.status!r}, expected "
                f"{FAULT_STATUS[fault]!r}: {error}"
            )
        if fault == "timeout":
            said = str(error).lower()
            assert "timed out" in said or "timeout" in said, (
                f"a timeout's message must say it timed out: {error}"
            )
        if fault == "malformed":
            assert not (error.status is not None and error.status >= 400), (
                f"a malformed success is not an HTTP error: status {error.status}"
            )
        assert isinstance(error, ProviderError) and isinstance(error.message, str)
        if llm_secret is None:
            pytest.fail(
                "the fault checks need `llm_secret`: the key the faulty providers were given "
                "(the 401 body quotes it, and no error may carry it)",
                pytrace=False,
            )
        assert_secret_absent(error, llm_secret)

    @contextlib.contextmanager
    def _faulty(self, request: pytest.FixtureRequest, fault: str) -> Iterator[LLM]:
        if not self.fault_matrix:
            if not self.fault_matrix_reason:
                pytest.fail(
                    "fault_matrix = False needs a fault_matrix_reason saying why", pytrace=False
                )
            pytest.skip(self.fault_matrix_reason)
        try:
            factory: FaultyLLM = request.getfixturevalue("faulty_llm")
        except LookupError as exc:  # pytest's FixtureLookupError: no such fixture
            if type(exc).__name__ != "FixtureLookupError":
                raise
            missing = True
        else:
            missing = False
        if missing:
            pytest.fail(
                "provide a `faulty_llm` fixture (a factory: fault -> LLM), or set "
                "fault_matrix = False with a fault_matrix_reason",
                pytrace=False,
            )
        llm = factory(fault)
        try:
            yield llm
        finally:
            llm.close()


def _raised(llm: LLM, mode: str) -> BaseException | None:
    try:
        if mode == "sync":
            llm.complete(messages(), response_format=json_object())
        else:
            asyncio.run(llm.acomplete(messages(), response_format=json_object()))
    except Exception as exc:
        return exc
    return None


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        pytest.fail(f"the answer is not JSON ({exc}): {text[:300]!r}", pytrace=False)
