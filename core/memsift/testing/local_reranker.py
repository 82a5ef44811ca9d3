"""``LocalCrossEncoderConformance``: a reranker that runs a cross-encoder in this process.

It builds the reranker from the registry on a tiny random cross-encoder
(:mod:`memsift.testing.tiny_models`) and checks it against the model itself: scores are the
sigmoid of the model's logits (raw logits with ``normalize=False``) in input order, the same
whatever the batch size, with pairs truncated at ``max_length``; the model loads once per
process and is shared (also by instances built at the same time), and concurrent use is
safe; a missing model, a multi-label model, a ``max_length`` over the model's positions and
a device that is not there are clear errors; a failing forward pass is a
:class:`memsift.RerankError`; the token is a secret; and in the search pipeline (the rerank
stage, ``Memory``, ``AsyncMemory``, concurrent searches) the model's scores order the
results, while raw logits are refused. It needs torch and transformers::

    from memsift.testing.local_reranker import LocalCrossEncoderConformance

    class TestLocal(LocalCrossEncoderConformance):
        provider = "acme_cross_encoder"
        model_cache = MODEL_CACHE        # your plugin's memsift.kit.local.ModelCache
        forward_method = "forward"       # the method of the loaded model a pool runs through

Fixtures it needs (:mod:`memsift.testing.fixtures` has them): ``cross_encoder_dir`` and
``two_label_dir``.

A reranker with several backends runs the suite once per backend: subclass it again with
``options`` (e.g. ``{"backend": "onnx"}``, added to every config the suite builds) and, for
an approximate backend such as int8, a looser ``score_tolerance``.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memsift.async_memory import AsyncMemory
from memsift.config import resolve_section
from memsift.errors import ConfigError, ModelNotFoundError, RerankError
from memsift.interfaces import Reranker
from memsift.kit.local import ModelCache
from memsift.memory import Memory
from memsift.records import MemoryRecord, VectorHit
from memsift.registry import get_reranker
from memsift.search import RerankStage
from memsift.testing.tiny_models import DOCS, QUERY, reference_logits

__all__ = ["LocalCrossEncoderConformance", "assert_same_order"]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def assert_same_order(scores: Sequence[float], logits: Sequence[float], tolerance: float) -> None:
    """``scores`` rank every two documents as ``logits`` do, unless their logits are within
    ``2 * tolerance`` of each other (an approximate backend may swap near-ties)."""
    for i, a in enumerate(logits):
        for j, b in enumerate(logits):
            if a - b > 2 * tolerance:
                assert scores[i] > scores[j], (
                    f"document {i} (logit {a:.4f}) must rank above {j} (logit {b:.4f})"
                )


def hits(docs: Sequence[str]) -> list[VectorHit]:
    """Vector-stage hits of ``docs``, in their order."""
    return [
        VectorHit(record=MemoryRecord(id=str(i), memory=d, hash=f"h{i}"), score=1 - i / 100)
        for i, d in enumerate(docs)
    ]


class LocalCrossEncoderConformance:
    """A local cross-encoder reranker on a tiny model. Set the class attributes:

    ``provider``
        the reranker's registered name; the suite builds it from its config model with
        ``model`` (the tiny model's folder), ``device="cpu"`` and ``local_files_only``.
    ``model_cache``
        the plugin's :class:`memsift.kit.local.ModelCache` (its loads are counted).
    ``forward_method``
        the method of the loaded model that scores a pool (``forward`` of a transformers
        model, ``predict`` of a sentence-transformers CrossEncoder); the suite breaks it.
    ``shared_options``
        options that must not load another model (default: batch size, normalize, pool).
    ``options``
        options added to every config the suite builds (a backend, its export folder).
    ``score_tolerance``
        how far scores may be from the model's own (default 1e-5; an int8 backend needs
        more); near-ties within it may swap places. ``logit_tolerance``: the same for raw
        logits (``normalize=False``).
    ``cuda_error``
        what the error says when ``device="cuda"`` is asked for without a GPU (or on a
        backend that runs on the CPU only).

    Override :meth:`loaded_model` when the reranker does not keep its loaded model as
    ``_loaded`` (a :class:`memsift.kit.local.LoadedModel`).
    """

    provider: ClassVar[str] = ""
    model_cache: ClassVar[ModelCache | None] = None
    forward_method: ClassVar[str] = "forward"
    shared_options: ClassVar[dict[str, Any]] = {"batch_size": 3, "normalize": False, "top_k": 5}
    options: ClassVar[dict[str, Any]] = {}
    score_tolerance: ClassVar[float] = 1e-5
    logit_tolerance: ClassVar[float] = 1e-5
    cuda_error: ClassVar[str] = "CUDA is not available"

    def loaded_model(self, reranker: Reranker) -> Any:
        """The model object the reranker runs (shared between instances)."""
        return reranker._loaded.model  # type: ignore[attr-defined]

    def build(self, folder: Path | str, **options: Any) -> Reranker:
        """The reranker on the model in ``folder``, built from its config model."""
        if not self.provider:
            raise NotImplementedError("set `provider` on your LocalCrossEncoderConformance")
        config = {
            "model": str(folder),
            "device": "cpu",
            "local_files_only": True,
            **self.options,
            **options,
        }
        section = resolve_section("reranker", {"provider": self.provider, "config": config})
        return get_reranker(self.provider).build(section.config)

    def _memory(self, tmp_path: Path, folder: Path, **options: Any) -> Memory:
        config = {
            "model": str(folder),
            "device": "cpu",
            "local_files_only": True,
            **self.options,
            **options,
        }
        return Memory.from_config(
            {
                "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "s")}},
                "reranker": {"provider": self.provider, "config": config},
            }
        )

    # ------------------------------------------------------------------ scores

    def test_scores_are_the_sigmoid_of_the_models_logits(self, cross_encoder_dir: Path) -> None:
        reranker = self.build(cross_encoder_dir)
        assert getattr(reranker, "device", "cpu") == "cpu"
        scores = reranker.rerank(QUERY, DOCS)
        logits = reference_logits(cross_encoder_dir, QUERY, DOCS)
        assert len(scores) == len(DOCS)
        assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
        tol = self.score_tolerance
        assert scores == pytest.approx([sigmoid(x) for x in logits], abs=tol)
        assert_same_order(scores, logits, tol)
        assert max(logits) - min(logits) > 0.1, "the tiny model should separate the documents"

    def test_normalize_false_returns_raw_logits(self, cross_encoder_dir: Path) -> None:
        raw = self.build(cross_encoder_dir, normalize=False).rerank(QUERY, DOCS)
        logits = reference_logits(cross_encoder_dir, QUERY, DOCS)
        assert raw == pytest.approx(logits, abs=self.logit_tolerance)
        assert any(not 0.0 <= s <= 1.0 for s in raw)

    @pytest.mark.parametrize("batch_size", [2, 3])
    def test_batching_gives_the_same_scores(self, cross_encoder_dir: Path, batch_size: int) -> None:
        whole = self.build(cross_encoder_dir).rerank(QUERY, DOCS)
        batched = self.build(cross_encoder_dir, batch_size=batch_size).rerank(QUERY, DOCS)
        assert batched == pytest.approx(whole, abs=self.score_tolerance)

    def test_truncation_at_max_length(self, cross_encoder_dir: Path) -> None:
        head = "alice lives in lisbon and works as a nurse " * 3
        tail = "bob prefers green tea over coffee in the morning " * 3
        cut = self.build(cross_encoder_dir, max_length=16).rerank(QUERY, [head, head + tail])
        assert cut[0] == pytest.approx(cut[1], abs=1e-6), "tokens past max_length must not count"
        (logit,) = reference_logits(cross_encoder_dir, QUERY, [head], max_length=16)
        assert cut[0] == pytest.approx(sigmoid(logit), abs=self.score_tolerance)
        full = self.build(cross_encoder_dir, max_length=256).rerank(QUERY, [head, head + tail])
        assert full[0] != pytest.approx(full[1], abs=1e-6)

    # ------------------------------------------------------------------ the model cache

    def test_the_model_is_loaded_once_and_shared(self, cross_encoder_dir: Path) -> None:
        cache = self.model_cache
        if cache is None:
            pytest.skip("set model_cache to count the loads")
        cache.clear()
        before = cache.loads
        barrier = threading.Barrier(4)

        def build(_: int) -> Reranker:
            barrier.wait()
            return self.build(cross_encoder_dir)

        with ThreadPoolExecutor(4) as pool:
            rerankers = list(pool.map(build, range(4)))
        assert cache.loads == before + 1, "instances built at the same time loaded it again"
        assert len({id(self.loaded_model(r)) for r in rerankers}) == 1
        self.build(cross_encoder_dir, **self.shared_options)  # per-call options share it
        assert cache.loads == before + 1

    def test_concurrent_reranking_is_safe(self, cross_encoder_dir: Path) -> None:
        first, second = self.build(cross_encoder_dir), self.build(cross_encoder_dir, batch_size=2)
        # each its own expectation: an int8 backend's scores depend a little on the batches
        expected = [second.rerank(QUERY, DOCS), first.rerank(QUERY, DOCS)]

        def work(i: int) -> list[float]:
            reranker = first if i % 2 else second
            return reranker.rerank(QUERY, DOCS[i % 3 :] + DOCS[: i % 3])

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(work, range(32)))
        for i, scores in enumerate(results):
            k, want = i % 3, expected[i % 2]
            assert scores == pytest.approx(want[k:] + want[:k], abs=1e-5)
        assert expected[0] == pytest.approx(expected[1], abs=self.score_tolerance)

    # ------------------------------------------------------------------ errors

    def test_a_missing_model_offline_is_model_not_found(self) -> None:
        with pytest.raises(ModelNotFoundError, match="cannot load model"):
            self.build("nobody/no-such-cross-encoder")

    def test_a_multi_label_model_is_refused(self, two_label_dir: Path) -> None:
        with pytest.raises(ConfigError, match="num_labels=1"):
            self.build(two_label_dir)

    def test_max_length_over_the_models_positions_is_refused(self, cross_encoder_dir: Path) -> None:
        with pytest.raises(ConfigError, match="at most 512"):
            self.build(cross_encoder_dir, max_length=1024)

    def test_cuda_without_a_gpu_is_a_clear_error(self, cross_encoder_dir: Path) -> None:
        torch = importlib.import_module("torch")
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        with pytest.raises(ConfigError, match=self.cuda_error):
            self.build(cross_encoder_dir, device="cuda")

    def test_the_auto_device_resolves(self, cross_encoder_dir: Path) -> None:
        reranker = self.build(cross_encoder_dir, device="auto")
        assert getattr(reranker, "device", "cpu") in {"cpu", "cuda", "mps"}

    def test_a_forward_failure_is_a_rerank_error(
        self, cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reranker = self.build(cross_encoder_dir)

        def boom(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("out of memory")

        monkeypatch.setattr(self.loaded_model(reranker), self.forward_method, boom)
        with pytest.raises(RerankError, match="out of memory"):
            reranker.rerank(QUERY, DOCS)

    def test_the_token_is_a_secret(
        self, cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
        config = {"model": str(cross_encoder_dir)}
        section = resolve_section("reranker", {"provider": self.provider, "config": config})
        token = section.config.token
        assert token is not None and token.get_secret_value() == "hf_secret_value"
        assert "hf_secret_value" not in repr(section.config)
        assert "hf_secret_value" not in str(section.config.model_dump(mode="json"))

    # ------------------------------------------------------------------ the pipeline

    def test_the_rerank_stage_uses_the_scores(self, cross_encoder_dir: Path) -> None:
        reranker = self.build(cross_encoder_dir)
        outcome = RerankStage.build(self.provider, reranker).run(QUERY, hits(DOCS))
        assert outcome.applied, outcome.error
        assert outcome.scores == pytest.approx(reranker.rerank(QUERY, DOCS), abs=1e-6)

    def test_the_pipeline_refuses_raw_logits_with_a_clear_reason(
        self, cross_encoder_dir: Path
    ) -> None:
        stage = RerankStage.build(self.provider, self.build(cross_encoder_dir, normalize=False))
        outcome = stage.run(QUERY, hits(DOCS))
        assert not outcome.applied
        assert outcome.error is not None and "normalize=True" in outcome.error
        outcome = asyncio.run(stage.arun(QUERY, hits(DOCS)))
        assert not outcome.applied and "normalize=True" in (outcome.error or "")

    def test_search_reorders_by_the_models_scores(
        self, tmp_path: Path, cross_encoder_dir: Path
    ) -> None:
        memory = self._memory(tmp_path, cross_encoder_dir)
        try:
            memory.add(DOCS, user_id="alice", infer=False)
            plain = memory.search(QUERY, user_id="alice", top_k=len(DOCS), rerank=False)
            ranked = memory.search(QUERY, user_id="alice", top_k=len(DOCS), rerank=True)
            block = ranked["rerank"]
            assert block["applied"] is True, block
            assert block["provider"] == self.provider
            assert block["model"] == str(cross_encoder_dir)
            assert block["candidates"] == len(DOCS)
            texts = [r["memory"] for r in ranked["results"]]
            logits = reference_logits(cross_encoder_dir, QUERY, texts)
            scores = [r["rerank_score"] for r in ranked["results"]]
            assert_same_order(scores, logits, self.score_tolerance)
            assert scores == pytest.approx([sigmoid(x) for x in logits], abs=self.score_tolerance)
            assert all(r["score"] == r["rerank_score"] for r in ranked["results"])
            assert texts != [r["memory"] for r in plain["results"]], "reranking changed nothing"
        finally:
            memory.close()

    def test_concurrent_searches_are_safe(self, tmp_path: Path, cross_encoder_dir: Path) -> None:
        memory = self._memory(tmp_path, cross_encoder_dir)
        try:
            memory.add(DOCS, user_id="alice", infer=False)
            first = memory.search(QUERY, user_id="alice", rerank=True)["results"]
            expected = [r["id"] for r in first]

            def search(_: int) -> list[str]:
                out = memory.search(QUERY, user_id="alice", rerank=True)
                assert out["rerank"]["applied"], out["rerank"]
                return [r["id"] for r in out["results"]]

            with ThreadPoolExecutor(6) as pool:
                results = list(pool.map(search, range(24)))
            assert all(r == expected for r in results)
        finally:
            memory.close()

    def test_async_memory_search_reranks(self, tmp_path: Path, cross_encoder_dir: Path) -> None:
        config = {"model": str(cross_encoder_dir), "device": "cpu", **self.options}

        async def main() -> dict[str, Any]:
            memory = AsyncMemory.from_config(
                {
                    "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "a")}},
                    "reranker": {"provider": self.provider, "config": config},
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
