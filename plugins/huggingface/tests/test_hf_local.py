"""The ``huggingface`` reranker's local mode on a tiny random cross-encoder.

The core's local cross-encoder suite checks the contract (scores, batching, truncation, the
model cache, errors, the pipeline); the tests here check what is this mode's own: one
forward pass per ``batch_size`` pairs, and the weights' dtype. The installed package is
checked here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memsift.interfaces import Reranker
from memsift.testing import PluginPackageConformance, RerankerConformance
from memsift.testing.local_reranker import LocalCrossEncoderConformance
from memsift.testing.tiny_models import DOCS, QUERY
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig
from memsift_huggingface.runtime import MODEL_CACHE


def make(folder: Path, **options: Any) -> HuggingFaceReranker:
    config = {"model": str(folder), "device": "cpu", "local_files_only": True, **options}
    return HuggingFaceReranker(HuggingFaceRerankerConfig(**config))


@pytest.fixture
def reranker(cross_encoder_dir: Path) -> HuggingFaceReranker:
    return make(cross_encoder_dir)


class TestPackage(PluginPackageConformance):
    distribution = "memsift-huggingface"
    providers = {"reranker": ["huggingface"]}
    heavy_modules = ("torch", "transformers")


class TestLocal(LocalCrossEncoderConformance, RerankerConformance):
    provider = "huggingface"
    model_cache = MODEL_CACHE
    shared_options = {"batch_size": 2, "normalize": False, "max_length": 32, "top_k": 5}

    @pytest.fixture
    def reranker(self, cross_encoder_dir: Path) -> HuggingFaceReranker:
        return make(cross_encoder_dir)

    def loaded_model(self, reranker: Reranker) -> Any:
        assert isinstance(reranker, HuggingFaceReranker) and reranker._local is not None
        return reranker._local.model


# --------------------------------------------------------------------------- this mode's own


def test_a_pool_is_one_forward_pass(
    reranker: HuggingFaceReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert reranker.mode == "local" and reranker.device == "cpu"
    model = reranker._local.model  # type: ignore[union-attr]
    sizes: list[int] = []
    original = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        import torch

        assert torch.is_inference_mode_enabled()
        sizes.append(int(kwargs["input_ids"].shape[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    reranker.rerank(QUERY, DOCS * 4)
    assert sizes == [len(DOCS) * 4]
    sizes.clear()
    make_small = HuggingFaceReranker(reranker.config.model_copy(update={"batch_size": 10}))
    make_small.rerank(QUERY, DOCS * 4)
    assert sizes == [10, 10, 8]


def test_bfloat16_weights(cross_encoder_dir: Path) -> None:
    scores = make(cross_encoder_dir, torch_dtype="bfloat16").rerank(QUERY, DOCS)
    reference = make(cross_encoder_dir).rerank(QUERY, DOCS)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx(reference, abs=0.05)
