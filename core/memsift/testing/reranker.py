"""``RerankerConformance``: the contract every reranker must keep."""

from __future__ import annotations

import asyncio
import copy
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from memsift.errors import InvalidInputError
from memsift.interfaces import Candidate, MemoryRecord, Reranker

DOCUMENTS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
    "Lisbon is the capital of Portugal.",
    "Our team meeting moved to Tuesday at 10am.",
]
QUERY = "Where does Alice live?"

#: Documents that tend to break scoring: the query itself (a perfect match), its case
#: variants, blank and punctuation-only texts, emoji, other scripts, a very long text.
ODD_DOCUMENTS = [
    QUERY,
    QUERY.upper(),
    QUERY.lower().strip("?"),
    "",
    " ",
    "\n\t",
    "?!...",
    "🙂🎉🚀",
    "\u200b",
    "東京は日本の首都です",
    "مرحبا بالعالم",
    "Zoë wohnt in Köln 🏠",
    "alice " * 400,
    " ".join([QUERY] * 300),
]

_TOPICS = [
    "Alice moved to Lisbon in March",
    "Alice lives near the river in Lisbon",
    "Alice works as a nurse at the hospital",
    "Bob prefers green tea over coffee",
    "the quarterly report is due on Friday",
    "our team meeting moved to Tuesday at 10am",
    "Lisbon is the capital of Portugal",
    "the car broke down on the highway",
    "Carol lives in Porto with her two cats",
    "Alice likes Italian food and pizza",
    "where is the stapler",
    "Bob lives in Berlin",
]
_TAILS = [
    "",
    "last year",
    "according to her sister",
    "in the morning",
    "as far as I know",
    "again",
    "on the second floor",
    "near the old market",
]


