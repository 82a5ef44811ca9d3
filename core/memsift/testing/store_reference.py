"""The brute-force reference of the store suite: what a store's answers must be.

:class:`Corpus` holds the records put into a store and their vectors, and answers each filter
with :func:`memsift.filters.evaluate` and each query with exact cosine similarities;
:func:`search_problem` and :func:`list_problem` say what is wrong with a store's answer to
``search`` and ``list_records`` (None when nothing is), and :func:`fail_on` fails the test
with the first few problems found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from memsift.filters import SCOPE_FIELDS, Filter, evaluate
from memsift.records import MemoryRecord, VectorHit

__all__ = ["SCORE_TOL", "Corpus", "Vectors", "fail_on", "list_problem", "search_problem"]

Vectors = np.ndarray[Any, np.dtype[np.float32]]

#: Similarities closer than this count as ties.
SCORE_TOL = 1e-5


@dataclasses.dataclass
class Corpus:
    """Records inserted into a store, their vectors, and the reference answers."""

    records: list[MemoryRecord]
    vectors: Vectors

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for r in self.records}
        self.index = {r.id: i for i, r in enumerate(self.records)}

    def matching(self, parsed: Filter) -> list[MemoryRecord]:
        return [r for r in self.records if evaluate(parsed, r)]

    def sims(self, query: Vectors) -> dict[str, float]:
        values = self.vectors.astype(np.float64) @ query.astype(np.float64)
        return {r.id: float(values[i]) for i, r in enumerate(self.records)}


def search_problem(
    corpus: Corpus,
    hits: Sequence[VectorHit],
    parsed: Filter,
    query: Vectors,
    limit: int,
    expected: list[MemoryRecord] | None = None,
) -> str | None:
    """What is wrong with ``hits`` as the answer to ``search(query, parsed, limit)``
    (``expected``: the records that match, when already known)."""
    if not isinstance(hits, list):
        return f"search returned {type(hits).__name__}, not a list"
    if expected is None:
        expected = corpus.matching(parsed)
    allowed = {r.id for r in expected}
    ids = [h.record.id for h in hits]
    if len(ids) != len(set(ids)):
        return f"duplicate hits: {ids}"
    unknown = [i for i in ids if i not in corpus.by_id]
    if unknown:
        return f"returned ids that were never stored (or were deleted): {unknown[:3]}"
    rejected = [i for i in ids if i not in allowed]
    if rejected:
        bad = corpus.by_id[rejected[0]]
        return f"returned {len(rejected)} record(s) the filter rejects, e.g. {_describe(bad)}"
    want = min(limit, len(expected))
    if len(ids) != want:
        return (
            f"returned {len(ids)} hits with limit={limit}, but {len(expected)} records match: "
            f"expected exactly {want} (pre-filtering: never fewer than exist)"
        )
    sims = corpus.sims(query)
    for h in hits:
        if not np.isfinite(h.score) or abs(h.score - sims[h.record.id]) > 1e-4:
            return (
                f"hit {h.record.id} scores {h.score}, its cosine similarity is "
                f"{sims[h.record.id]:.6f}"
            )
        if h.record != corpus.by_id[h.record.id]:
            return (
                f"hit {h.record.id} carries {h.record!r}, stored was {corpus.by_id[h.record.id]!r}"
            )
    scores = [h.score for h in hits]
    if any(b > a + 1e-6 for a, b in pairwise(scores)):
        return f"hits are not best first: scores {scores}"
    left_out = [sims[r.id] for r in expected if r.id not in set(ids)]
    if left_out and ids and max(left_out) > min(sims[i] for i in ids) + SCORE_TOL:
        return (
            f"missed a better match: a matching record of similarity {max(left_out):.6f} is "
            f"left out while one of {min(sims[i] for i in ids):.6f} is returned"
        )
    return None


def list_problem(
    corpus: Corpus,
    listed: Sequence[MemoryRecord],
    parsed: Filter,
    limit: int,
    expected: list[MemoryRecord] | None = None,
) -> str | None:
    """What is wrong with ``listed`` as the answer to ``list_records(parsed, limit)``."""
    if not isinstance(listed, list):
        return f"list_records returned {type(listed).__name__}, not a list"
    if expected is None:
        expected = corpus.matching(parsed)
    allowed = {r.id for r in expected}
    ids = [r.id for r in listed]
    if len(ids) != len(set(ids)):
        return f"list_records returned duplicates: {ids}"
    rejected = [i for i in ids if i not in allowed]
    if rejected:
        bad = corpus.by_id.get(rejected[0])
        return f"list_records returned a record the filter rejects: {_describe(bad)}"
    want = min(limit, len(expected))
    if len(ids) != want:
        return (
            f"list_records returned {len(ids)} records with limit={limit}, but "
            f"{len(expected)} match: expected exactly {want}"
        )
    for r in listed:
        if r != corpus.by_id[r.id]:
            return f"list_records returned {r!r}, stored was {corpus.by_id[r.id]!r}"
    stamps = [r.created_at for r in listed]
    if stamps != sorted(stamps, reverse=True):
        return f"list_records is not newest first: {stamps}"
    rest = [r.created_at for r in expected if r.id not in set(ids)]
    if rest and stamps and max(rest) > min(stamps):
        return f"list_records left out a newer record ({max(rest)} > {min(stamps)})"
    return None


def _describe(record: MemoryRecord | None) -> str:
    if record is None:
        return "<unknown record>"
    scope = {f: getattr(record, f) for f in SCOPE_FIELDS}
    return (
        f"{record.id} (scope {scope}, created_at {record.created_at}, updated_at "
        f"{record.updated_at}, metadata {record.metadata!r})"
    )


def fail_on(problems: list[str], total: int) -> None:
    if problems:
        shown = "\n  - ".join(problems[:6])
        pytest.fail(
            f"{len(problems)} of {total} checks disagree with memsift.filters.evaluate:"
            f"\n  - {shown}",
            pytrace=False,
        )
