"""``AsyncMemory``: the same surface as ``Memory``, for asyncio programs.

Search and add use the providers' async twins (native async clients where a provider has
them, so a hosted reranker never blocks the event loop); the storage operations run in a
worker thread. ``add(infer=True)`` runs the plan of :mod:`memsift.inference` as ``Memory``
does: one ``aembed`` batch, the scope searches (concurrently), one ``acomplete`` call, one
``aembed`` batch of the new texts, the writes.

The order of writes is ``Memory``'s (see :mod:`memsift.changes`): history events first
(pending), then the store, then the events settled; the events are taken back if the store
write fails, so a call that raises stored nothing. An ``add`` whose task is cancelled while it
writes finishes that write in the background (history and store stay in step), so the memory
may be stored; cancelled before (while the LLM answers, say), it writes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from memsift.bulk import BulkProgress, MemoryItem, aadd_many
from memsift.changes import add_events, awrite_change, new_records, settle, take_back
from memsift.config import MemoryConfig
from memsift.inference import SIMILAR_MEMORIES, InferAdd, added_response, plan_add
from memsift.inputs import DELETE_ALL_ARGS, GET_ALL_ARGS, SEARCH_ARGS, reject_unknown
from memsift.memory import MemoryCore
from memsift.records import FloatArray, MemoryRecord
from memsift.retrieval import arun_first_stage


class AsyncMemory(MemoryCore):
    """Long-term memory with reranker-enhanced search, for asyncio."""

    @classmethod
    def from_config(cls, config: MemoryConfig | Mapping[str, Any] | None = None) -> AsyncMemory:
        """Build an AsyncMemory from a config dict (see :class:`memsift.MemoryConfig`)."""
        return cls(config)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the reranker's async clients on this loop, then everything else."""
        if self.reranker_stage is not None:
            await self.reranker_stage.reranker.aclose()
        await asyncio.to_thread(self.close)

    async def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        prompt: str | None = None,
        **unknown: Any,
    ) -> dict[str, Any]:
        """Store messages as memories; with an LLM (``infer``), store extracted facts.

        As :meth:`memsift.Memory.add`. The embedder's, the store's and the LLM's async twins
        do the work; the writes run in a worker thread and, once started, finish even if the
        task is cancelled.
        """
        plan = plan_add(
            messages, user_id, agent_id, run_id, metadata, infer, prompt, unknown, self.llm
        )
        if plan.infer:
            return await self._add_inferred(InferAdd.build(plan, self.config, self.llm))
        texts = plan.texts
        if not texts:
            return {"results": []}
        records = new_records(texts, plan.scope, plan.metadata)
        vectors = await self.embedder.aembed(texts, purpose="document")
        await asyncio.shield(self._awrite_add(records, vectors))
        return added_response(records)

    async def add_many(
        self,
        items: Sequence[MemoryItem | Mapping[str, Any]],
        *,
        batch_size: int | None = None,
        progress: BulkProgress | None = None,
    ) -> dict[str, Any]:
        """Store many memories, each with its own scope ids and metadata, as
        :meth:`memsift.Memory.add_many`; a batch's write, once started, finishes even if the
        task is cancelled, and a call that raises or is cancelled stored nothing."""
        job = (self.embedder, self.vector_store, self.history_db, items)
        return await aadd_many(*job, batch_size=batch_size, progress=progress)

    async def _add_inferred(self, job: InferAdd) -> dict[str, Any]:
        """The async twin of ``Memory._add_inferred``."""
        queries = job.queries()
        if not queries:
            return {"results": []}
        store, llm = self.vector_store, self.llm
        assert llm is not None
        found = await self.embedder.aembed(queries, purpose="query")
        searches = [
            store.asearch(v, filters=job.scope_filter, limit=SIMILAR_MEMORIES) for v in found
        ]
        hits = await asyncio.gather(*searches)
        recent = await asyncio.to_thread(self.history_db.recent_messages, job.scope_key)
        job.set_context(hits, recent)
        messages, response_format = job.request()
        hashes = job.read_answer(await llm.acomplete(messages, response_format=response_format))
        existing: set[str] = set()
        if hashes:
            existing = await asyncio.to_thread(store.find_hashes, hashes, filters=job.scope_filter)
        texts = job.plan_change(existing)
        vectors = await self.embedder.aembed(texts, purpose="document") if texts else found[:0]
        steps = job.steps(vectors, store, self.embedder)
        await asyncio.shield(awrite_change(self.history_db, steps, job.log()))
        return job.response()

    async def _awrite_add(self, records: Sequence[MemoryRecord], vectors: FloatArray) -> None:
        """History first (pending), then the store, then the events settled; they are taken
        back if the store fails (:func:`memsift.changes.record_then`'s order)."""
        ids = await asyncio.to_thread(self.history_db.record, add_events(records))
        try:
            await self.vector_store.ainsert(records, vectors)
        except Exception:
            await asyncio.to_thread(take_back, self.history_db, ids)
            raise
        await asyncio.to_thread(settle, self.history_db, ids)

    async def search(
        self,
        query: str,
        *,
        filters: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        top_k: int = 10,
        rerank: bool | None = None,
        threshold: float | None = None,
        hybrid: bool | None = None,
        **unknown: Any,
    ) -> dict[str, Any]:
        """Search memories within a scope; rerank the candidate pool when a reranker applies.

        Returns ``{"results": [...], "rerank": {...}, "first_stage": {...}, "timings":
        {...}}``, as :meth:`memsift.Memory.search`; the embedder, the store and the reranker
        are awaited through their async twins, so a hosted reranker never blocks the loop.
        """
        reject_unknown("search", unknown, SEARCH_ARGS)
        timings: dict[str, float] = {"_start": time.perf_counter()}
        scope = (user_id, agent_id, run_id)
        plan = self._plan_search(query, filters, scope, top_k, rerank, threshold, hybrid)
        t0 = time.perf_counter()
        vectors = await self.embedder.aembed([plan.query], purpose="query")
        timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        first = await arun_first_stage(self.vector_store, plan, vectors[0])
        timings.update(first.timings)
        if plan.rerank and self.reranker_stage is not None and first.hits:
            outcome = await self.reranker_stage.arun(plan.query, first.hits[: plan.pool])
        else:
            outcome = self._skipped_outcome()
        timings["rerank_ms"] = outcome.duration_ms
        timings["rerank_provider_ms"] = outcome.provider_ms
        return self._respond(plan, first, outcome, timings, is_async=True)

    async def get(self, memory_id: str) -> dict[str, Any]:
        """The memory with this id; MemoryNotFoundError if there is none."""
        return await asyncio.to_thread(self._get, memory_id)

    async def get_all(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        top_k: int = 100,
        **unknown: Any,
    ) -> dict[str, Any]:
        """Memories within a scope (newest first), at most ``top_k``."""
        reject_unknown("get_all", unknown, GET_ALL_ARGS)
        return await asyncio.to_thread(self._get_all, filters, user_id, agent_id, run_id, top_k)

    async def update(
        self, memory_id: str, data: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Replace a memory's text (re-embedded) and, when given, its metadata."""
        return await asyncio.to_thread(self._update, memory_id, data, metadata)

    async def delete(self, memory_id: str) -> dict[str, Any]:
        """Delete one memory; MemoryNotFoundError if there is none."""
        return await asyncio.to_thread(self._delete, memory_id)

    async def delete_all(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        **unknown: Any,
    ) -> dict[str, Any]:
        """Delete every memory within a scope; returns how many were deleted."""
        reject_unknown("delete_all", unknown, DELETE_ALL_ARGS)
        return await asyncio.to_thread(self._delete_all, filters, user_id, agent_id, run_id)

    async def history(self, memory_id: str) -> list[dict[str, Any]]:
        """The ADD / UPDATE / DELETE events of a memory, oldest first."""
        return await asyncio.to_thread(self._history, memory_id)

    async def reset(self) -> None:
        """Delete every memory and the whole history."""
        await asyncio.to_thread(self._reset)
