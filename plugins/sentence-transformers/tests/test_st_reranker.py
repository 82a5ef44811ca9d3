"""The ``sentence_transformer`` reranker on a tiny random cross-encoder."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import memsift
from memsift import ConfigError, ModelNotFoundError, RerankError
from memsift.search import RerankStage
from memsift.testing import RerankerConformance
from memsift.testing.tiny_models import DOCS, QUERY, reference_logits
from memsift_sentence_transformers import (
    SentenceTransformerReranker,
    SentenceTransformerRerankerConfig,
)
from memsift_sentence_transformers.runtime import MODEL_CACHE


def make(folder: Path, **options: Any) -> SentenceTransformerReranker:
    config = {"model": str(folder), "device": "cpu", "local_files_only": True, **options}
    return SentenceTransformerReranker(SentenceTransformerRerankerConfig(**config))


@pytest.fixture
def reranker(cross_encoder_dir: Path) -> SentenceTransformerReranker:
    return make(cross_encoder_dir)


class TestConformance(RerankerConformance):
    @pytest.fixture
    def reranker(self, cross_encoder_dir: Path) -> SentenceTransformerReranker:
        return make(cross_encoder_dir)


# --------------------------------------------------------------------------- scores


def test_scores_are_the_sigmoid_of_the_models_logits(
    reranker: SentenceTransformerReranker, cross_encoder_dir: Path
) -> None:
    scores = reranker.rerank(QUERY, DOCS)
    logits = reference_logits(cross_encoder_dir, QUERY, DOCS)
    assert len(scores) == len(DOCS)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx([1 / (1 + math.exp(-x)) for x in logits], abs=1e-5)
    order = sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert order == sorted(range(len(DOCS)), key=lambda i: -logits[i])
    assert max(logits) - min(logits) > 0.1, "the tiny model should separate the documents"


def test_normalize_false_returns_raw_logits(cross_encoder_dir: Path) -> None:
    raw = make(cross_encoder_dir, normalize=False).rerank(QUERY, DOCS)
    assert raw == pytest.approx(reference_logits(cross_encoder_dir, QUERY, DOCS), abs=1e-5)
    assert any(not 0.0 <= s <= 1.0 for s in raw)


def test_batching_gives_the_same_scores(cross_encoder_dir: Path) -> None:
    whole = make(cross_encoder_dir).rerank(QUERY, DOCS)
    batched = make(cross_encoder_dir, batch_size=2).rerank(QUERY, DOCS)
    assert batched == pytest.approx(whole, abs=1e-5)


def test_one_predict_call_per_pool(
    reranker: SentenceTransformerReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_truncation_at_max_length(cross_encoder_dir: Path) -> None:
    head = "alice lives in lisbon and works as a nurse " * 3
    tail = "bob prefers green tea over coffee in the morning " * 3
    short = make(cross_encoder_dir, max_length=16)
    cut = short.rerank(QUERY, [head, head + tail])
    assert cut[0] == pytest.approx(cut[1], abs=1e-6), "tokens past max_length must not count"
    full = make(cross_encoder_dir, max_length=256).rerank(QUERY, [head, head + tail])
    assert full[0] != pytest.approx(full[1], abs=1e-6)
    (logit,) = reference_logits(cross_encoder_dir, QUERY, [head], max_length=16)
    assert cut[0] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-5)


# --------------------------------------------------------------------------- the model cache


def test_model_is_loaded_once_and_shared(cross_encoder_dir: Path) -> None:
    before = MODEL_CACHE.loads
    barrier = threading.Barrier(4)

    def build() -> SentenceTransformerReranker:
        barrier.wait()
        return make(cross_encoder_dir, max_length=200)

    with ThreadPoolExecutor(4) as pool:
        rerankers = list(pool.map(lambda _: build(), range(4)))
    assert MODEL_CACHE.loads == before + 1
    assert len({id(r._loaded.model) for r in rerankers}) == 1
    # options that do not change the model share it too
    make(cross_encoder_dir, max_length=200, batch_size=3, normalize=False, top_k=5)
    assert MODEL_CACHE.loads == before + 1
    # a different max_length is a different model object
    make(cross_encoder_dir, max_length=100)
    assert MODEL_CACHE.loads == before + 2


def test_concurrent_reranking_is_safe(cross_encoder_dir: Path) -> None:
    first, second = make(cross_encoder_dir), make(cross_encoder_dir)
    expected = first.rerank(QUERY, DOCS)

    def work(i: int) -> list[float]:
        r = first if i % 2 else second
        return r.rerank(QUERY, DOCS[i % 3 :] + DOCS[: i % 3])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(32)))
    for i, scores in enumerate(results):
        k = i % 3
        assert scores == pytest.approx(expected[k:] + expected[:k], abs=1e-5)


# --------------------------------------------------------------------------- errors


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


def test_cuda_without_a_gpu_is_a_clear_error(cross_encoder_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        make(cross_encoder_dir, device="cuda")


def test_auto_device_resolves(cross_encoder_dir: Path) -> None:
    reranker = make(cross_encoder_dir, device="auto")
    assert reranker.device in {"cpu", "cuda", "mps"}


def test_missing_model_offline_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="cannot load model"):
        SentenceTransformerReranker(
            SentenceTransformerRerankerConfig(
                model="nobody/no-such-cross-encoder", device="cpu", local_files_only=True
            )
        )


def test_a_multi_label_model_is_refused(two_label_dir: Path) -> None:
    with pytest.raises(ConfigError, match="num_labels=1"):
        make(two_label_dir)


def test_max_length_over_the_models_positions_is_refused(cross_encoder_dir: Path) -> None:
    with pytest.raises(ConfigError, match="at most 512"):
        make(cross_encoder_dir, max_length=1024)


def test_a_forward_failure_is_a_rerank_error(
    reranker: SentenceTransformerReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(reranker._loaded.model, "predict", boom)
    with pytest.raises(RerankError, match="out of memory"):
        reranker.rerank(QUERY, DOCS)


def test_the_token_never_shows(cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    config = SentenceTransformerRerankerConfig(model=str(cross_encoder_dir))
    assert config.token is not None and config.token.get_secret_value() == "hf_secret_value"
    assert "hf_secret_value" not in repr(config)
    assert "hf_secret_value" not in str(config.model_dump(mode="json"))


# --------------------------------------------------------------------------- the pipeline


def _hits(docs: list[str]) -> list[memsift.VectorHit]:
    return [
        memsift.VectorHit(
            record=memsift.MemoryRecord(id=str(i), memory=d, hash=f"h{i}"), score=1 - i / 100
        )
        for i, d in enumerate(docs)
    ]


def test_rerank_stage_uses_the_scores(reranker: SentenceTransformerReranker) -> None:
    outcome = RerankStage.build("sentence_transformer", reranker).run(QUERY, _hits(DOCS))
    assert outcome.applied, outcome.error
    assert outcome.scores == pytest.approx(reranker.rerank(QUERY, DOCS), abs=1e-6)


def test_pipeline_refuses_raw_logits_with_a_clear_reason(cross_encoder_dir: Path) -> None:
    stage = RerankStage.build("sentence_transformer", make(cross_encoder_dir, normalize=False))
    outcome = stage.run(QUERY, _hits(DOCS))
    assert not outcome.applied
    assert outcome.error is not None and "normalize=True" in outcome.error
    outcome = asyncio.run(stage.arun(QUERY, _hits(DOCS)))
    assert not outcome.applied and "normalize=True" in (outcome.error or "")


def _memory(tmp_path: Path, folder: Path, **options: Any) -> Any:
    return memsift.Memory.from_config(
        {
            "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
            "reranker": {
                "provider": "sentence_transformer",
                "config": {
                    "model": str(folder),
                    "device": "cpu",
                    "local_files_only": True,
                    **options,
                },
            },
        }
    )


def test_search_reorders_by_the_models_scores(tmp_path: Path, cross_encoder_dir: Path) -> None:
    memory = _memory(tmp_path, cross_encoder_dir)
    try:
        memory.add(DOCS, user_id="alice", infer=False)
        plain = memory.search(QUERY, user_id="alice", top_k=len(DOCS), rerank=False)
        ranked = memory.search(QUERY, user_id="alice", top_k=len(DOCS), rerank=True)
        assert ranked["rerank"]["applied"] is True, ranked["rerank"]
        assert ranked["rerank"]["provider"] == "sentence_transformer"
        assert ranked["rerank"]["candidates"] == len(DOCS)
        texts = [r["memory"] for r in ranked["results"]]
        expected_scores = memory.reranker.rerank(QUERY, texts)
        assert [r["rerank_score"] for r in ranked["results"]] == pytest.approx(
            expected_scores, abs=1e-5
        )
        assert expected_scores == sorted(expected_scores, reverse=True)
        assert texts != [r["memory"] for r in plain["results"]], "reranking changed nothing"
        assert all(r["score"] == r["rerank_score"] for r in ranked["results"])
    finally:
        memory.close()


def test_concurrent_searches_are_safe(tmp_path: Path, cross_encoder_dir: Path) -> None:
    memory = _memory(tmp_path, cross_encoder_dir)
    try:
        memory.add(DOCS, user_id="alice", infer=False)
        expected = [r["id"] for r in memory.search(QUERY, user_id="alice", rerank=True)["results"]]

        def search(_: int) -> list[str]:
            out = memory.search(QUERY, user_id="alice", rerank=True)
            assert out["rerank"]["applied"], out["rerank"]
            return [r["id"] for r in out["results"]]

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(search, range(24)))
        assert all(r == expected for r in results)
    finally:
        memory.close()


def test_async_memory_search_reranks(tmp_path: Path, cross_encoder_dir: Path) -> None:
    async def main() -> dict[str, Any]:
        memory = memsift.AsyncMemory.from_config(
            {
                "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "a")}},
                "reranker": {
                    "provider": "sentence_transformer",
                    "config": {"model": str(cross_encoder_dir), "device": "cpu"},
                },
            }
        )
        async with memory:
            await memory.add(DOCS, user_id="bob", infer=False)
            result: dict[str, Any] = await memory.search(QUERY, user_id="bob", rerank=True)
            return result

    out = asyncio.run(main())
    assert out["rerank"]["applied"], out["rerank"]
    scores = [r["rerank_score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, memsift_sentence_transformers;"
        "names = ('torch', 'transformers', 'sentence_transformers');"
        "heavy = [m for m in names if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
