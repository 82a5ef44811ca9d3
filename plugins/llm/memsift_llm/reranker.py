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

Every failure is a :class:`memsift.RerankError` of the stage, never a score: a request that
fails (after the llm provider's own retries), an answer that cannot be read, the time
budget (the config's ``timeout``, for all requests of a call together) running out. On the
async path the first failure or a cancellation cancels every request still in flight.
The scores come back as :class:`memsift.search.RerankScores` whose details (the method,
the number of requests, the token usage) the rerank stage adds to the ``rerank`` block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable, Sequence
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
from memsift_llm.answers import AnswerError, permutation, scale_score, yes_probability
from memsift_llm.config import LLMRerankerConfig
from memsift_llm.prompts import (
    SCALE_FORMAT,
    YES_NO_FORMAT,
    listwise_messages,
    pointwise_messages,
)

PROVIDER = "llm_reranker"
#: Alternatives asked per token when reading P("yes") ("Yes", "yes", " no", ...).
TOP_LOGPROBS = 10


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

    def add(self, completion: Completion, method: str | None) -> None:
        with self._lock:
            self.requests += 1
            self.prompt_tokens += completion.usage.prompt_tokens
            self.completion_tokens += completion.usage.completion_tokens
            if method is not None:
                self.methods.add(method)

    def details(self) -> dict[str, Any]:
        return {
            "method": "+".join(sorted(self.methods)) or None,
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
        if self.method == "logprobs":
            answer = self._complete(
                f"candidate {index}", self._messages(query, doc, YES_NO_FORMAT), True
            )
            if answer.logprobs is not None:
                tally.add(answer, "logprobs")
                return self._read(
                    index, lambda: yes_probability(answer.logprobs or (), answer.text)
                )
            tally.add(answer, None)
            self._logprobs_answered = False  # ignored: ask on the scale from now on
        answer = self._complete(
            f"candidate {index}", self._messages(query, doc, SCALE_FORMAT), False
        )
        tally.add(answer, "scale")
        return self._read(index, lambda: scale_score(answer.text))

    def _complete(self, where: str, messages: list[dict[str, str]], logprobs: bool) -> Completion:
        try:
            return self.llm.complete(messages, **self._options(logprobs))
        except Exception as exc:
            error = self._error(where, exc)
        raise error

    def _listwise(
        self, query: str, docs: list[str], tally: _Tally, deadline: Deadline
    ) -> list[float]:
        order = list(range(len(docs)))
        for start, end in windows(len(docs), self.config.window_size, self.config.step):
            window = order[start:end]
            messages = listwise_messages(
                query, [docs[i] for i in window], limit=self.config.max_document_chars
            )
            where = f"window {start + 1}-{end}"
            send = functools.partial(self._complete, where, messages, False)
            answer = self._bounded(deadline, where, send)
            tally.add(answer, "permutation")
            ranked = self._read_window(where, answer.text, len(window))
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
        if self.method == "logprobs":
            messages = self._messages(query, doc, YES_NO_FORMAT)
            answer = await self._acomplete(f"candidate {index}", messages, True)
            if answer.logprobs is not None:
                tally.add(answer, "logprobs")
                return self._read(
                    index, lambda: yes_probability(answer.logprobs or (), answer.text)
                )
            tally.add(answer, None)
            self._logprobs_answered = False
        answer = await self._acomplete(
            f"candidate {index}", self._messages(query, doc, SCALE_FORMAT), False
        )
        tally.add(answer, "scale")
        return self._read(index, lambda: scale_score(answer.text))

    async def _acomplete(
        self, where: str, messages: list[dict[str, str]], logprobs: bool
    ) -> Completion:
        try:
            return await self.llm.acomplete(messages, **self._options(logprobs))
        except Exception as exc:
            error = self._error(where, exc)
        raise error

    async def _alistwise(self, query: str, docs: list[str], tally: _Tally) -> list[float]:
        order = list(range(len(docs)))
        for start, end in windows(len(docs), self.config.window_size, self.config.step):
            window = order[start:end]
            messages = listwise_messages(
                query, [docs[i] for i in window], limit=self.config.max_document_chars
            )
            where = f"window {start + 1}-{end}"
            answer = await self._acomplete(where, messages, False)
            tally.add(answer, "permutation")
            ranked = self._read_window(where, answer.text, len(window))
            order[start:end] = [window[j] for j in ranked]
        return rank_scores(order)

    # ------------------------------------------------------------------ shared

    def _messages(self, query: str, doc: str, answer_format: str) -> list[dict[str, str]]:
        return pointwise_messages(
            query,
            doc,
            template=self.config.scoring_prompt,
            answer_format=answer_format,
            limit=self.config.max_document_chars,
        )

    def _options(self, logprobs: bool) -> dict[str, Any]:
        return {
            "temperature": self.config.call_temperature(),
            "max_tokens": self.config.call_max_tokens(),
            "logprobs": TOP_LOGPROBS if logprobs else None,
        }

    def _read(self, index: int, read: Callable[[], float]) -> float:
        try:
            return read()
        except AnswerError as exc:
            error = RerankError(PROVIDER, f"candidate {index}: {exc}")
        raise clean_error(error, *self._secrets)

    def _read_window(self, where: str, text: str, count: int) -> list[int]:
        try:
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


__all__ = ["PROVIDER", "TOP_LOGPROBS", "LLMReranker", "rank_scores", "windows"]
