"""The local mode's ``backend`` option: onnx (fp32, int8) and openvino on the tiny model.

Every backend runs the core's suites; the tests here check the scores against torch's within
the documented tolerances, token-length batching, the export cache, the config errors, the
install hint when a backend's library is missing, and quiet loading.
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
from memsift.interfaces import Reranker
from memsift.kit.local_onnx import FP32_TOLERANCE, INT8_LOGIT_TOLERANCE, INT8_TOLERANCE
from memsift.testing import RerankerConformance
from memsift.testing.local_reranker import LocalCrossEncoderConformance, assert_same_order
from memsift.testing.tiny_models import DOCS, QUERY, reference_logits
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig
from memsift_huggingface.runtime import MODEL_CACHE

#: One export folder for the whole run (each test has its own MEMSIFT_HOME).
EXPORTS = Path(tempfile.mkdtemp(prefix="memsift-hf-exports-"))
atexit.register(shutil.rmtree, EXPORTS, True)


def make(folder: Path, **options: Any) -> HuggingFaceReranker:
    config = {"model": str(folder), "device": "cpu", "local_files_only": True, **options}
    if config.get("backend", "torch") != "torch":
        config.setdefault("export_dir", str(EXPORTS))
    return HuggingFaceReranker(HuggingFaceRerankerConfig(**config))


class _Backend(LocalCrossEncoderConformance, RerankerConformance):
    provider = "huggingface"
    model_cache = MODEL_CACHE
    forward_method = "run"
    cuda_error = "runs on the CPU"
    logit_tolerance = FP32_TOLERANCE
    shared_options: ClassVar[dict[str, Any]] = {"batch_size": 2, "normalize": False, "top_k": 5}

    @pytest.fixture
    def reranker(self, cross_encoder_dir: Path) -> HuggingFaceReranker:
        return make(cross_encoder_dir, **self.options)

    def loaded_model(self, reranker: Reranker) -> Any:
        assert isinstance(reranker, HuggingFaceReranker) and reranker._local is not None
        return reranker._local.model


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
    assert make(cross_encoder_dir, backend=backend).rerank(QUERY, docs) == pytest.approx(
        torch_scores, abs=1e-5
    )


def test_int8_scores_are_near_torchs_and_rank_alike(cross_encoder_dir: Path) -> None:
    torch_scores = make(cross_encoder_dir).rerank(QUERY, DOCS)
    scores = make(cross_encoder_dir, backend="onnx", quantize="int8").rerank(QUERY, DOCS)
    assert scores == pytest.approx(torch_scores, abs=INT8_TOLERANCE)
    assert scores != pytest.approx(torch_scores, abs=1e-6), "int8 ran the fp32 model"
    assert_same_order(scores, torch_scores, INT8_TOLERANCE / 4)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_pairs_are_batched_by_token_length_and_returned_in_order(
    cross_encoder_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = ["tea", "alice " * 40, "bob prefers green tea", "lisbon " * 9, "x", DOCS[0]]
    reranker = make(cross_encoder_dir, backend=backend, batch_size=2, normalize=False)
    loaded = reranker._local
    assert loaded is not None
    widths: list[int] = []
    target = loaded.model
    name = "forward" if backend == "torch" else "run"
    original = getattr(target, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        batch = kwargs if backend == "torch" else args[0]
        widths.append(int(batch["input_ids"].shape[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, recording)
    scores = reranker.rerank(QUERY, docs)
    assert scores == pytest.approx(reference_logits(cross_encoder_dir, QUERY, docs), abs=1e-4)
    assert len(widths) == 3 and widths == sorted(widths, reverse=True), widths
    assert widths[-1] < widths[0] / 3, "short pairs were padded to the longest"


# --------------------------------------------------------------------------- the export cache


def test_a_second_load_reads_the_export(
    tmp_path: Path, cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    root = tmp_path / "exports"
    expected = make(cross_encoder_dir, backend="onnx", export_dir=str(root)).rerank(QUERY, DOCS)
    (folder,) = root.iterdir()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    MODEL_CACHE.clear()
    loads = MODEL_CACHE.loads
    again = make(cross_encoder_dir, backend="onnx", export_dir=str(root))
    assert MODEL_CACHE.loads == loads + 1
    assert again.rerank(QUERY, DOCS) == pytest.approx(expected, abs=1e-6)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"quantize": "int8"}, "quantize='int8' is not offered by backend='torch'"),
        ({"backend": "openvino", "quantize": "int8"}, "use backend='onnx' for int8"),
        ({"backend": "onnx", "device": "cuda"}, "runs on the CPU"),
        ({"backend": "onnx", "torch_dtype": "bfloat16"}, "torch_dtype='bfloat16' is for"),
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
                "reranker": {"provider": "huggingface", "config": config},
            }
        )


def test_backend_options_are_refused_in_the_remote_mode() -> None:
    with pytest.raises(ConfigError, match="backend is only for the local mode"):
        memsift.MemoryConfig.from_dict(
            {
                "vector_store": {"provider": "faiss", "config": {"path": "unused"}},
                "reranker": {
                    "provider": "huggingface",
                    "config": {"endpoint_url": "http://127.0.0.1:9", "backend": "onnx"},
                },
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
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=rf"memsift-huggingface\{extra}"):
        make(cross_encoder_dir, backend=backend, export_dir=str(tmp_path / "e"))
    assert not (tmp_path / "e").exists()


def test_loading_prints_no_progress_bars(
    tmp_path: Path, cross_encoder_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    MODEL_CACHE.clear()
    capfd.readouterr()
    make(cross_encoder_dir)
    make(cross_encoder_dir, backend="onnx", export_dir=str(tmp_path / "e"))
    out, err = capfd.readouterr()
    assert "Loading weights" not in err + out and "%|" not in err, err
