"""``Memory``: the synchronous memory API, and ``MemoryCore``, what it shares with
``AsyncMemory``: building the providers, validating arguments, planning each call, and
assembling search responses.

Every argument is checked before anything is written (the checks and the limits, such as
:data:`~memsift.inputs.MAX_MEMORY_CHARS`, are in :mod:`memsift.inputs`). The search pipeline
is :mod:`memsift.search`; ``add(infer=True)`` is planned by :mod:`memsift.inference` (one
LLM call; its prompts and strict parser are in :mod:`memsift.extraction`) and driven here.
Raised means not stored: a change writes its history events first, then the store, and takes the
events back if the store write fails (:mod:`memsift.changes`), so an ``add``, ``update``,
``delete`` or ``delete_all`` that raises leaves the memories and their history as they were.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memsift.bulk import BulkProgress, MemoryItem, add_many
from memsift.changes import (
    add_events,
    delete_event,
    memory_hash,
    new_records,
    now_timestamp,
    open_history,
    record_then,
    update_event,
    updated_record,
    write_change,
)
from memsift.config import MemoryConfig, memsift_home
from memsift.errors import InvalidInputError, MemoryNotFoundError
from memsift.extraction import EXTRACTION_PROMPT, extraction_messages, parse_facts
from memsift.filters import scope_ids
from memsift.inference import SIMILAR_MEMORIES, AddPlan, InferAdd, added_response, plan_add
from memsift.inputs import (
    ADD_ARGS,
    DELETE_ALL_ARGS,
    GET_ALL_ARGS,
    MAX_BATCH,
    MAX_MEMORY_CHARS,
    SEARCH_ARGS,
    check_memory_id,
    check_metadata,
    check_query,
    check_scope,
    check_text,
    check_threshold,
    check_top_k,
    normalize_messages,
    reject_unknown,
    scoped_filter,
)
from memsift.interfaces import (
    LLM,
    Embedder,
    EmbedderIdentity,
    MemoryRecord,
    Reranker,
    VectorStore,
)
from memsift.observers import notify_search
from memsift.retrieval import FirstStage, SearchPlan, check_hybrid, plan_stages, run_first_stage
from memsift.search import RerankOutcome, RerankStage, SearchEvent, assemble

log = logging.getLogger("memsift")


class MemoryCore:
    """What Memory and AsyncMemory share: providers, validation, record building."""

    def __init__(self, config: MemoryConfig | Mapping[str, Any] | None = None) -> None:
        self.config = MemoryConfig.from_dict(config)
        cfg = self.config
        emb_spec = cfg.spec("embedder")
        store_spec = cfg.spec("vector_store")
        assert emb_spec is not None and store_spec is not None
        self.embedder: Embedder = emb_spec.build(cfg.embedder.config)
        self.vector_store: VectorStore = store_spec.build(cfg.vector_store.config)
        self.llm: LLM | None = None
        self.reranker_stage: RerankStage | None = None
        self.search_options = cfg.search
        try:
            if cfg.llm is not None:
                llm_spec = cfg.spec("llm")
                assert llm_spec is not None
                self.llm = llm_spec.build(cfg.llm.config)
            if cfg.reranker is not None:
                rr_spec = cfg.spec("reranker")
                assert rr_spec is not None
                reranker: Reranker = rr_spec.build(cfg.reranker.config)
                self.reranker_stage = RerankStage.build(cfg.reranker.provider, reranker)
            self.identity = EmbedderIdentity(
                provider=cfg.embedder.provider,
                model=self.embedder.model_name,
                dims=self.embedder.dims,
            )
            self.vector_store.open(self.identity)
            history_path = cfg.history_db_path or self._default_history_path()
            store = self.vector_store
            self.history_db = open_history(history_path, store.get, store.count)
        except BaseException:
            self.vector_store.close()
            raise
        self._finalizer = weakref.finalize(self, _close_all, self._closables())

    def _default_history_path(self) -> Path:
        directory = self.vector_store.data_directory
        return (directory if directory is not None else memsift_home()) / "history.db"

    def _closables(self) -> list[Any]:
        items: list[Any] = [self.vector_store, self.embedder]
        if self.reranker_stage is not None:
            items.append(self.reranker_stage)
        if self.llm is not None:
            items.append(self.llm)
        items.append(self.history_db)
        return items

    @property
    def reranker(self) -> Reranker | None:
        return None if self.reranker_stage is None else self.reranker_stage.reranker

    def close(self) -> None:
        """Save the index and release every provider. Also runs at interpreter exit."""
        self._finalizer()

    # ------------------------------------------------------------------ helpers

    def _decide_rerank(self, rerank: Any) -> bool:
        if rerank is None:
            return self.reranker_stage is not None
        if not isinstance(rerank, bool):
            raise InvalidInputError(f"rerank must be True, False or None, got {rerank!r}")
        if rerank and self.reranker_stage is None:
            raise InvalidInputError(
                "rerank=True but no reranker is configured; add a 'reranker' section to the "
                "config (e.g. {'provider': 'bm25'})"
            )
        return rerank

    def _plan_search(
        self,
        query: Any,
        filters: Any,
        scope: tuple[Any, Any, Any],
        top_k: Any,
        rerank: Any,
        threshold: Any,
        hybrid: Any,
    ) -> SearchPlan:
        user_id, agent_id, run_id = scope
        query = check_query(query)
        top_k = check_top_k(top_k)
        threshold = check_threshold(threshold)
        parsed = scoped_filter(
            filters, user_id=user_id, agent_id=agent_id, run_id=run_id, what="search"
        )
        apply = self._decide_rerank(rerank)
        stage = self.reranker_stage
        return plan_stages(
            query=query,
            filters=parsed,
            top_k=top_k,
            threshold=threshold,
            rerank=apply and stage is not None,
            pool=stage.pool_size(top_k) if apply and stage is not None else 0,
            hybrid=check_hybrid(hybrid),
            options=self.search_options,
            store=self.vector_store,
            reranker=self.reranker,
        )

    def _skipped_outcome(self) -> RerankOutcome:
        stage = self.reranker_stage
        if stage is None:
            return RerankOutcome(provider=None, model=None)
        return RerankOutcome(provider=stage.name, model=stage.reranker.model_name or None)

    def _respond(
        self,
        plan: SearchPlan,
        first: FirstStage,
        outcome: RerankOutcome,
        timings: dict[str, float],
        *,
        is_async: bool,
    ) -> dict[str, Any]:
        start = time.perf_counter()
        hits = first.hits
        results = assemble(hits, outcome, top_k=plan.top_k, threshold=plan.threshold)
        timings["assemble_ms"] = (time.perf_counter() - start) * 1000
        timings["total_ms"] = (time.perf_counter() - timings.pop("_start")) * 1000
        rounded = {k: round(v, 3) for k, v in timings.items()}
        block = first.block()
        response = {
            "results": results,
            "rerank": outcome.block(),
            "first_stage": block,
            "timings": rounded,
        }
        notify_search(
            lambda: SearchEvent(
                query=plan.query,
                top_k=plan.top_k,
                results=len(results),
                candidates=len(hits),
                rerank=outcome.block(),
                timings=dict(rounded),
                is_async=is_async,
                first_stage=dict(block),
            )
        )
        return response

    def _updated_record(
        self, memory_id: Any, data: Any, metadata: Any
    ) -> tuple[MemoryRecord, MemoryRecord]:
        memory_id = check_memory_id(memory_id)
        text = check_text(data, "data")
        meta = check_metadata(metadata) if metadata is not None else None
        old = self.vector_store.get(memory_id)
        if old is None:
            raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
        return old, updated_record(old, text, meta)

    # ------------------------------------------------------------------ shared sync work

    def _get(self, memory_id: Any) -> dict[str, Any]:
        memory_id = check_memory_id(memory_id)
        record = self.vector_store.get(memory_id)
        if record is None:
            raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
        return record.to_dict()

    def _get_all(
        self, filters: Any, user_id: Any, agent_id: Any, run_id: Any, top_k: Any
    ) -> dict[str, Any]:
        top_k = check_top_k(top_k, maximum=1_000_000)
        parsed = scoped_filter(
            filters, user_id=user_id, agent_id=agent_id, run_id=run_id, what="get_all"
        )
        records = self.vector_store.list_records(filters=parsed, limit=top_k)
        return {"results": [r.to_dict() for r in records]}

    def _update(self, memory_id: Any, data: Any, metadata: Any) -> dict[str, Any]:
        old, new = self._updated_record(memory_id, data, metadata)
        vector = None if new.hash == old.hash else self.embedder.embed([new.memory])[0]
        events = [update_event(old, new)]
        record_then(self.history_db, events, lambda: self.vector_store.update(new, vector))
        return {"id": new.id, "memory": new.memory, "event": "UPDATE"}

    def _delete(self, memory_id: Any) -> dict[str, Any]:
        memory_id = check_memory_id(memory_id)
        record = self.vector_store.get(memory_id)
        if record is None:
            raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
        events = [delete_event(record)]
        record_then(self.history_db, events, lambda: self.vector_store.delete([memory_id]))
        return {"id": memory_id, "event": "DELETE"}

    def _delete_all(self, filters: Any, user_id: Any, agent_id: Any, run_id: Any) -> dict[str, Any]:
        parsed = scoped_filter(
            filters, user_id=user_id, agent_id=agent_id, run_id=run_id, what="delete_all"
        )
        records = self.vector_store.list_records(filters=parsed, limit=10_000_000)
        self.history_db.forget_messages(scope_ids(parsed))  # the add(infer=True) log
        ids = [r.id for r in records]
        events = [delete_event(r) for r in records]
        deleted = record_then(self.history_db, events, lambda: self.vector_store.delete(ids))
        return {"deleted": deleted, "message": f"deleted {deleted} memories"}

    def _history(self, memory_id: Any) -> list[dict[str, Any]]:
        memory_id = check_memory_id(memory_id)
        return self.history_db.get(memory_id)

    def _reset(self) -> None:
        self.vector_store.reset()
        self.history_db.reset()


def _close_all(items: list[Any]) -> None:
    for item in items:
        try:
            item.close()
        except Exception:  # closing must not raise at exit
            log.exception("error while closing %r", item)


class Memory(MemoryCore):
    """Long-term memory with reranker-enhanced search.

    >>> m = Memory.from_config({"reranker": {"provider": "bm25"}})   # doctest: +SKIP
    >>> m.add("I love Italian food", user_id="alice")                  # doctest: +SKIP
    >>> m.search("what food?", filters={"user_id": "alice"})         # doctest: +SKIP
    """

    @classmethod
    def from_config(cls, config: MemoryConfig | Mapping[str, Any] | None = None) -> Memory:
        """Build a Memory from a config dict (see :class:`memsift.MemoryConfig`)."""
        return cls(config)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ add

    def add(
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

        ``infer=None``: infer when the config has an ``llm``. ``prompt``: instructions for
        the extraction (added to the config's ``custom_instructions``). Returns
        ``{"results": [{"id", "memory", "event"}, ...]}`` (events ADD, UPDATE, DELETE; see
        :mod:`memsift.inference`). An LLM failure raises :class:`memsift.LLMError`, an answer
        that cannot be parsed :class:`memsift.LLMResponseError`; neither writes anything.
        """
        plan = plan_add(
            messages, user_id, agent_id, run_id, metadata, infer, prompt, unknown, self.llm
        )
        if plan.infer:
            return self._add_inferred(InferAdd.build(plan, self.config, self.llm))
        texts = plan.texts
        if not texts:
            return {"results": []}
        records = new_records(texts, plan.scope, plan.metadata)
        vectors = self.embedder.embed(texts, purpose="document")
        record_then(
            self.history_db, add_events(records), lambda: self.vector_store.insert(records, vectors)
        )
        return added_response(records)

    def add_many(
        self,
        items: Sequence[MemoryItem | Mapping[str, Any]],
        *,
        batch_size: int | None = None,
        progress: BulkProgress | None = None,
    ) -> dict[str, Any]:
        """Store many memories, each with its own text, scope ids, metadata and (optional)
        timestamps, embedded and written in batches; every item is checked first, and a call
        that raises stored nothing (:mod:`memsift.bulk`). ``progress(done, total)`` is called
        after each batch. Returns ``{"results": [{"id", "memory", "event"}, ...]}``."""
        job = (self.embedder, self.vector_store, self.history_db, items)
        return add_many(*job, batch_size=batch_size, progress=progress)

    def _add_inferred(self, job: InferAdd) -> dict[str, Any]:
        """Drive an add(infer=True): one embed batch, the searches, one LLM call, one embed
        batch of the new texts, the writes."""
        queries = job.queries()
        if not queries:
            return {"results": []}
        store, llm = self.vector_store, self.llm
        assert llm is not None
        found = self.embedder.embed(queries, purpose="query")
        hits = [store.search(v, filters=job.scope_filter, limit=SIMILAR_MEMORIES) for v in found]
        job.set_context(hits, self.history_db.recent_messages(job.scope_key))
        messages, response_format = job.request()
        hashes = job.read_answer(llm.complete(messages, response_format=response_format))
        existing = store.find_hashes(hashes, filters=job.scope_filter) if hashes else set()
        texts = job.plan_change(existing)
        vectors = self.embedder.embed(texts, purpose="document") if texts else found[:0]
        write_change(self.history_db, job.steps(vectors, store, self.embedder), job.log())
        return job.response()

    # ------------------------------------------------------------------ search

    def search(
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

        ``hybrid``: fuse the store's keyword (BM25) candidates with the vector ones (None:
        the config's ``search.hybrid``; see :mod:`memsift.retrieval`). Returns
        ``{"results": [...], "rerank": {...}, "first_stage": {...}, "timings": {...}}``.
        """
        reject_unknown("search", unknown, SEARCH_ARGS)
        timings: dict[str, float] = {"_start": time.perf_counter()}
        scope = (user_id, agent_id, run_id)
        plan = self._plan_search(query, filters, scope, top_k, rerank, threshold, hybrid)
        t0 = time.perf_counter()
        vector = self.embedder.embed([plan.query], purpose="query")[0]
        timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        first = run_first_stage(self.vector_store, plan, vector)
        timings.update(first.timings)
        if plan.rerank and self.reranker_stage is not None and first.hits:
            outcome = self.reranker_stage.run(plan.query, first.hits[: plan.pool])
        else:
            outcome = self._skipped_outcome()
        timings["rerank_ms"] = outcome.duration_ms
        timings["rerank_provider_ms"] = outcome.provider_ms
        return self._respond(plan, first, outcome, timings, is_async=False)

    # ------------------------------------------------------------------ read & change

    def get(self, memory_id: str) -> dict[str, Any]:
        """The memory with this id; MemoryNotFoundError if there is none."""
        return self._get(memory_id)

    def get_all(
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
        return self._get_all(filters, user_id, agent_id, run_id, top_k)

    def update(
        self, memory_id: str, data: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Replace a memory's text (re-embedded) and, when given, its metadata."""
        return self._update(memory_id, data, metadata)

    def delete(self, memory_id: str) -> dict[str, Any]:
        """Delete one memory; MemoryNotFoundError if there is none."""
        return self._delete(memory_id)

    def delete_all(
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
        return self._delete_all(filters, user_id, agent_id, run_id)

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        """The ADD / UPDATE / DELETE events of a memory, oldest first."""
        return self._history(memory_id)

    def reset(self) -> None:
        """Delete every memory and the whole history."""
        self._reset()


# This module's names, and names that moved to memsift.changes, memsift.extraction and
# memsift.inputs (still importable from here).
__all__ = [
    "ADD_ARGS",
    "DELETE_ALL_ARGS",
    "EXTRACTION_PROMPT",
    "GET_ALL_ARGS",
    "MAX_BATCH",
    "MAX_MEMORY_CHARS",
    "SEARCH_ARGS",
    "AddPlan",
    "InferAdd",
    "Memory",
    "MemoryCore",
    "added_response",
    "check_memory_id",
    "check_metadata",
    "check_scope",
    "check_text",
    "extraction_messages",
    "memory_hash",
    "normalize_messages",
    "now_timestamp",
    "parse_facts",
    "reject_unknown",
]
