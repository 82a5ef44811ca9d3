"""A correct deterministic hashing embedder, and embedders that each break one rule."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from memsift.interfaces import Embedder, EmbedderConfig, FloatArray, check_embed_input

_WORD = re.compile(r"\w+")
Purpose = Literal["document", "query"]


class HashingConfig(EmbedderConfig):
    model: str = "hashing-64"


class HashingEmbedder(Embedder):
    """Signed feature hashing of the words and characters of a text (blake2b), plus a
    constant component so that no vector is zero; L2-normalised float32."""

    config: HashingConfig
    DIMS = 64

    @property
    def dims(self) -> int:
        return self.DIMS

    def features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        return [*(f"w:{w}" for w in words), *(f"c:{c}" for c in text if not c.isspace())]

    def bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.DIMS, 1.0 if (value >> 32) & 1 else -1.0

    def raw(self, text: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        out = np.zeros(self.DIMS, dtype=np.float64)
        out[0] = 1e-3
        for feature in self.features(text):
            index, sign = self.bucket(feature)
            out[index] += sign
        return out

    def normalise(self, rows: np.ndarray[Any, Any]) -> FloatArray:
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        out: FloatArray = np.ascontiguousarray(rows / norms, dtype=np.float32)
        return out

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> FloatArray:
        items = check_embed_input(texts)
        rows = np.zeros((len(items), self.DIMS), dtype=np.float64)
        for i, text in enumerate(items):
            rows[i] = self.raw(text)
        return self.normalise(rows)


class NaNWithoutWordCharacters(HashingEmbedder):
    """Hashes words only, with no constant component: '?!' gives a zero vector, then NaN."""

    def features(self, text: str) -> list[str]:
        return [f"w:{w}" for w in _WORD.findall(text.lower())]

    def raw(self, text: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        out = super().raw(text)
        out[0] -= 1e-3
        return out

    def normalise(self, rows: np.ndarray[Any, Any]) -> FloatArray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return super().normalise(rows)


class BatchingBugBeyond8(HashingEmbedder):
    """Embeds in internal batches of 8, but every batch re-reads the first 8 texts."""

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> FloatArray:
        items = check_embed_input(texts)
        out = np.zeros((len(items), self.DIMS), dtype=np.float32)
        for start in range(0, len(items), 8):
            size = len(items[start : start + 8])
            out[start : start + size] = super().embed(items[:size], purpose=purpose)
        return out


class QueriesInAnotherSpace(HashingEmbedder):
    """Query vectors come out with their dimensions permuted."""

    PERMUTATION = np.random.default_rng(0).permutation(HashingEmbedder.DIMS)

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> FloatArray:
        vectors = super().embed(texts, purpose=purpose)
        if purpose == "query":
            return np.ascontiguousarray(vectors[:, self.PERMUTATION])
        return vectors


class SaltedHash(HashingEmbedder):
    """Hashes features with Python's hash(), which is salted per process."""

    def bucket(self, feature: str) -> tuple[int, float]:
        value = hash(feature) & 0xFFFFFFFFFFFF
        return value % self.DIMS, 1.0 if (value >> 32) & 1 else -1.0


class Float64Vectors(HashingEmbedder):
    """Returns float64 arrays."""

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> FloatArray:
        return super().embed(texts, purpose=purpose).astype(np.float64)  # type: ignore[return-value]


class NotNormalised(HashingEmbedder):
    """Returns the raw feature counts."""

    def normalise(self, rows: np.ndarray[Any, Any]) -> FloatArray:
        return np.ascontiguousarray(rows, dtype=np.float32)


class FortranOrder(HashingEmbedder):
    """Returns a column-major (Fortran-ordered) array."""

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> FloatArray:
        return np.asfortranarray(super().embed(texts, purpose=purpose))


class AsyncRowsOutOfOrder(HashingEmbedder):
    """The async twin returns the rows in reverse order."""

    async def aembed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> FloatArray:
        return np.ascontiguousarray(self.embed(texts, purpose=purpose)[::-1])


REFERENCE = HashingEmbedder

#: breakage id -> broken embedder class; the suite must fail each one.
BROKEN: dict[str, type[HashingEmbedder]] = {
    "nan-for-text-without-word-characters": NaNWithoutWordCharacters,
    "batching-bug-beyond-8-texts": BatchingBugBeyond8,
    "queries-in-another-space": QueriesInAnotherSpace,
    "salted-python-hash": SaltedHash,
    "float64-dtype": Float64Vectors,
    "not-normalised": NotNormalised,
    "fortran-order": FortranOrder,
    "async-rows-out-of-order": AsyncRowsOutOfOrder,
}
