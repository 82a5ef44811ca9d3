"""The abstract bases every provider implements (``Embedder``, ``Reranker``, ``VectorStore``,
``LLM``) and their config bases.

A provider is a class with a pydantic config model. The core builds it as
``ProviderClass(config)``; the pipeline owns ordering, truncation, caching, timing and
fallback, so providers stay small. Each sync method has an async twin whose default runs
the sync one in a worker thread; providers with native async clients override it. What a
store may do beyond the required methods (finding records by hash, saying where its files
are, keyword search) is a declared method with a default, never probed for with ``getattr``.

The plain data types (``MemoryRecord``, ``VectorHit``, ``KeywordHit``, ``Candidate``,
``EmbedderIdentity``, ``FloatArray``) live in :mod:`memsift.records` and are re-exported here,
where plugins import them from.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memsift.completions import (
    Completion,
    LLMCapabilities,
    ResponseFormat,
    json_object,
)
from memsift.errors import InvalidInputError, StoreError
from memsift.filters.ast import MatchAll
from memsift.records import (
    Candidate,
    EmbedderIdentity,
    FloatArray,
    KeywordHit,
    MemoryRecord,
    VectorHit,
)

if TYPE_CHECKING:
    from memsift.filters.ast import Filter

ProviderKind = Literal["embedder", "reranker", "vector_store", "llm"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("vector_store", "embedder", "llm", "reranker")


# --------------------------------------------------------------------------- configs


class ProviderConfig(BaseModel):
    """Base of every provider's config: unknown keys are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class EmbedderConfig(ProviderConfig):
    """Base config of an embedder."""


class VectorStoreConfig(ProviderConfig):
    """Base config of a vector store."""


class LLMConfig(ProviderConfig):
    """Base config of an LLM."""


class RerankerConfig(ProviderConfig):
    """Base config of a reranker: the options the search pipeline honours for every provider.

    ``top_k`` is the candidate pool: how many vector-stage candidates the reranker scores
    (default ``min(max(3 * top_k, 20), 100)`` of the search's ``top_k``).
    """

    top_k: int | None = Field(default=None, ge=1, le=1000, description="candidate pool size")
    timeout: float | None = Field(default=None, gt=0, description="seconds before fallback")
    on_error: Literal["fallback", "raise"] = Field(
        default="fallback", description="on failure: return vector order, or raise"
    )
    cache_size: int = Field(default=0, ge=0, description="entries in the rerank-score cache")


# --------------------------------------------------------------------------- providers


def check_rerank_input(query: Any, documents: Any) -> list[str]:
    """Validate a reranker's arguments; raise InvalidInputError. Returns the documents."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query must not be empty")
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise InvalidInputError("documents must be a sequence of strings")
    docs = list(documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise InvalidInputError(f"documents[{i}] must be a string, got {type(doc).__name__}")
    return docs


def check_embed_input(texts: Any) -> list[str]:
    """Validate an embedder's ``texts``; raise InvalidInputError. Returns them as a list.

    A single string (or bytes) is refused rather than embedded character by character.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            "texts must be a sequence of strings, not a single string; wrap it in a list"
        )
    if not isinstance(texts, Iterable):
        raise InvalidInputError(f"texts must be a sequence of strings, got {type(texts).__name__}")
    items: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] must be a string, got {type(text).__name__}")
        items.append(text)
    return items


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors."""

    def __init__(self, config: EmbedderConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def dims(self) -> int:
        """The dimension of the vectors this embedder returns."""

    @property
    def model_name(self) -> str:
        """The model's name, recorded by the store to refuse mixing embedders."""
        return str(getattr(self.config, "model", "") or "")

    @abstractmethod
    def embed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        """Embed ``texts`` in one batch: an array of shape ``(len(texts), dims)``."""

    async def aembed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        return await asyncio.to_thread(self.embed, texts, purpose=purpose)

    def close(self) -> None:
        """Release resources (sessions, clients). Default: nothing."""


