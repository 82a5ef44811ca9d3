"""The reranker's ``backend`` option: onnx (fp32, int8) and openvino on the tiny cross-encoder.

Every backend runs the core's suites; the tests here check the scores against torch's within
the documented tolerances, the export cache (a second load does not export again), the
config errors, the install hint when a backend's library is missing, and quiet loading.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest

import memsift
from memsift import ConfigError
from memsift.kit.local_onnx import FP32_TOLERANCE, INT8_LOGIT_TOLERANCE, INT8_TOLERANCE
from memsift.testing import RerankerConformance
from memsift.testing.local_reranker import LocalCrossEncoderConformance, assert_same_order
from memsift.testing.tiny_models import DOCS, QUERY, reference_logits
from memsift_sentence_transformers import (
    SentenceTransformerReranker,
    SentenceTransformerRerankerConfig,
)
from memsift_sentence_transformers.runtime import MODEL_CACHE

#: One export folder for the whole run (each test has its own MEMSIFT_HOME).
EXPORTS = Path(tempfile.mkdtemp(prefix="memsift-st-exports-"))
atexit.register(shutil.rmtree, EXPORTS, True)


def make(folder: Path, **options: Any) -> SentenceTransformerReranker:
    config = {"model": str(folder), "device": "cpu", "local_files_only": True, **options}
    if config.get("backend", "torch") != "torch":
        config.setdefault("export_dir", str(EXPORTS))
    return SentenceTransformerReranker(SentenceTransformerRerankerConfig(**config))


class _Backend(LocalCrossEncoderConformance, RerankerConformance):
    provider = "sentence_transformer"
    model_cache = MODEL_CACHE
    forward_method = "run"
    cuda_error = "runs on the CPU"
    logit_tolerance = FP32_TOLERANCE

    @pytest.fixture
    def reranker(self, cross_encoder_dir: Path) -> SentenceTransformerReranker:
        return make(cross_encoder_dir, **self.options)


class TestOnnx(_Backend):
    options: ClassVar[dict[str, Any]] = {"backend": "onnx", "export_dir": str(EXPORTS)}


class TestOnnxInt8(_Backend):
    options: ClassVar[dict[str, Any]] = {
        "backend": "onnx",
        "quantize": "int8",
        "export_dir": str(EXPORTS),
    }
    score_tolerance = INT8_TOLERANCE
    logit_tolerance = INT8_LOGIT_TOLERANCE


class TestOpenVINO(_Backend):
    options: ClassVar[dict[str, Any]] = {"backend": "openvino", "export_dir": str(EXPORTS)}


# --------------------------------------------------------------------------- scores


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fp32_scores_equal_torchs(cross_encoder_dir: Path, backend: str) -> None:
    docs = DOCS * 3 + ["alice " * 200]
    torch_scores = make(cross_encoder_dir).rerank(QUERY, docs)
    scores = make(cross_encoder_dir, backend=backend).rerank(QUERY, docs)
    assert scores == pytest.approx(torch_scores, abs=1e-5)
    raw = make(cross_encoder_dir, backend=backend, normalize=False).rerank(QUERY, docs)
    logits = make(cross_encoder_dir, normalize=False).rerank(QUERY, docs)
    assert raw == pytest.approx(logits, abs=FP32_TOLERANCE)


def test_int8_scores_are_near_torchs_and_rank_alike(cross_encoder_dir: Path) -> None:
    torch_scores = make(cross_encoder_dir).rerank(QUERY, DOCS)
    scores = make(cross_encoder_dir, backend="onnx", quantize="int8").rerank(QUERY, DOCS)
    assert scores == pytest.approx(torch_scores, abs=INT8_TOLERANCE)
    assert scores != pytest.approx(torch_scores, abs=1e-6), "int8 ran the fp32 model"
    assert_same_order(scores, torch_scores, INT8_TOLERANCE / 4)
    top = max(range(len(DOCS)), key=lambda i: torch_scores[i])
    assert max(range(len(DOCS)), key=lambda i: scores[i]) == top


def test_pairs_are_batched_by_length_and_returned_in_order(cross_encoder_dir: Path) -> None:
    """Batches of 2 over pairs of very different lengths: each score is its own pair's."""
    docs = ["tea", "alice " * 40, "bob prefers green tea", "lisbon " * 9, "x", DOCS[0]]
    expected = reference_logits(cross_encoder_dir, QUERY, docs)
    for backend in ("torch", "onnx"):
        raw = make(cross_encoder_dir, backend=backend, batch_size=2, normalize=False)
        assert raw.rerank(QUERY, docs) == pytest.approx(expected, abs=FP32_TOLERANCE)


