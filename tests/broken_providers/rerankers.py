"""A correct word-overlap reranker, and rerankers that each break one rule."""

from __future__ import annotations

import re
from collections.abc import Sequence

from memsift.interfaces import Candidate, Reranker, RerankerConfig, check_rerank_input

_WORD = re.compile(r"\w+")


class OverlapConfig(RerankerConfig):
    model: str = "overlap-v1"


class OverlapReranker(Reranker):
    """0.9 x the share of the query's words found in the document, plus up to 0.1 for
    the share of the document's words that are query words. Scores lie in [0, 1]."""

    config: OverlapConfig

    def score(self, query: str, doc: str) -> float:
        wanted = set(_WORD.findall(query.casefold()))
        words = _WORD.findall(doc.casefold())
        if not wanted or not words:
            return 0.0
        found = wanted & set(words)
        density = sum(w in wanted for w in words) / len(words)
        return 0.9 * len(found) / len(wanted) + 0.1 * density

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        return [self.score(query, d) for d in docs]


class WrongCountOnPoolsOver5(OverlapReranker):
    """Loses the last score of any pool larger than 5 (a batching bug)."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores = super().rerank(query, documents)
        return scores[:-1] if len(scores) > 5 else scores


class InfinityOnPerfectMatch(OverlapReranker):
    """Scores a document equal to the query as infinity (a log-odds of p = 1)."""

    def score(self, query: str, doc: str) -> float:
        if doc.strip().casefold() == query.strip().casefold():
            return float("inf")
        return super().score(query, doc)


class BrokenScoreCandidates(OverlapReranker):
    """score_candidates returns the scores sorted best first, not in candidate order."""

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        return sorted(super().score_candidates(query, candidates), reverse=True)


class ConstantScores(OverlapReranker):
    """Every document scores 0.5."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return [0.5] * len(check_rerank_input(query, documents))


class MutatesItsInput(OverlapReranker):
    """Scores correctly, then reorders the caller's list in place."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores = super().rerank(query, documents)
        if isinstance(documents, list):
            documents.sort()
        return scores


class MutatesCandidateRecords(OverlapReranker):
    """Writes its score into each candidate's metadata."""

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        scores = super().score_candidates(query, candidates)
        for c, s in zip(candidates, scores):
            c.record.metadata["rerank_score"] = s
        return scores


class OutOfRangeOnLongDocuments(OverlapReranker):
    """Forgets to normalise by length: long documents score above 1."""

    def score(self, query: str, doc: str) -> float:
        return super().score(query, doc) * (1.0 + len(doc) / 2000)


class ScoresReversed(OverlapReranker):
    """Returns the scores in reverse order (passes a check that only reverses the input)."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return super().rerank(query, documents)[::-1]


class CloseTwiceRaises(OverlapReranker):
    """close() a second time raises."""

    closed = False

    def close(self) -> None:
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


REFERENCE = OverlapReranker

#: breakage id -> broken reranker class; the suite must fail each one.
BROKEN: dict[str, type[OverlapReranker]] = {
    "wrong-score-count-on-pools-over-5": WrongCountOnPoolsOver5,
    "infinity-on-perfect-match": InfinityOnPerfectMatch,
    "broken-score-candidates": BrokenScoreCandidates,
    "constant-scores": ConstantScores,
    "mutates-its-input": MutatesItsInput,
    "mutates-candidate-records": MutatesCandidateRecords,
    "out-of-range-on-long-documents": OutOfRangeOnLongDocuments,
    "scores-reversed": ScoresReversed,
    "close-twice-raises": CloseTwiceRaises,
}
