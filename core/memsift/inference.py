"""The plan of an ``add(infer=True)`` call: what to search for, the context the LLM sees,
how its answer maps back to memories, and the writes. ``Memory`` and ``AsyncMemory`` drive
it (they do the I/O, sync or async, between its phases); it does none itself.

One call, in order:

1. **Context.** The text of the call's last :data:`SEARCHED_MESSAGES` non-system messages
   is embedded in one batch (``purpose="query"``); each vector searches the scope (the
   call's scope ids, as ``search`` pins them) for :data:`SIMILAR_MEMORIES` hits, and the best
   :data:`SIMILAR_MEMORIES` distinct memories overall are shown to the LLM under the ids
   ``"0"``, ``"1"``, ... (best first), never their real ids. The scope's last
   :data:`RECENT_MESSAGES` logged messages (:mod:`memsift.history`) are shown too.
2. **One LLM call** (:mod:`memsift.extraction`: the prompts, the answer's shape, the
   strict parser). The system prompt is the user-facts one, or, when the scope has an
   ``agent_id`` and no ``user_id`` and the call has assistant messages, the agent one (facts
   about the agent, from the assistant's messages). ``custom_instructions`` (config) and
   ``prompt=`` (the call) are appended to it, in that order.
3. **Mapping.** An id in the answer is one of the shown ones or the answer is an
   :class:`~memsift.errors.LLMResponseError`. A fact (or an update's new text) that the scope
   already holds (same hash) or that comes twice in the answer is skipped; an update to the
   text a memory already has is skipped too. Updated memories keep their metadata and
   ``created_at``; new ones get the call's metadata.
4. **Writes.** The new and the updated texts are embedded in one batch
   (``purpose="document"``); then :func:`memsift.changes.write_change`: the ADD / UPDATE /
   DELETE events and the call's messages (for the log) in one history transaction, then one
   ``insert`` of every new memory, one ``update`` per updated memory, one ``delete`` of every
   deleted one. The insert is atomic (the store contract); a failure later undoes what was
   done before, so a call that raises leaves the memories and the history as they were.

In add mode (``infer_mode: "add"``, the default) and when the scope has no memory to show,
the answer may only add facts. The result is ``{"results": [...]}``: ``{"id", "memory",
"event": "ADD"}``, ``{"id", "memory", "event": "UPDATE", "previous_memory"}`` (``memory`` the
new text) and ``{"id", "memory", "event": "DELETE"}`` (``memory`` the deleted text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from memsift.changes import (
    Step,
    add_events,
    delete_event,
    memory_hash,
    new_records,
    now_timestamp,
    update_event,
    updated_record,
)
from memsift.completions import Completion, LLMCapabilities, ResponseFormat
from memsift.config import MemoryConfig
from memsift.errors import InvalidInputError, LLMResponseError
from memsift.extraction import Answer, extraction_messages, parse_answer, response_format_for
from memsift.filters import Filter
from memsift.history import LOG_KEEP, LoggedMessage
from memsift.inputs import (
    ADD_ARGS,
    check_metadata,
    check_prompt,
    check_scope,
    normalize_messages,
    reject_unknown,
    scoped_filter,
)
from memsift.interfaces import LLM, Embedder, VectorStore
from memsift.records import FloatArray, MemoryRecord, VectorHit

InferMode = Literal["add", "reconcile"]

#: How many existing memories of the scope the LLM sees.
SIMILAR_MEMORIES = 10
#: How many of the call's messages (the last ones) search for similar memories.
SEARCHED_MESSAGES = 20
#: How many earlier messages of the scope the LLM sees (the log keeps as many).
RECENT_MESSAGES = LOG_KEEP


@dataclass
class AddPlan:
    """A validated add() call: the messages, scope and metadata, and what to store."""

    pairs: list[tuple[str, str]]
    scope: dict[str, str]
    metadata: dict[str, Any]
    infer: bool
    texts: list[str]
    prompt: str | None = None


def decide_infer(infer: Any, llm: LLM | None) -> bool:
    """``infer=None``: True when an llm is configured; ``infer=True`` needs one."""
    if infer is None:
        return llm is not None
    if not isinstance(infer, bool):
        raise InvalidInputError(f"infer must be True, False or None, got {infer!r}")
    if infer and llm is None:
        raise InvalidInputError(
            "infer=True needs an 'llm' section in the config; pass infer=False to store "
            "the messages as they are"
        )
    return infer


def plan_add(
    messages: Any,
    user_id: Any,
    agent_id: Any,
    run_id: Any,
    metadata: Any,
    infer: Any,
    prompt: Any,
    unknown: Mapping[str, Any],
    llm: LLM | None,
) -> AddPlan:
    """Validate everything add() was given, before anything is read or written."""
    reject_unknown("add", unknown, ADD_ARGS)
    pairs = normalize_messages(messages)
    scope = check_scope(user_id, agent_id, run_id)
    meta = check_metadata(metadata)
    use_llm = decide_infer(infer, llm)
    steer = check_prompt(prompt, use_llm)
    texts = [] if use_llm else [content for role, content in pairs if role != "system"]
    return AddPlan(pairs, scope, meta, use_llm, texts, steer)


def added_response(records: Sequence[MemoryRecord]) -> dict[str, Any]:
    return {"results": [{"id": r.id, "memory": r.memory, "event": "ADD"} for r in records]}


@dataclass
class InferAdd:
    """One ``add(infer=True)`` call, phase by phase (see the module doc)."""

    plan: AddPlan
    mode: InferMode = "add"
    instructions: list[str] = field(default_factory=list)
    capabilities: LLMCapabilities = field(default_factory=LLMCapabilities)
    provider: str = "llm"
    known: list[MemoryRecord] = field(default_factory=list)
    recent: list[tuple[str, str]] = field(default_factory=list)
    new: list[MemoryRecord] = field(default_factory=list)
    updates: list[tuple[MemoryRecord, MemoryRecord]] = field(default_factory=list)
    deletes: list[MemoryRecord] = field(default_factory=list)
    answer: Answer = field(default_factory=Answer)

    @classmethod
    def build(cls, plan: AddPlan, config: MemoryConfig, llm: LLM | None) -> InferAdd:
        """The plan of ``plan``'s call under ``config`` (its mode and instructions)."""
        assert llm is not None and config.llm is not None
        return cls(
            plan,
            mode=config.infer_mode,
            instructions=instructions_of(config.custom_instructions, plan.prompt),
            capabilities=llm.capabilities,
            provider=config.llm.provider,
        )

    def __post_init__(self) -> None:
        self.conversation = [(r, c) for r, c in self.plan.pairs if r != "system"]
        scope = self.plan.scope
        self.agent = (
            "agent_id" in scope
            and "user_id" not in scope
            and any(r == "assistant" for r, _ in self.conversation)
        )
        self.scope_filter: Filter = scoped_filter(
            None,
            user_id=scope.get("user_id"),
            agent_id=scope.get("agent_id"),
            run_id=scope.get("run_id"),
            what="add",
        )
        self.scope_key = (scope.get("user_id"), scope.get("agent_id"), scope.get("run_id"))

    # ------------------------------------------------------------------ 1. context

    def queries(self) -> list[str]:
        """The texts to embed (one batch) and search the scope with; none: nothing to do."""
        return [c for _, c in self.conversation[-SEARCHED_MESSAGES:]]

    def set_context(
        self, hits: Sequence[Sequence[VectorHit]], recent: Sequence[tuple[str, str]]
    ) -> None:
        """Keep the best :data:`SIMILAR_MEMORIES` distinct memories of all searches."""
        best: dict[str, VectorHit] = {}
        for found in hits:
            for hit in found:
                seen = best.get(hit.record.id)
                if seen is None or hit.score > seen.score:
                    best[hit.record.id] = hit
        ranked = sorted(best.values(), key=lambda h: (-h.score, h.record.id))
        self.known = [h.record for h in ranked[:SIMILAR_MEMORIES]]
        self.recent = list(recent)

    # ------------------------------------------------------------------ 2. the LLM call

    @property
    def reconciles(self) -> bool:
        return self.mode == "reconcile" and bool(self.known)

    def request(self) -> tuple[list[dict[str, str]], ResponseFormat | None]:
        """The messages and the ``response_format`` of the one LLM call."""
        messages = extraction_messages(
            self.conversation,
            memories=[r.memory for r in self.known],
            recent=self.recent,
            agent=self.agent,
            reconcile=self.reconciles,
            instructions=self.instructions,
        )
        fmt = response_format_for(
            self.capabilities, reconcile=self.reconciles, known=len(self.known)
        )
        return messages, fmt

    def read_answer(self, completion: Any) -> list[str]:
        """Parse the answer strictly; returns the hashes to look up in the scope."""
        if not isinstance(completion, Completion):
            raise LLMResponseError(
                self.provider, f"complete() must return a Completion, got {type(completion)}"
            )
        self.answer = parse_answer(
            completion.text,
            reconcile=self.reconciles,
            known=len(self.known),
            provider=self.provider,
            finish_reason=completion.finish_reason,
        )
        texts = [*self.answer.facts, *(t for _, t in self.answer.updates)]
        return list(dict.fromkeys(memory_hash(t) for t in texts))

    # ------------------------------------------------------------------ 3. mapping

    def plan_change(self, existing: set[str]) -> list[str]:
        """Decide the new, updated and deleted memories (``existing``: the hashes the scope
        holds); returns the texts to embed, new ones first."""
        taken = set(existing)
        for index, text in self.answer.updates:
            old = self.known[index]
            digest = memory_hash(text)
            if digest == old.hash or digest in taken:
                continue
            taken.add(digest)
            self.updates.append((old, updated_record(old, text, None)))
        self.deletes = [self.known[i] for i in self.answer.deletes]
        facts = []
        for text in self.answer.facts:
            digest = memory_hash(text)
            if digest not in taken:
                taken.add(digest)
                facts.append(text)
        self.new = new_records(facts, self.plan.scope, self.plan.metadata)
        return [r.memory for r in self.new] + [new.memory for _, new in self.updates]

    # ------------------------------------------------------------------ 4. writes

    def steps(self, vectors: FloatArray, store: VectorStore, embedder: Embedder) -> list[Step]:
        """The store writes, in order: insert, updates, delete (see :mod:`memsift.changes`)."""
        steps: list[Step] = []
        new = self.new
        if new:
            ids = [r.id for r in new]
            inserted = vectors[: len(new)]
            steps.append(
                Step(
                    add_events(new),
                    run=lambda: store.insert(new, inserted),
                    arun=lambda: store.ainsert(new, inserted),
                    undo=lambda: store.delete(ids),
                )
            )
        for offset, (old, record) in enumerate(self.updates):
            steps.append(_update_step(store, embedder, old, record, vectors[len(new) + offset]))
        if self.deletes:
            gone = [r.id for r in self.deletes]
            events = [delete_event(r) for r in self.deletes]
            steps.append(Step(events, run=lambda: store.delete(gone)))
        return steps

    def log(self) -> list[LoggedMessage]:
        """The call's messages for the scope's log (the last :data:`RECENT_MESSAGES`)."""
        stamp = now_timestamp()
        user, agent, run = self.scope_key
        return [
            LoggedMessage(role, content, stamp, user_id=user, agent_id=agent, run_id=run)
            for role, content in self.conversation[-RECENT_MESSAGES:]
        ]

    def response(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = added_response(self.new)["results"]
        results += [
            {"id": n.id, "memory": n.memory, "event": "UPDATE", "previous_memory": o.memory}
            for o, n in self.updates
        ]
        results += [{"id": r.id, "memory": r.memory, "event": "DELETE"} for r in self.deletes]
        return {"results": results}


def _update_step(
    store: VectorStore,
    embedder: Embedder,
    old: MemoryRecord,
    new: MemoryRecord,
    vector: FloatArray,
) -> Step:
    """Update one memory; undone by putting the old text back with its vector re-embedded."""

    def undo() -> None:
        store.update(old, embedder.embed([old.memory], purpose="document")[0])

    return Step([update_event(old, new)], run=lambda: store.update(new, vector), undo=undo)


def instructions_of(custom: str | None, prompt: str | None) -> list[str]:
    """The caller's instructions, in the order they are appended to the system prompt."""
    return [text for text in (custom, prompt) if text]


__all__ = [
    "RECENT_MESSAGES",
    "SEARCHED_MESSAGES",
    "SIMILAR_MEMORIES",
    "AddPlan",
    "InferAdd",
    "InferMode",
    "added_response",
    "decide_infer",
    "instructions_of",
    "plan_add",
]