def pool(n: int, *, seed: int = 0, with_query: bool = True) -> list[str]:
    """``n`` distinct documents, some about the query, some not; from 6 documents on, the
    query itself is one of them (a perfect match)."""
    rng = random.Random(seed)
    docs: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(docs) < n:
        topic = _TOPICS[i % len(_TOPICS)]
        tail = _TAILS[(i // len(_TOPICS)) % len(_TAILS)]
        text = f"{topic} {tail}".strip() + "."
        if i >= len(_TOPICS) * len(_TAILS):
            text = f"{text} ({i})"
        if text not in seen:
            seen.add(text)
            docs.append(text)
        i += 1
    rng.shuffle(docs)
    if with_query and n >= 6:
        docs[n // 2] = QUERY
    return docs


def candidates_for(docs: Sequence[str], *, equal_vector_scores: bool = False) -> list[Candidate]:
    """Candidates as the pipeline builds them: text, vector score (best first), record."""
    out = []
    for i, text in enumerate(docs):
        score = 0.5 if equal_vector_scores else round(0.95 - 0.9 * i / max(1, len(docs)), 6)
        record = MemoryRecord(
            id=f"00000000-0000-4000-8000-{i:012d}",
            memory=text,
            hash=f"hash-{i}",
            metadata={"n": i, "tags": ["a", ["b"]], "note": {"k": i}},
            user_id="u1",
            created_at="2026-03-03T12:00:00.000000+00:00",
            updated_at="2026-03-03T12:00:00.000000+00:00",
        )
        out.append(Candidate(text=text, vector_score=score, record=record))
    return out


def check_scores(scores: Any, count: int, what: str) -> list[float]:
    """Assert the score contract: a list of ``count`` finite floats in [0, 1]."""
    assert isinstance(scores, list), f"{what} must return a list, got {type(scores).__name__}"
    assert len(scores) == count, f"{what}: {len(scores)} scores for {count} documents"
    for i, s in enumerate(scores):
        assert isinstance(s, float), f"{what}: scores must be floats, got {type(s).__name__}"
        assert math.isfinite(s), f"{what}: score {i} is {s}, scores must be finite"
        assert 0.0 <= s <= 1.0, f"{what}: score {i} is {s}, scores must lie in [0, 1]"
    return scores


class RerankerConformance:
    """The contract of :class:`memsift.Reranker`, for reranker plugins.

    Subclass it and provide one fixture:

    ``reranker``
        a fixture returning a ready provider instance (for a hosted provider: pointed at
        a fake of its API on 127.0.0.1). The suite may close it (``close``/``aclose``).

    Class attributes to set on the subclass:

    - ``deterministic = False`` for a provider whose scores vary between calls: the
      checks of equal scores (input order, duplicates, sync vs async) then only check the
      shapes and ranges.
    - ``scores_vary = False`` only for a scripted stub that scores by markers: by default
      the scores of a diverse pool must not all be equal (a constant-score reranker is
      refused). Tiny random models pass this check.
    - ``candidates_follow_rerank = False`` for a provider whose ``score_candidates`` ranks
      candidates that differ only in their text differently from ``rerank``.
    - ``long_document_words`` (5000): the length of the long-document check.

    What is checked, for ``rerank``, ``arerank``, ``score_candidates`` and
    ``ascore_candidates`` (what the search pipeline calls, with
    :class:`memsift.interfaces.Candidate` objects): exactly one finite float in [0, 1] per
    document for pools of 1 to 100, in input order (any permutation of the pool permutes
    the scores alike); finite scores for any document (the query itself, blank, emoji,
    other scripts, very long); duplicates score alike; scores that are not all equal over
    a diverse pool; the inputs (documents and candidates) are not mutated; async twins
    equal the sync ones, also concurrently; bad input raises InvalidInputError; ``close``
    and ``aclose`` can be called repeatedly.
    """

    deterministic = True
    scores_vary = True
    candidates_follow_rerank = True
    #: documents longer than the provider's limit must be truncated, not rejected
    long_document_words = 5000

    @pytest.fixture
    def reranker(self) -> Reranker:
        raise NotImplementedError("provide a `reranker` fixture in your test class")

    def _scores(self, reranker: Reranker, query: str, docs: list[str]) -> list[float]:
        return check_scores(reranker.rerank(query, docs), len(docs), "rerank")

    def _same(self, a: Sequence[float], b: Sequence[float], what: str) -> None:
        if self.deterministic:
            assert list(a) == pytest.approx(list(b), abs=1e-5), what

    # ------------------------------------------------------------------ shapes

    def test_one_score_per_document_in_range(self, reranker: Reranker) -> None:
        self._scores(reranker, QUERY, list(DOCUMENTS))

    @pytest.mark.parametrize("size", [1, 2, 6, 20, 37, 100])
    def test_pools_of_every_size(self, reranker: Reranker, size: int) -> None:
        """One score per document, for pools up to the pipeline's default maximum of 100
        (a provider that splits big pools into requests must merge them back in order)."""
        docs = pool(size, seed=size)
        scores = self._scores(reranker, QUERY, docs)
        cands = candidates_for(docs)
        via_candidates = check_scores(
            reranker.score_candidates(QUERY, cands), size, f"score_candidates({size})"
        )
        if self.candidates_follow_rerank and size > 1:
            self._agree_in_rank(scores, reranker, docs)
        assert len(via_candidates) == size

    def test_empty_documents(self, reranker: Reranker) -> None:
        assert reranker.rerank(QUERY, []) == []
        assert reranker.score_candidates(QUERY, []) == []

    def test_single_document(self, reranker: Reranker) -> None:
        self._scores(reranker, QUERY, DOCUMENTS[:1])

    # ------------------------------------------------------------------ order

    def test_scores_follow_input_order(self, reranker: Reranker) -> None:
        forward = self._scores(reranker, QUERY, list(DOCUMENTS))
        backward = self._scores(reranker, QUERY, DOCUMENTS[::-1])
        self._same(backward[::-1], forward, "reversing the documents must reverse the scores")

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_any_permutation_permutes_the_scores(self, reranker: Reranker, seed: int) -> None:
        docs = pool(20, seed=7)
        base = self._scores(reranker, QUERY, docs)
        order = list(range(len(docs)))
        random.Random(seed).shuffle(order)
        permuted = self._scores(reranker, QUERY, [docs[i] for i in order])
        self._same(permuted, [base[i] for i in order], "scores must follow the input order")
        cands = candidates_for(docs)
        cand_base = check_scores(reranker.score_candidates(QUERY, cands), 20, "score_candidates")
        cand_permuted = check_scores(
            reranker.score_candidates(QUERY, [cands[i] for i in order]), 20, "score_candidates"
        )
        self._same(
            cand_permuted,
            [cand_base[i] for i in order],
            "score_candidates must score each candidate in its own position",
        )

    def test_duplicate_documents_score_alike(self, reranker: Reranker) -> None:
        docs = [DOCUMENTS[0], DOCUMENTS[1], DOCUMENTS[0]]
        scores = self._scores(reranker, QUERY, docs)
        if self.deterministic:
            assert scores[0] == pytest.approx(scores[2], abs=1e-5)

    # ------------------------------------------------------------------ any input

    def test_any_document_gets_a_finite_score(self, reranker: Reranker) -> None:
        """The query itself, blank and punctuation-only documents, emoji, other scripts,
        very long documents: each alone and all in one pool."""
        for doc in ODD_DOCUMENTS:
            self._scores(reranker, QUERY, [doc])
            self._scores(reranker, QUERY, [doc, DOCUMENTS[0]])
        self._scores(reranker, QUERY, [*ODD_DOCUMENTS, *DOCUMENTS])
        check_scores(
            reranker.score_candidates(QUERY, candidates_for([*ODD_DOCUMENTS, *DOCUMENTS])),
            len(ODD_DOCUMENTS) + len(DOCUMENTS),
            "score_candidates",
        )
        for query in ("?!", "🙂", "東京", "a", QUERY * 50):
            self._scores(reranker, query, [*DOCUMENTS, query])

    def test_very_long_document_is_truncated_not_rejected(self, reranker: Reranker) -> None:
        long_doc = " ".join(["Alice lives in Lisbon."] * (self.long_document_words // 4))
        self._scores(reranker, QUERY, [long_doc, DOCUMENTS[1]])
        self._scores(reranker, QUERY, [DOCUMENTS[0], long_doc, QUERY, " ".join([QUERY] * 1000)])

    def test_unicode(self, reranker: Reranker) -> None:
        docs = ["Zoë wohnt in Köln 🏠", "東京は日本の首都です", "Ελληνικά κείμενα", ""]
        self._scores(reranker, "Wo wohnt Zoë?", docs)

    def test_scores_vary_over_a_diverse_pool(self, reranker: Reranker) -> None:
        """A reranker that gives every document the same score reorders nothing."""
        if not self.scores_vary:
            pytest.skip("scores_vary = False: a scripted stub")
        docs = pool(20, seed=3)
        scores = self._scores(reranker, QUERY, docs)
        assert max(scores) - min(scores) > 1e-6, f"every document scores {scores[0]}"
        cand = check_scores(
            reranker.score_candidates(QUERY, candidates_for(docs)), 20, "score_candidates"
        )
        assert max(cand) - min(cand) > 1e-6, f"score_candidates gives every candidate {cand[0]}"

    # ------------------------------------------------------------------ candidates

    def _agree_in_rank(self, scores: list[float], reranker: Reranker, docs: list[str]) -> None:
        same = check_scores(
            reranker.score_candidates(QUERY, candidates_for(docs, equal_vector_scores=True)),
            len(docs),
            "score_candidates",
        )
        if not self.deterministic:
            return
        for i in range(len(docs)):
            for j in range(len(docs)):
                if scores[i] > scores[j] + 1e-3:
                    assert same[i] >= same[j] - 1e-9, (
                        f"rerank puts {docs[i]!r} ({scores[i]:.4f}) above {docs[j]!r} "
                        f"({scores[j]:.4f}), score_candidates on the same texts (equal vector "
                        f"scores) puts it below ({same[i]:.4f} < {same[j]:.4f})"
                    )

    def test_score_candidates_is_what_rerank_says(self, reranker: Reranker) -> None:
        """The pipeline calls score_candidates: it must score each candidate by its text
        like rerank does (up to what it adds from the vector score or the record)."""
        docs = pool(12, seed=12)
        scores = self._scores(reranker, QUERY, docs)
        if self.candidates_follow_rerank:
            self._agree_in_rank(scores, reranker, docs)
        check_scores(reranker.score_candidates(QUERY, candidates_for(docs)), 12, "score_candidates")

    def test_async_score_candidates_equals_sync(self, reranker: Reranker) -> None:
        cands = candidates_for(pool(15, seed=15))
        sync = check_scores(reranker.score_candidates(QUERY, cands), 15, "score_candidates")
        got = asyncio.run(reranker.ascore_candidates(QUERY, cands))
        check_scores(got, 15, "ascore_candidates")
        self._same(got, sync, "ascore_candidates must equal score_candidates")

    def test_inputs_are_not_mutated(self, reranker: Reranker) -> None:
        docs = pool(20, seed=20)
        kept = list(docs)
        self._scores(reranker, QUERY, docs)
        assert docs == kept, "rerank changed the documents list it was given"
        asyncio.run(reranker.arerank(QUERY, docs))
        assert docs == kept, "arerank changed the documents list it was given"
        check_scores(reranker.rerank(QUERY, tuple(docs)), 20, "rerank(tuple)")
        cands = candidates_for(docs)
        snapshot = copy.deepcopy(cands)
        reranker.score_candidates(QUERY, cands)
        assert cands == snapshot, "score_candidates changed the candidates (or their records)"
        asyncio.run(reranker.ascore_candidates(QUERY, cands))
        assert cands == snapshot, "ascore_candidates changed the candidates (or their records)"

    # ------------------------------------------------------------------ async

    def test_async_twin_equals_sync(self, reranker: Reranker) -> None:
        sync = self._scores(reranker, QUERY, list(DOCUMENTS))
        async_scores = asyncio.run(reranker.arerank(QUERY, list(DOCUMENTS)))
        assert len(async_scores) == len(DOCUMENTS)
        if self.deterministic:
            assert async_scores == pytest.approx(sync, abs=1e-5)

    def test_concurrent_async_calls(self, reranker: Reranker) -> None:
        pools = [pool(n, seed=n) for n in (3, 7, 25)]
        expected = [self._scores(reranker, QUERY, docs) for docs in pools]

        async def run() -> list[list[float]]:
            return list(await asyncio.gather(*(reranker.arerank(QUERY, d) for d in pools)))

        for docs, want, got in zip(pools, expected, asyncio.run(run())):
            check_scores(got, len(docs), "arerank")
            self._same(got, want, "concurrent arerank calls must each get their own scores")

    # ------------------------------------------------------------------ bad input

    @pytest.mark.parametrize(
        ("query", "docs"),
        [
            (None, ["a"]),
            (123, ["a"]),
            ("", ["a"]),
            ("   ", ["a"]),
            ("query", ["a", None]),
            ("query", ["a", 5]),
            ("query", "not a list"),
        ],
        ids=[
            "none-query",
            "int-query",
            "empty-query",
            "blank-query",
            "none-doc",
            "int-doc",
            "str-docs",
        ],
    )
    def test_bad_input_raises_invalid_input(
        self, reranker: Reranker, query: object, docs: object
    ) -> None:
        with pytest.raises(InvalidInputError):
            reranker.rerank(query, docs)  # type: ignore[arg-type]

    def test_async_bad_input_raises_invalid_input(self, reranker: Reranker) -> None:
        with pytest.raises(InvalidInputError):
            asyncio.run(reranker.arerank("", ["a"]))

    def test_model_name_is_a_string(self, reranker: Reranker) -> None:
        assert isinstance(reranker.model_name, str)

    # ------------------------------------------------------------------ lifecycle

    def test_close_and_aclose_are_idempotent(self, reranker: Reranker) -> None:
        self._scores(reranker, QUERY, DOCUMENTS[:2])
        asyncio.run(reranker.arerank(QUERY, DOCUMENTS[:2]))
        reranker.close()
        reranker.close()
        asyncio.run(reranker.aclose())
        asyncio.run(reranker.aclose())
