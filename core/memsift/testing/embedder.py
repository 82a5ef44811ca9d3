"""``EmbedderConformance``: the contract every embedder must keep."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from memsift.errors import InvalidInputError
from memsift.interfaces import Embedder

TEXTS = [
    "I love pizza",
    "My favourite food is Italian",
    "The car broke down on the highway",
    "Zoë wohnt in Köln 🏠",
]


class EmbedderConformance:
    """Subclass it and provide an ``embedder`` fixture returning a ready provider instance."""

    #: tolerance of batch-vs-single and sync-vs-async equality
    atol = 1e-5

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError("provide an `embedder` fixture in your test class")

    def test_shape_dtype_and_norm(self, embedder: Embedder) -> None:
        vectors = embedder.embed(TEXTS)
        assert isinstance(vectors, np.ndarray)
        assert vectors.dtype == np.float32
        assert vectors.shape == (len(TEXTS), embedder.dims)
        assert np.all(np.isfinite(vectors))
        assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-4)

    def test_dims_is_a_positive_int(self, embedder: Embedder) -> None:
        assert isinstance(embedder.dims, int) and embedder.dims > 0
        assert isinstance(embedder.model_name, str) and embedder.model_name

    def test_empty_list(self, embedder: Embedder) -> None:
        vectors = embedder.embed([])
        assert vectors.shape == (0, embedder.dims)

    def test_batch_equals_single(self, embedder: Embedder) -> None:
        batch = embedder.embed(TEXTS)
        singles = np.vstack([embedder.embed([t]) for t in TEXTS])
        np.testing.assert_allclose(batch, singles, atol=self.atol)

    def test_deterministic(self, embedder: Embedder) -> None:
        np.testing.assert_allclose(embedder.embed(TEXTS), embedder.embed(TEXTS), atol=self.atol)

    def test_query_purpose_has_same_shape(self, embedder: Embedder) -> None:
        assert embedder.embed(TEXTS[:1], purpose="query").shape == (1, embedder.dims)

    def test_long_text_is_truncated_not_rejected(self, embedder: Embedder) -> None:
        vectors = embedder.embed(["word " * 20000])
        assert vectors.shape == (1, embedder.dims)
        assert np.all(np.isfinite(vectors))

    def test_async_twin_equals_sync(self, embedder: Embedder) -> None:
        sync = embedder.embed(TEXTS)
        async_vectors = asyncio.run(embedder.aembed(TEXTS))
        np.testing.assert_allclose(async_vectors, sync, atol=self.atol)

    @pytest.mark.parametrize("bad", [[None], [1], ["ok", b"bytes"]], ids=["none", "int", "bytes"])
    def test_bad_input_raises_invalid_input(self, embedder: Embedder, bad: list[object]) -> None:
        with pytest.raises(InvalidInputError):
            embedder.embed(bad)  # type: ignore[arg-type]

    def test_a_string_instead_of_a_list_is_rejected(self, embedder: Embedder) -> None:
        with pytest.raises(InvalidInputError):
            embedder.embed("a string, not a list")
