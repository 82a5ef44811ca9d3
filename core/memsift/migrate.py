"""Copying every memory from one store to another: what ``memsift migrate`` runs.

:func:`migrate` opens the store (and the history database) of each config, and copies every
memory of the source -- its record (text, hash, metadata, scope ids, timestamps), its vector
(:meth:`~memsift.interfaces.VectorStore.get_vectors`) and its history events -- to the target,
in batches, through the public :class:`~memsift.interfaces.VectorStore` interface, so any two
stores work. The history of memories deleted from the source is copied too.

- **Same embedder.** Vectors are copied, never re-embedded, so both configs must name the
  same embedder (provider, model, dimension); a target already filled by another embedder
  refuses to open (:class:`~memsift.errors.EmbedderMismatchError`).
- **Resumable.** Memories whose id the target already holds are skipped, so a migration
  that was interrupted (even killed) is finished by running it again. A batch writes its
  history events first (replacing any events of those memories a killed run left behind),
  then the store, so a rerun never doubles an event.
- **Verified.** At the end, every memory of the source must be in the target with the same
  record, the target must hold at least as many memories per scope
  (``(user_id, agent_id, run_id)``) as the source, a sample of vectors must agree (cosine
  >= :data:`MIN_COSINE`), and the sample's history events must be the same.

Only the ``vector_store``, ``embedder`` and ``history_db_path`` sections of each config are
used; ``llm`` and ``reranker`` sections are ignored.

A migration does not go through :meth:`memsift.Memory.add_many` (the bulk path of imports):
that embeds the texts, gives them new ids and writes new ADD events, where a migration keeps
the vectors, the ids and the whole history as they are. Both write the same way -- a batch's
history first, then one store ``insert`` of records that each carry their own scope ids,
metadata and timestamps.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsift.config import MemoryConfig, memsift_home
from memsift.errors import ConfigError, MemoryNotFoundError
from memsift.filters import MatchAll
from memsift.history import History
from memsift.interfaces import Embedder, EmbedderIdentity, MemoryRecord, VectorStore

#: Sampled vectors must agree at least this well (cosine similarity).
MIN_COSINE = 0.9999
#: The ``limit`` of the listings that read every memory of a store.
ALL = 1_000_000_000
#: How many problems a report keeps.
MAX_PROBLEMS = 20

Scope = tuple[str | None, str | None, str | None]
#: ``progress(phase, done, total)``: phase ``"copy"`` or ``"verify"``.
Progress = Callable[[str, int, int], None]


@dataclass
class MigrationReport:
    """What :func:`migrate` did, and what its verification found."""

    source: str
    target: str
    total: int = 0  # memories in the source
    copied: int = 0  # copied by this run
    skipped: int = 0  # already in the target (an earlier run copied them)
    vanished: int = 0  # deleted from the source while the migration ran
    history_events: int = 0  # history events copied by this run
    history_copied: bool = True  # False when both configs share one history database
    scopes: dict[Scope, tuple[int, int]] = field(default_factory=dict)  # source, target
    sampled: int = 0
    min_cosine: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Whether the verification found nothing wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "total": self.total,
            "copied": self.copied,
            "skipped": self.skipped,
            "vanished": self.vanished,
            "history_events": self.history_events,
            "history_copied": self.history_copied,
            "scopes": [
                {"user_id": s[0], "agent_id": s[1], "run_id": s[2], "source": a, "target": b}
                for s, (a, b) in sorted(self.scopes.items(), key=_scope_key)
            ],
            "sampled": self.sampled,
            "min_cosine": self.min_cosine,
            "verified": self.verified,
            "problems": list(self.problems),
        }


@dataclass
class _Side:
    """One end of a migration: its store, history database and embedder identity."""

    label: str
    section: Any
    store: VectorStore
    history: History
    identity: EmbedderIdentity

    def close(self) -> None:
        for closable in (self.store, self.history):
            with contextlib.suppress(Exception):  # must not hide the migration's own error
                closable.close()


def migrate(
    source: MemoryConfig | Mapping[str, Any],
    target: MemoryConfig | Mapping[str, Any],
    *,
    batch_size: int = 256,
    sample: int = 200,
    progress: Progress | None = None,
    seed: int = 0,
) -> MigrationReport:
    """Copy every memory of ``source`` to ``target`` and verify the copy (see the module doc).

    ``batch_size`` memories are read, written and reported at a time; ``sample`` vectors
    (and their memories' history) are compared at the end. Raises
    :class:`~memsift.errors.ConfigError` when the configs name different embedders or the
    same store, and the errors of the stores themselves.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if sample < 0:
        raise ConfigError(f"sample must be at least 0, got {sample}")
    src_cfg, dst_cfg = MemoryConfig.from_dict(source), MemoryConfig.from_dict(target)
    if _same_store(src_cfg, dst_cfg):
        raise ConfigError("--from and --to name the same store; nothing to migrate")
    src_identity = _embedder_identity(src_cfg)
    same = src_cfg.embedder == dst_cfg.embedder  # one embedder section: build it once
    dst_identity = src_identity if same else _embedder_identity(dst_cfg)
    if src_identity != dst_identity:
        raise ConfigError(_identity_problem(src_identity, dst_identity))
    src = _open_side("source", src_cfg, src_identity, bound=True)
    try:
        dst = _open_side("target", dst_cfg, dst_identity)
    except BaseException:
        src.close()
        raise
    try:
        return _run(src, dst, batch_size=batch_size, sample=sample, progress=progress, seed=seed)
    finally:
        dst.close()
        src.close()


# --------------------------------------------------------------------------- opening


def _embedder_identity(cfg: MemoryConfig) -> EmbedderIdentity:
    spec = cfg.spec("embedder")
    assert spec is not None
    embedder: Embedder = spec.build(cfg.embedder.config)
    try:
        return EmbedderIdentity(
            provider=cfg.embedder.provider, model=embedder.model_name, dims=embedder.dims
        )
    finally:
        embedder.close()


def _identity_problem(a: EmbedderIdentity, b: EmbedderIdentity) -> str:
    return (
        f"the source's embedder is {a.provider}/{a.model} ({a.dims}-d) but the target's config "
        f"names {b.provider}/{b.model} ({b.dims}-d); migrate copies vectors as they are, so "
        "both configs must have the same embedder section"
    )


def _open_side(
    label: str, cfg: MemoryConfig, identity: EmbedderIdentity, *, bound: bool = False
) -> _Side:
    """The store of ``cfg`` bound to ``identity``, and its history database (where
    ``Memory`` keeps it: ``history_db_path``, else beside the store, else in the home).

    ``bound``: the history reads pending events as ``Memory`` does, confirmed by the store
    (the source: a change killed after its store commit is copied with its history); the
    target's copies are written settled."""
    spec = cfg.spec("vector_store")
    assert spec is not None
    store: VectorStore = spec.build(cfg.vector_store.config)
    try:
        store.open(identity)
        if cfg.history_db_path:
            path = Path(cfg.history_db_path)
        else:
            directory = store.data_directory
            path = (directory if directory is not None else memsift_home()) / "history.db"
        history = History(path, store.get if bound else None)
    except BaseException:
        store.close()
        raise
    return _Side(label, cfg.vector_store, store, history, identity)


#: Config keys that say where a store is (shown in reports).
_WHERE_KEYS = ("url", "host", "port", "path", "collection_name")


def _dump(section: Any) -> dict[str, Any]:
    config = section.config
    if not hasattr(config, "model_dump"):
        return {}
    dumped: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if "key" not in k and "secret" not in k}