class Reranker(ABC):
    """Scores documents against a query: one score per document, in input order.

    Built-in rerankers return scores in [0, 1] so scores compare across providers.
    """

    config: RerankerConfig

    def __init__(self, config: RerankerConfig) -> None:
        self.config = config

    @property
    def model_name(self) -> str:
        return str(getattr(self.config, "model", "") or "")

    @abstractmethod
    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """Return one score per document, in the order of ``documents``."""

    async def arerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.rerank, query, documents)

    @property
    def uses_keyword_scores(self) -> bool:
        """Whether this reranker reads :attr:`Candidate.keyword_score` (the store's BM25 score
        of each candidate, with term statistics from the whole collection).

        When it does and the store has a keyword index, the search pipeline fills that score
        for every candidate of the pool, and the hybrid first stage's ``"auto"`` default
        applies (see :class:`memsift.config.SearchConfig`). Default: False.
        """
        return False

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        """What the search pipeline calls: by default ``rerank`` on the candidates' texts.

        Override it to use more than the text (the vector score, the metadata).
        """
        return self.rerank(query, [c.text for c in candidates])

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        """The async twin of :meth:`score_candidates`.

        By default: ``arerank`` on the texts, or ``score_candidates`` in a worker thread
        when a subclass overrides ``score_candidates`` (so both paths score alike).
        """
        if type(self).score_candidates is not Reranker.score_candidates:
            return await asyncio.to_thread(self.score_candidates, query, candidates)
        return await self.arerank(query, [c.text for c in candidates])

    def close(self) -> None:
        """Release resources (sessions, clients). Default: nothing."""

    async def aclose(self) -> None:
        self.close()


