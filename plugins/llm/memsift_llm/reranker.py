"""The ``llm_reranker``: scores candidates with any registered memsift LLM provider.

**Pointwise** (default): one request per candidate, all of them in flight at once within
``max_concurrency`` -- worker threads on the sync path, tasks on the async one. When the
LLM says it returns log-probabilities (:attr:`memsift.LLM.capabilities`), it is asked for
yes or no and the score is P("yes") (:func:`memsift_llm.answers.yes_probability`); an
answer that comes without them (a server that ignores the request) is asked again on the
0-10 scale, and so is every later candidate. Otherwise the score is the 0-10 answer / 10.

**Listwise**: RankGPT's sliding windows. Starting from the end of the pool, a window of
``window_size`` candidates is ranked by one request, then the window moves ``step`` toward
the start, until it covers the first candidate; so the best candidates bubble up to the
top. Windows are sent one after the other (each depends on the last). The candidate at
final rank ``r`` (0-based) of ``n`` scores ``(n - r) / n``.

**How answers are asked for**: when the LLM's capabilities say it takes a JSON schema or a
JSON mode (read before each request: a provider may learn them from the server's
answers), every request carries a ``response_format`` json_schema --
``{"relevant": "yes"|"no"}``, ``{"score": <integer 0..10>}``, ``{"ranking": [ids of the
window]}`` (:mod:`memsift_llm.prompts`) -- and the answer is read as that JSON; a server
that turns the schema into a grammar (llama.cpp) then answers in the format even from a
tiny model. Otherwise the answer is free text (one word, one number, ids between ``>``).
Either is read strictly (:mod:`memsift_llm.answers`); the ``answer_format`` of the details
says which (``"json_schema"`` or ``"text"``).

Every failure is a :class:`memsift.RerankError` of the stage, never a score: a request that
fails (after the llm provider's own retries), an answer that cannot be read, the time
budget (the config's ``timeout``, for all requests of a call together) running out. On the
async path the first failure or a cancellation cancels every request still in flight.
The scores come back as :class:`memsift.search.RerankScores` whose details (the method,
the answer format, the requests, the token usage) the stage adds to the ``rerank`` block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

from memsift import (
    LLM,
    Completion,
    ProviderError,
    Reranker,
    RerankError,
    RerankTimeoutError,
)
from memsift.interfaces import Candidate, check_rerank_input
from memsift.kit.hosted import clean_error, gather_all
from memsift.kit.retry import Deadline
from memsift.registry import get_llm
from memsift.search import RerankScores
from memsift_llm.answers import (
    AnswerError,
    permutation,
    permutation_json,
    relevance_answer,
    scale_json_score,
    scale_score,
    yes_probability,
)
from memsift_llm.config import LLMRerankerConfig
from memsift_llm.prompts import (
    SCALE_FORMAT,
    SCALE_JSON_FORMAT,
    YES_NO_FORMAT,
    YES_NO_JSON_FORMAT,
    listwise_messages,
    pointwise_messages,
    ranking_format,
    relevance_format,
    score_format,
)

PROVIDER = "llm_reranker"
#: Alternatives asked per token when reading P("yes") ("Yes", "yes", " no", ...).
TOP_LOGPROBS = 10
#: The ``answer_format`` of the details: a JSON schema asked for, or free text.
JSON_SCHEMA = "json_schema"
TEXT = "text"


@dataclass(frozen=True)
class _Ask:
    """One scoring request: its messages and options, what it reports, how it is read."""

    messages: list[dict[str, str]]
    options: dict[str, Any]
    method: str
    answer_format: str


def windows(count: int, size: int, step: int) -> list[tuple[int, int]]:
    """The listwise windows over ``count`` candidates, in the order they are ranked: from
    the end of the list back to its start, each ``[start, end)``."""
    if count <= size:
        return [(0, count)]
    out: list[tuple[int, int]] = []
    end = count
    while True:
        start = max(0, end - size)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


def rank_scores(order: Sequence[int]) -> list[float]:
    """Scores in input order from a final ranking (``order[r]`` is the input position of
    rank ``r``): ``(n - r) / n``."""
    count = len(order)
    scores = [0.0] * count
    for rank, position in enumerate(order):
        scores[position] = (count - rank) / count
    return scores


class _Tally:
    """What one call cost and how it scored; shared by its concurrent requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.methods: set[str] = set()
        self.formats: set[str] = set()

    def add(self, completion: Completion, ask: _Ask | None) -> None:
        """Count a request; ``ask`` None: its answer is not used (re-asked differently)."""
        with self._lock:
            self.requests += 1
            self.prompt_tokens += completion.usage.prompt_tokens
            self.completion_tokens += completion.usage.completion_tokens
            if ask is not None:
                self.methods.add(ask.method)
                self.formats.add(ask.answer_format)

    def details(self) -> dict[str, Any]:
        return {
            "method": "+".join(sorted(self.methods)) or None,
            "answer_format": "+".join(sorted(self.formats)) or None,
            "requests": self.requests,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
        }