def _describe(section: Any) -> str:
    """``provider key=value ...`` of the keys that say where the store is."""
    dumped = _dump(section)
    where = " ".join(f"{k}={dumped[k]}" for k in _WHERE_KEYS if k in dumped)
    return f"{section.provider} {where}".strip()


def _same_store(a: MemoryConfig, b: MemoryConfig) -> bool:
    return a.vector_store.provider == b.vector_store.provider and _dump(a.vector_store) == _dump(
        b.vector_store
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.expanduser().resolve() == b.expanduser().resolve()


# --------------------------------------------------------------------------- the run


def _run(
    src: _Side,
    dst: _Side,
    *,
    batch_size: int,
    sample: int,
    progress: Progress | None,
    seed: int,
) -> MigrationReport:
    report = MigrationReport(source=_describe(src.section), target=_describe(dst.section))
    report.history_copied = not _same_file(src.history.path, dst.history.path)
    records = sorted(src.store.list_records(filters=MatchAll(), limit=ALL), key=_age)
    report.total = len(records)
    present = {r.id for r in dst.store.list_records(filters=MatchAll(), limit=ALL)}
    todo = [r for r in records if r.id not in present]
    report.skipped = report.total - len(todo)
    done = report.skipped
    if progress is not None:
        progress("copy", done, report.total)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        copied, events = _copy_batch(src, dst, batch, copy_history=report.history_copied)
        report.copied += copied
        report.vanished += len(batch) - copied
        report.history_events += events
        done += len(batch)
        if progress is not None:
            progress("copy", done, report.total)
    if report.history_copied:
        report.history_events += _copy_deleted_history(src, dst, {r.id for r in records})
    _verify(src, dst, records, report, sample=sample, progress=progress, seed=seed)
    return report


def _copy_batch(
    src: _Side, dst: _Side, batch: list[MemoryRecord], *, copy_history: bool
) -> tuple[int, int]:
    """Copy one batch: history events first (replacing leftovers of a killed run), then the
    store. Returns how many memories and events were copied."""
    try:
        vectors = src.store.get_vectors([r.id for r in batch])
    except MemoryNotFoundError:
        # deleted from the source since it was listed: copy the others
        batch = [r for r in batch if src.store.get(r.id) is not None]
        if not batch:
            return 0, 0
        vectors = src.store.get_vectors([r.id for r in batch])
    ids = [r.id for r in batch]
    events = src.history.events_for(ids) if copy_history else []
    if copy_history:
        dst.history.replace_events(ids, events)
    dst.store.insert(batch, vectors)
    return len(batch), len(events)


def _copy_deleted_history(src: _Side, dst: _Side, live: set[str]) -> int:
    """The events of memories the source deleted (their history stays queryable)."""
    gone = [i for i in src.history.memory_ids() if i not in live]
    copied = 0
    for start in range(0, len(gone), 500):
        chunk = gone[start : start + 500]
        events = _by_memory(src.history.events_for(chunk))
        there = _by_memory(dst.history.events_for(chunk))
        stale = [i for i in chunk if events.get(i, []) != there.get(i, [])]
        if stale:
            fresh = [e for i in stale for e in events.get(i, [])]
            dst.history.replace_events(stale, fresh)
            copied += len(fresh)
    return copied


# --------------------------------------------------------------------------- verification


def _verify(
    src: _Side,
    dst: _Side,
    records: Sequence[MemoryRecord],
    report: MigrationReport,
    *,
    sample: int,
    progress: Progress | None,
    seed: int,
) -> None:
    problems = report.problems
    steps = 3
    if progress is not None:
        progress("verify", 0, steps)
    target = {r.id: r for r in dst.store.list_records(filters=MatchAll(), limit=ALL)}
    live = [r for r in records if src.store.get(r.id) is not None] if report.vanished else records
    missing = [r.id for r in live if r.id not in target]
    if missing:
        problems.append(f"{len(missing)} memories are not in the target, e.g. {missing[0]!r}")
    changed = [r.id for r in live if r.id in target and target[r.id] != r]
    if changed:
        problems.append(
            f"{len(changed)} memories differ in the target (text, metadata, scope or "
            f"timestamps), e.g. {changed[0]!r}"
        )
    source_counts = Counter(_scope(r) for r in live)
    target_counts = Counter(_scope(r) for r in target.values())
    for scope, count in source_counts.items():
        report.scopes[scope] = (count, target_counts.get(scope, 0))
        if target_counts.get(scope, 0) < count:
            problems.append(
                f"scope {_render_scope(scope)} holds {count} memories in the source but "
                f"{target_counts.get(scope, 0)} in the target"
            )
    if progress is not None:
        progress("verify", 1, steps)
    chosen = random.Random(seed).sample([r.id for r in live], min(sample, len(live)))
    chosen = [i for i in chosen if i in target]
    report.sampled = len(chosen)
    if chosen:
        a = _unit(src.store.get_vectors(chosen))
        b = _unit(dst.store.get_vectors(chosen))
        cosines = np.einsum("ij,ij->i", a, b)
        report.min_cosine = float(cosines.min())
        bad = [chosen[i] for i in np.flatnonzero(cosines < MIN_COSINE)]
        if bad:
            problems.append(
                f"{len(bad)} of {len(chosen)} sampled vectors differ (cosine "
                f"{report.min_cosine:.6f} < {MIN_COSINE}), e.g. memory {bad[0]!r}"
            )
    if progress is not None:
        progress("verify", 2, steps)
    if report.history_copied and chosen:
        before = _by_memory(src.history.events_for(chosen))
        after = _by_memory(dst.history.events_for(chosen))
        differ = [i for i in chosen if before.get(i, []) != after.get(i, [])]
        if differ:
            problems.append(
                f"the history of {len(differ)} of {len(chosen)} sampled memories differs in "
                f"the target, e.g. memory {differ[0]!r}"
            )
    if progress is not None:
        progress("verify", steps, steps)
    del problems[MAX_PROBLEMS:]


def _by_memory(events: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for e in events:
        out.setdefault(e.memory_id, []).append(e)
    return out


def _unit(vectors: Any) -> Any:
    array = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms == 0, 1.0, norms)


def _age(record: MemoryRecord) -> tuple[str, str]:
    return (record.created_at, record.id)


def _scope(record: MemoryRecord) -> Scope:
    return (record.user_id, record.agent_id, record.run_id)


def _scope_key(item: tuple[Scope, tuple[int, int]]) -> tuple[str, str, str]:
    scope = item[0]
    return (scope[0] or "", scope[1] or "", scope[2] or "")


def _render_scope(scope: Scope) -> str:
    parts = [f"{k}={v!r}" for k, v in zip(("user_id", "agent_id", "run_id"), scope) if v]
    return ", ".join(parts) or "(no scope ids)"


__all__ = ["MIN_COSINE", "MigrationReport", "Progress", "migrate"]