class LLM(ABC):
    """Answers chat messages (``{"role", "content"}`` dicts, roles system/user/assistant).

    Implement :meth:`complete` (and :meth:`acomplete` with a native async client); declare
    what the provider can do in :attr:`capabilities`. :meth:`generate` is the text-only
    convenience every caller may use. Raise :class:`memsift.LLMError` (a ``ProviderError``:
    provider, HTTP status, message — never a credential) when the provider fails.
    """

    def __init__(self, config: LLMConfig) -> None:
        self.config = config

    @property
    def model_name(self) -> str:
        return str(getattr(self.config, "model", "") or "")

    @property
    def capabilities(self) -> LLMCapabilities:
        """What this provider can do beyond free text. Default: nothing."""
        return LLMCapabilities()

    @abstractmethod
    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        """Answer ``messages``.

        ``response_format``: see :mod:`memsift.completions`; ``temperature`` and
        ``max_tokens``: ``None`` means the provider's config. ``logprobs``: ask for that many
        alternatives per token (0 = the chosen token's only); a provider that cannot, or a
        server that ignores it, answers with ``Completion.logprobs = None``.
        """

    async def acomplete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        """The async twin of :meth:`complete` (default: it, in a worker thread)."""
        return await asyncio.to_thread(
            self.complete,
            messages,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            logprobs=logprobs,
        )

    def generate(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_output: bool = False,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """The answer's text; ``json_output=True`` asks for a JSON object."""
        fmt = json_object() if json_output and response_format is None else response_format
        return self.complete(
            messages, response_format=fmt, temperature=temperature, max_tokens=max_tokens
        ).text

    async def agenerate(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_output: bool = False,
        response_format: ResponseFormat | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """The async twin of :meth:`generate`."""
        fmt = json_object() if json_output and response_format is None else response_format
        answer = await self.acomplete(
            messages, response_format=fmt, temperature=temperature, max_tokens=max_tokens
        )
        return answer.text

    def close(self) -> None:
        """Release resources. Default: nothing."""

    async def aclose(self) -> None:
        self.close()


class VectorStore(ABC):
    """Holds memories and their vectors; answers exact filtered similarity searches.

    Every store must give the same answer as :func:`memsift.filters.evaluate` for every
    filter (pre-filtering: a selective filter never yields fewer hits than exist).
    Scores are similarities: higher is better.
    """

    def __init__(self, config: VectorStoreConfig) -> None:
        self.config = config

    @abstractmethod
    def open(self, identity: EmbedderIdentity) -> None:
        """Bind the store to an embedder; raise EmbedderMismatchError if filled by another."""

    @abstractmethod
    def insert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        """Store records with their vectors atomically: all or none."""

    @abstractmethod
    def search(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        """The best ``limit`` records that satisfy ``filters`` exactly, best first."""

    @abstractmethod
    def get(self, memory_id: str) -> MemoryRecord | None:
        """The record with this id, or None."""

    @abstractmethod
    def list_records(self, *, filters: Filter, limit: int) -> list[MemoryRecord]:
        """Records that satisfy ``filters``, newest first, at most ``limit``."""

    @abstractmethod
    def update(self, record: MemoryRecord, vector: FloatArray | None) -> None:
        """Replace a record (and its vector when given)."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Delete records by id; return how many existed."""

    @abstractmethod
    def reset(self) -> None:
        """Delete every record (the embedder binding is forgotten too)."""

    def close(self) -> None:
        """Flush and release resources. Default: nothing."""

    def find_hashes(self, hashes: Sequence[str], *, filters: Filter) -> set[str]:
        """Which of ``hashes`` the records that satisfy ``filters`` have.

        ``add(infer=True)`` calls it to skip extracted facts the scope already holds. The
        default lists the matching records; a store that can look hashes up directly (an
        index on the hash) overrides it.
        """
        wanted = set(hashes)
        records = self.list_records(filters=filters, limit=1_000_000)
        return {r.hash for r in records if r.hash in wanted}

    def count(self, *, filters: Filter | None = None) -> int:
        """How many records satisfy ``filters`` (every record when None).

        ``memsift eval`` calls it to tell whether the store already holds a dataset. The
        default counts what :meth:`list_records` returns with a limit of 1,000,000 (so it
        lists every record, and never counts past that limit); a store that can count
        directly (``SELECT COUNT(*)``, a count endpoint) overrides it.
        """
        scope = MatchAll() if filters is None else filters
        return len(self.list_records(filters=scope, limit=1_000_000))

    def get_vectors(self, ids: Sequence[str]) -> FloatArray:
        """The stored vectors of ``ids``, one row each in their order (``memsift migrate``
        copies them, and compares a sample at the end). A cosine store may return them
        normalised to unit length. An id that is not stored raises
        :class:`~memsift.errors.MemoryNotFoundError`.

        The default raises :class:`~memsift.errors.StoreError`: a store that can read its
        vectors back overrides it.
        """
        raise StoreError(
            f"the {type(self).__name__} store cannot return stored vectors (it does not "
            "implement get_vectors), so memsift migrate cannot copy from it"
        )

    @property
    def supports_keyword_search(self) -> bool:
        """Whether the store has a keyword index: :meth:`keyword_search` and
        :meth:`keyword_scores` work.

        Default False: the search pipeline then runs the vector stage alone (the hybrid first
        stage falls back, and the response says why), and the ``bm25`` reranker takes its
        term statistics from the candidate pool.
        """
        return False

    def keyword_search(
        self, query: str, *, filters: Filter, limit: int, vector: FloatArray | None = None
    ) -> list[KeywordHit]:
        """The best ``limit`` records for ``query`` by BM25 among those that satisfy
        ``filters`` exactly, best first (the keyword side of the hybrid first stage).

        Term statistics (document frequencies, average length) come from the whole
        collection; the store analyses ``query`` as it analysed the stored texts. Records
        that match no query term are left out, so a query with no index term (only stop
        words, say) finds nothing. With ``vector``, each hit carries its vector similarity to
        it (the score :meth:`search` would give). The default raises
        :class:`~memsift.errors.StoreError`: a store with a keyword index overrides it and
        :attr:`supports_keyword_search`.
        """
        raise StoreError(self._no_keyword_index())

    def keyword_scores(
        self, query: str, ids: Sequence[str], *, filters: Filter | None = None
    ) -> dict[str, float]:
        """The BM25 scores of the records ``ids`` for ``query``, with the statistics of
        :meth:`keyword_search`; ids that match no query term (or are not stored) are left
        out. ``filters``, when given, is a filter every one of ``ids`` satisfies (the
        search's): a store may use it to narrow its work, never to drop an id. The default
        raises :class:`~memsift.errors.StoreError`."""
        raise StoreError(self._no_keyword_index())

    def _no_keyword_index(self) -> str:
        return f"the {type(self).__name__} store has no keyword index"

    @property
    def data_directory(self) -> Path | None:
        """The folder that holds the store's files, or None (default) for a store without one.

        ``Memory`` keeps its history database (``history.db``) there unless the config sets
        ``history_db_path``; without a folder, in ``$MEMSIFT_HOME`` (default ``~/.memsift``).
        """
        return None

    async def ainsert(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        await asyncio.to_thread(self.insert, records, vectors)

    async def asearch(self, vector: FloatArray, *, filters: Filter, limit: int) -> list[VectorHit]:
        return await asyncio.to_thread(self.search, vector, filters=filters, limit=limit)

    async def akeyword_search(
        self, query: str, *, filters: Filter, limit: int, vector: FloatArray | None = None
    ) -> list[KeywordHit]:
        return await asyncio.to_thread(
            self.keyword_search, query, filters=filters, limit=limit, vector=vector
        )

    async def akeyword_scores(
        self, query: str, ids: Sequence[str], *, filters: Filter | None = None
    ) -> dict[str, float]:
        return await asyncio.to_thread(self.keyword_scores, query, ids, filters=filters)


__all__ = [
    "LLM",
    "PROVIDER_KINDS",
    "Candidate",
    "Embedder",
    "EmbedderConfig",
    "EmbedderIdentity",
    "FloatArray",
    "KeywordHit",
    "LLMConfig",
    "MemoryRecord",
    "ProviderConfig",
    "ProviderKind",
    "Reranker",
    "RerankerConfig",
    "VectorHit",
    "VectorStore",
    "VectorStoreConfig",
    "check_embed_input",
    "check_rerank_input",
]