# --------------------------------------------------------------------------- the export cache


def test_a_second_load_reads_the_export(
    tmp_path: Path, cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    root = tmp_path / "exports"
    first = make(cross_encoder_dir, backend="onnx", quantize="int8", export_dir=str(root))
    (folder,) = root.iterdir()
    assert {"model.onnx", "model_int8.onnx", "tokenizer.json", "config.json"} <= {
        p.name for p in folder.iterdir()
    }
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    expected = first.rerank(QUERY, DOCS)

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    MODEL_CACHE.clear()
    loads = MODEL_CACHE.loads
    second = make(cross_encoder_dir, backend="onnx", quantize="int8", export_dir=str(root))
    assert MODEL_CACHE.loads == loads + 1, "the model was not loaded again"
    assert second.rerank(QUERY, DOCS) == pytest.approx(expected, abs=1e-6)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    # fp32 and openvino come from the same export
    make(cross_encoder_dir, backend="onnx", export_dir=str(root))
    make(cross_encoder_dir, backend="openvino", export_dir=str(root))
    assert [p.name for p in root.iterdir()] == [folder.name]


def test_a_changed_model_folder_is_exported_again(tmp_path: Path) -> None:
    from memsift.kit.local_onnx import export_folder
    from memsift.testing.tiny_models import build_cross_encoder

    model = build_cross_encoder(tmp_path / "model", seed=3)
    before = export_folder(str(model), revision=None, cache=None, root=tmp_path / "x")
    build_cross_encoder(model, seed=4)
    after = export_folder(str(model), revision=None, cache=None, root=tmp_path / "x")
    assert before != after
    hub = export_folder("acme/reranker", revision="v2", cache=None, root=tmp_path / "x")
    assert hub != export_folder("acme/reranker", revision="v3", cache=None, root=tmp_path / "x")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"quantize": "int8"}, "quantize='int8' is not offered by backend='torch'"),
        ({"backend": "openvino", "quantize": "int8"}, "use backend='onnx' for int8"),
        ({"backend": "onnx", "device": "cuda"}, "runs on the CPU"),
        ({"backend": "tensorrt"}, "backend"),
        ({"quantize": "int4", "backend": "onnx"}, "quantize"),
        ({"export_dir": "/tmp/x"}, "export_dir is only for backend"),
    ],
)
def test_bad_backend_combinations_are_config_errors(
    cross_encoder_dir: Path, options: dict[str, Any], needle: str
) -> None:
    config = {"model": str(cross_encoder_dir), **options}
    with pytest.raises(ConfigError, match=needle):
        memsift.MemoryConfig.from_dict(
            {
                "vector_store": {"provider": "faiss", "config": {"path": "unused"}},
                "reranker": {"provider": "sentence_transformer", "config": config},
            }
        )


@pytest.mark.parametrize(
    ("backend", "module", "extra"),
    [("onnx", "onnxruntime", "[onnx]"), ("openvino", "openvino", "[openvino]")],
)
def test_a_missing_backend_library_names_the_extra(
    tmp_path: Path,
    cross_encoder_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(ConfigError, match=rf"memsift-sentence-transformers\{extra}"):
        make(cross_encoder_dir, backend=backend, export_dir=str(tmp_path / "e"))
    assert not (tmp_path / "e").exists(), "nothing is exported without the backend"


# --------------------------------------------------------------------------- quiet loading


def test_loading_prints_no_progress_bars(
    tmp_path: Path, cross_encoder_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    MODEL_CACHE.clear()
    capfd.readouterr()
    make(cross_encoder_dir)
    make(cross_encoder_dir, backend="onnx", export_dir=str(tmp_path / "e"))
    out, err = capfd.readouterr()
    assert "Loading weights" not in err + out and "it/s" not in err + out, err
    assert "%|" not in err, err
