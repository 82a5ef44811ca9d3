"""The ``sentence_transformer`` reranker on a tiny random cross-encoder.

The core's local cross-encoder suite checks the contract (scores, batching, truncation, the
model cache, errors, the pipeline); the tests here check what is this reranker's own: one
``CrossEncoder.predict`` per pool, a model per ``max_length``, and its config. The installed
package is checked here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import memsift
from memsift import ConfigError
from memsift.testing import PluginPackageConformance, RerankerConformance
from memsift.testing.local_reranker import LocalCrossEncoderConformance
from memsift.testing.tiny_models import DOCS, QUERY
from memsift_sentence_transformers import (
    SentenceTransformerReranker,
    SentenceTransformerRerankerConfig,
)
from memsift_sentence_transformers.runtime import MODEL_CACHE


def make(folder: Path, **options: Any) -> SentenceTransformerReranker:
    config = {"model": str(folder), "device": "cpu", "local_files_only": True, **options}
    return SentenceTransformerReranker(SentenceTransformerRerankerConfig(**config))


class TestPackage(PluginPackageConformance):
    distribution = "memsift-sentence-transformers"
    providers = {"reranker": ["sentence_transformer"], "embedder": ["sentence_transformer"]}
    heavy_modules = ("torch", "sentence_transformers", "transformers")


class TestCrossEncoder(LocalCrossEncoderConformance, RerankerConformance):
    provider = "sentence_transformer"
    model_cache = MODEL_CACHE
    forward_method = "predict"

    @pytest.fixture
    def reranker(self, cross_encoder_dir: Path) -> SentenceTransformerReranker:
        return make(cross_encoder_dir)


def test_one_predict_call_per_pool(
    cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reranker = make(cross_encoder_dir)
    model = reranker._loaded.model
    calls: list[int] = []
    original = model.predict

    def counting(pairs: Any, **kwargs: Any) -> Any:
        calls.append(len(pairs))
        assert kwargs["batch_size"] == 32
        return original(pairs, **kwargs)

    monkeypatch.setattr(model, "predict", counting)
    reranker.rerank(QUERY, DOCS * 4)
    assert calls == [len(DOCS) * 4]


def test_each_max_length_is_a_model_of_its_own(cross_encoder_dir: Path) -> None:
    MODEL_CACHE.clear()
    before = MODEL_CACHE.loads
    first = make(cross_encoder_dir, max_length=200)
    assert make(cross_encoder_dir, max_length=200)._loaded is first._loaded
    assert MODEL_CACHE.loads == before + 1
    other = make(cross_encoder_dir, max_length=100)
    assert MODEL_CACHE.loads == before + 2
    assert other._loaded.model is not first._loaded.model


def test_unknown_key_and_bad_values_are_config_errors(cross_encoder_dir: Path) -> None:
    base = {"vector_store": {"provider": "faiss", "config": {"path": "unused"}}}
    for bad, needle in [
        ({"model": str(cross_encoder_dir), "modle": "x"}, "unknown key 'modle'"),
        ({"device": "gpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 4}, "max_length"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            memsift.MemoryConfig.from_dict(
                {**base, "reranker": {"provider": "sentence_transformer", "config": bad}}
            )
