"""``FaissStoreConfig``: the options of the built-in ``faiss`` store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from memsift.config import memsift_home
from memsift.interfaces import VectorStoreConfig
from memsift.lexical import Analyzer, check_language

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$")


class FaissStoreConfig(VectorStoreConfig):
    """Config of the built-in ``faiss`` store."""

    path: str | None = Field(
        default=None,
        description="directory of the store files (default: $MEMSIFT_HOME or ~/.memsift, /faiss)",
    )
    collection_name: str = Field(default="memsift", description="name of the collection's files")
    embedding_model_dims: int | None = Field(
        default=None, ge=1, le=65536, description="vector dimension; must match the embedder"
    )
    distance_strategy: Literal["cosine", "inner_product", "euclidean"] = Field(
        default="cosine",
        description="similarity: cosine, inner product, or 1/(1+L2 distance); higher is better",
    )
    index: Literal["flat", "hnsw"] = Field(
        default="flat", description="flat (exact) or hnsw (approximate, for large scopes)"
    )
    hnsw_m: int = Field(default=32, ge=4, le=256, description="HNSW graph degree")
    hnsw_ef_construction: int = Field(default=200, ge=8, le=4096, description="HNSW build depth")
    hnsw_ef_search: int = Field(
        default=128,
        ge=8,
        le=8192,
        description=(
            "HNSW search depth (at least top_k is used): recall for latency. At 100k x 384-d, "
            "recall@10 is 1.00 on clustered vectors at 64 and up, and on random ones (the "
            "worst case) 0.33 at 128, 0.70 at 512; see the README's 'When to use hnsw'"
        ),
    )
    keyword_index: bool = Field(
        default=True,
        description="keep an FTS5 keyword index (BM25) for hybrid search and the bm25 reranker",
    )
    keyword_language: str = Field(
        default="english", description="language of the keyword index's stemmer and stop words"
    )
    keyword_stemming: bool = Field(default=True, description="stem the keyword index's terms")
    keyword_stopwords: bool | list[str] = Field(
        default=True,
        description="drop stop words: true (the language's built-in list), false, or a list",
    )

    @field_validator("keyword_language")
    @classmethod
    def _check_language(cls, value: str) -> str:
        return check_language(value)

    @field_validator("collection_name")
    @classmethod
    def _check_collection(cls, value: str) -> str:
        if not _COLLECTION_RE.match(value):
            raise ValueError(
                "collection_name must be 1-128 letters, digits, '_' or '-' (it names files on disk)"
            )
        return value

    def directory(self) -> Path:
        return Path(self.path).expanduser() if self.path else memsift_home() / "faiss"

    def analyzer(self) -> Analyzer | None:
        """The analyzer of the keyword index, or None when ``keyword_index`` is off."""
        if not self.keyword_index:
            return None
        stops = self.keyword_stopwords
        return Analyzer(
            language=self.keyword_language,
            stemming=self.keyword_stemming,
            stopwords=tuple(stops) if isinstance(stops, list) else stops,
        )


__all__ = ["FaissStoreConfig"]