def _secrets(*configs: BaseModel | None) -> tuple[SecretStr, ...]:
    found: list[SecretStr] = []
    for config in configs:
        if config is not None:
            found.extend(v for _, v in config if isinstance(v, SecretStr))
    return tuple(found)


class LLMReranker(Reranker):
    """Scores candidates with an LLM, pointwise or listwise (see the module)."""

    config: LLMRerankerConfig

    def __init__(self, config: LLMRerankerConfig) -> None:
        super().__init__(config)
        section = config.llm_section()
        self.llm_provider = section.provider
        llm_config = section.config
        self.llm: LLM = get_llm(section.provider).build(llm_config)
        nested = llm_config if isinstance(llm_config, BaseModel) else None
        self._secrets = _secrets(config, nested)
        #: False once an answer came without the log-probs asked for.
        self._logprobs_answered: bool | None = None

    def __repr__(self) -> str:
        return (
            f"LLMReranker(mode={self.config.mode!r}, llm={self.llm_provider!r}, "
            f"model={self.model_name!r})"
        )

    @property
    def model_name(self) -> str:
        return self.llm.model_name

    @property
    def method(self) -> str:
        """How a pointwise candidate is scored now: ``"logprobs"`` or ``"scale"``."""
        if self._logprobs_answered is False or not self.llm.capabilities.logprobs:
            return "scale"
        return "logprobs"

    # ------------------------------------------------------------------ the API

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return list(self._score(query, check_rerank_input(query, documents)))

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return list(await self._ascore(query, check_rerank_input(query, documents)))

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        return self._score(query, check_rerank_input(query, [c.text for c in candidates]))

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        texts = check_rerank_input(query, [c.text for c in candidates])
        return await self._ascore(query, texts)

    def close(self) -> None:
        self.llm.close()

    async def aclose(self) -> None:
        await self.llm.aclose()

    # ------------------------------------------------------------------ sync

    def _score(self, query: str, docs: list[str]) -> RerankScores:
        if not docs:
            return RerankScores()
        tally = _Tally()
        deadline = Deadline(self.config.timeout)
        if self.config.mode == "listwise":
            scores = self._listwise(query, docs, tally, deadline)
        else:
            scores = self._pointwise(query, docs, tally, deadline)
        return RerankScores(scores, tally.details())

    def _pointwise(
        self, query: str, docs: list[str], tally: _Tally, deadline: Deadline
    ) -> list[float]:
        workers = min(len(docs), self.config.max_concurrency)
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="memsift-llm-rerank"
        )
        try:
            futures = [
                pool.submit(self._score_one, query, i, doc, tally) for i, doc in enumerate(docs)
            ]
            done, pending = concurrent.futures.wait(
                futures,
                timeout=deadline.remaining(),
                return_when=concurrent.futures.FIRST_EXCEPTION,
            )
        finally:
            # requests not started are dropped; those running end within the LLM's timeout
            pool.shutdown(wait=False, cancel_futures=True)
        for future in futures:
            if future in done and future.exception() is not None:
                error = future.exception()
                assert error is not None
                raise error
        if pending:
            raise self._timeout(f"{len(pending)} of {len(docs)} requests")
        return [f.result() for f in futures]

    def _score_one(self, query: str, index: int, doc: str, tally: _Tally) -> float:
        where = f"candidate {index}"
        if self.method == "logprobs":
            ask = self._pointwise_ask(query, doc, logprobs=True)
            answer = self._complete(where, ask)
            if answer.logprobs is not None:
                tally.add(answer, ask)
                return self._read(index, ask, answer)
            tally.add(answer, None)
            self._logprobs_answered = False  # ignored: ask on the scale from now on
        ask = self._pointwise_ask(query, doc, logprobs=False)
        answer = self._complete(where, ask)
        tally.add(answer, ask)
        return self._read(index, ask, answer)

    def _complete(self, where: str, ask: _Ask) -> Completion:
        try:
            return self.llm.complete(ask.messages, **ask.options)
        except Exception as exc:
            error = self._error(where, exc)
        raise error

    def _listwise(
        self, query: str, docs: list[str], tally: _Tally, deadline: Deadline
    ) -> list[float]:
        order = list(range(len(docs)))
        for start, end in windows(len(docs), self.config.window_size, self.config.step):
            window = order[start:end]
            ask = self._listwise_ask(query, [docs[i] for i in window])
            where = f"window {start + 1}-{end}"
            send = functools.partial(self._complete, where, ask)
            answer = self._bounded(deadline, where, send)
            tally.add(answer, ask)
            ranked = self._read_window(where, ask, answer.text, len(window))
            order[start:end] = [window[j] for j in ranked]
        return rank_scores(order)

    # ------------------------------------------------------------------ async

    async def _ascore(self, query: str, docs: list[str]) -> RerankScores:
        if not docs:
            return RerankScores()
        tally = _Tally()
        timeout = self.config.timeout
        if self.config.mode == "listwise":
            work = self._alistwise(query, docs, tally)
        else:
            work = self._apointwise(query, docs, tally)
        try:
            scores = await asyncio.wait_for(work, timeout)
        except asyncio.TimeoutError:
            if self.config.mode == "listwise":
                what = "the listwise windows"
            else:
                what = f"{max(1, len(docs) - tally.requests)} of {len(docs)} requests"
            error: RerankError = self._timeout(what)
        else:
            return RerankScores(scores, tally.details())
        raise error

    async def _apointwise(self, query: str, docs: list[str], tally: _Tally) -> list[float]:
        gate = asyncio.Semaphore(self.config.max_concurrency)

        async def one(index: int, doc: str) -> float:
            async with gate:
                return await self._ascore_one(query, index, doc, tally)

        return await gather_all(one(i, d) for i, d in enumerate(docs))

    async def _ascore_one(self, query: str, index: int, doc: str, tally: _Tally) -> float:
        where = f"candidate {index}"
        if self.method == "logprobs":
            ask = self._pointwise_ask(query, doc, logprobs=True)
            answer = await self._acomplete(where, ask)
            if answer.logprobs is not None:
                tally.add(answer, ask)
                return self._read(index, ask, answer)
            tally.add(answer, None)
            self._logprobs_answered = False
        ask = self._pointwise_ask(query, doc, logprobs=False)
        answer = await self._acomplete(where, ask)
        tally.add(answer, ask)
        return self._read(index, ask, answer)

    async def _acomplete(self, where: str, ask: _Ask) -> Completion:
        try:
            return await self.llm.acomplete(ask.messages, **ask.options)
        except Exception as exc:
            error = self._error(where, exc)
        raise error

    async def _alistwise(self, query: str, docs: list[str], tally: _Tally) -> list[float]:
        order = list(range(len(docs)))
        for start, end in windows(len(docs), self.config.window_size, self.config.step):
            window = order[start:end]
            ask = self._listwise_ask(query, [docs[i] for i in window])
            where = f"window {start + 1}-{end}"
            answer = await self._acomplete(where, ask)
            tally.add(answer, ask)
            ranked = self._read_window(where, ask, answer.text, len(window))
            order[start:end] = [window[j] for j in ranked]
        return rank_scores(order)

    # ------------------------------------------------------------------ shared

    @property
    def structured(self) -> bool:
        """Whether answers are asked as JSON with a schema now: the LLM's capabilities (read
        again before every request) say it takes a JSON schema or a JSON mode."""
        capabilities = self.llm.capabilities
        return capabilities.json_schema or capabilities.json_mode

    def _pointwise_ask(self, query: str, doc: str, *, logprobs: bool) -> _Ask:
        structured = self.structured
        if logprobs:
            answer_format = YES_NO_JSON_FORMAT if structured else YES_NO_FORMAT
            response_format = relevance_format() if structured else None
        else:
            answer_format = SCALE_JSON_FORMAT if structured else SCALE_FORMAT
            response_format = score_format() if structured else None
        messages = pointwise_messages(
            query,
            doc,
            template=self.config.scoring_prompt,
            answer_format=answer_format,
            limit=self.config.max_document_chars,
        )
        return _Ask(
            messages,
            self._options(logprobs, response_format),
            "logprobs" if logprobs else "scale",
            JSON_SCHEMA if structured else TEXT,
        )

    def _listwise_ask(self, query: str, docs: list[str]) -> _Ask:
        structured = self.structured
        messages = listwise_messages(
            query, docs, limit=self.config.max_document_chars, structured=structured
        )
        response_format = ranking_format(len(docs)) if structured else None
        return _Ask(
            messages,
            self._options(False, response_format),
            "permutation",
            JSON_SCHEMA if structured else TEXT,
        )

    def _options(self, logprobs: bool, response_format: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "response_format": response_format,
            "temperature": self.config.call_temperature(),
            "max_tokens": self.config.call_max_tokens(),
            "logprobs": TOP_LOGPROBS if logprobs else None,
        }

    def _read(self, index: int, ask: _Ask, answer: Completion) -> float:
        structured = ask.answer_format == JSON_SCHEMA
        try:
            if ask.method == "scale":
                return scale_json_score(answer.text) if structured else scale_score(answer.text)
            if structured:
                relevance_answer(answer.text)
            return yes_probability(answer.logprobs or (), answer.text, structured=structured)
        except AnswerError as exc:
            error = RerankError(PROVIDER, f"candidate {index}: {exc}")
        raise clean_error(error, *self._secrets)

    def _read_window(self, where: str, ask: _Ask, text: str, count: int) -> list[int]:
        try:
            if ask.answer_format == JSON_SCHEMA:
                return permutation_json(text, count)
            return permutation(text, count)
        except AnswerError as exc:
            error = RerankError(PROVIDER, f"{where}: {exc}")
        raise clean_error(error, *self._secrets)

    def _error(self, where: str, exc: Exception) -> RerankError:
        """A failed request as the stage's error: the llm provider's message and status."""
        if isinstance(exc, ProviderError):
            error = RerankError(PROVIDER, f"{where}: {exc}", status=exc.status)
        else:
            error = RerankError(PROVIDER, f"{where}: {type(exc).__name__}: {exc}")
        return clean_error(error, *self._secrets)

    def _bounded(
        self, deadline: Deadline, where: str, send: Callable[[], Completion]
    ) -> Completion:
        """``send()``, given up (left to end in a worker thread) when the budget runs out."""
        left = deadline.remaining()
        if left is None:
            return send()
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="memsift-llm-rerank"
        )
        try:
            future = pool.submit(send)
            done, _ = concurrent.futures.wait([future], timeout=left)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if future in done:
            return future.result()
        raise self._timeout(where)

    def _timeout(self, what: str) -> RerankTimeoutError:
        seconds = self.config.timeout or 0.0
        return RerankTimeoutError(
            PROVIDER, f"{what} unanswered within the timeout of {seconds:g} s"
        )


__all__ = [
    "JSON_SCHEMA",
    "PROVIDER",
    "TEXT",
    "TOP_LOGPROBS",
    "LLMReranker",
    "rank_scores",
    "windows",
]
