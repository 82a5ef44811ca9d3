"""``RerankerConformance``: the contract every reranker must keep."""

from __future__ import annotations

import asyncio
import math

import pytest

from memsift.errors import InvalidInputError
from memsift.interfaces import Reranker

DOCUMENTS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
    "Lisbon is the capital of Portugal.",
    "Our team meeting moved to Tuesday at 10am.",
]
QUERY = "Where does Alice live?"


class RerankerConformance:
    """Subclass it and provide a ``reranker`` fixture returning a ready provider instance.

    Set ``deterministic = False`` on the subclass for a provider whose scores vary between
    calls (the order and equality checks then only check shapes).
    """

    deterministic = True
    #: documents longer than the provider's limit must be truncated, not rejected
    long_document_words = 5000

    @pytest.fixture
    def reranker(self) -> Reranker:
        raise NotImplementedError("provide a `reranker` fixture in your test class")

    def _scores(self, reranker: Reranker, query: str, docs: list[str]) -> list[float]:
        scores = reranker.rerank(query, docs)
        assert isinstance(scores, list), "rerank must return a list"
        assert len(scores) == len(docs), "one score per document"
        for s in scores:
            assert isinstance(s, float), f"scores must be floats, got {type(s).__name__}"
            assert math.isfinite(s), "scores must be finite"
            assert 0.0 <= s <= 1.0, f"scores must lie in [0, 1], got {s}"
        return scores

    def test_one_score_per_document_in_range(self, reranker: Reranker) -> None:
        self._scores(reranker, QUERY, DOCUMENTS)

    def test_scores_follow_input_order(self, reranker: Reranker) -> None:
        forward = self._scores(reranker, QUERY, DOCUMENTS)
        backward = self._scores(reranker, QUERY, DOCUMENTS[::-1])
        if self.deterministic:
            assert backward[::-1] == pytest.approx(forward, abs=1e-5)

    def test_empty_documents(self, reranker: Reranker) -> None:
        assert reranker.rerank(QUERY, []) == []

    def test_single_document(self, reranker: Reranker) -> None:
        self._scores(reranker, QUERY, DOCUMENTS[:1])

    def test_duplicate_documents_score_alike(self, reranker: Reranker) -> None:
        docs = [DOCUMENTS[0], DOCUMENTS[1], DOCUMENTS[0]]
        scores = self._scores(reranker, QUERY, docs)
        if self.deterministic:
            assert scores[0] == pytest.approx(scores[2], abs=1e-5)

    def test_very_long_document_is_truncated_not_rejected(self, reranker: Reranker) -> None:
        long_doc = " ".join(["Alice lives in Lisbon."] * (self.long_document_words // 4))
        self._scores(reranker, QUERY, [long_doc, DOCUMENTS[1]])

    def test_unicode(self, reranker: Reranker) -> None:
        docs = ["Zoë wohnt in Köln 🏠", "東京は日本の首都です", "Ελληνικά κείμενα", ""]
        self._scores(reranker, "Wo wohnt Zoë?", docs)

    def test_async_twin_equals_sync(self, reranker: Reranker) -> None:
        sync = self._scores(reranker, QUERY, DOCUMENTS)
        async_scores = asyncio.run(reranker.arerank(QUERY, DOCUMENTS))
        assert len(async_scores) == len(DOCUMENTS)
        if self.deterministic:
            assert async_scores == pytest.approx(sync, abs=1e-5)

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
