"""memsift.kit.local: the runtime of models run in this process, and the local reranker bases.

This venv has no torch: the torch-using parts are exercised by the plugin suites (and
:class:`memsift.testing.local_reranker.LocalCrossEncoderConformance`); here, what runs
without it (a stand-in ``torch`` module where a device must resolve), and the promise that
importing these modules never imports torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydantic import Field

from memsift import ConfigError, ModelNotFoundError, RerankerConfig, RerankError
from memsift.kit.local import (
    DEVICE_PATTERN,
    LoadedModel,
    LocalRuntime,
    LogitReranker,
    ModelCache,
    check_max_length,
    check_one_label,
    encoded_batches,
    import_torch,
    length_batches,
    load_pretrained,
    logits_to_scores,
    position_limit,
    quiet_loading,
    resolve_device,
    show_load_progress,
)
from memsift.kit.local_onnx import backend_problem, export_folder
from memsift.records import Candidate, MemoryRecord
from memsift.testing import assert_secret_absent

# --------------------------------------------------------------------------- ModelCache


def test_model_cache_builds_once_per_key() -> None:
    cache = ModelCache()
    calls: list[str] = []

    def build(name: str) -> object:
        calls.append(name)
        return object()

    a = cache.get("a", lambda: build("a"))
    assert cache.get("a", lambda: build("a")) is a
    b = cache.get("b", lambda: build("b"))
    assert b is not a
    assert calls == ["a", "b"] and cache.loads == 2 and len(cache) == 2


def test_model_cache_builds_once_under_concurrent_gets() -> None:
    cache = ModelCache()
    started = threading.Event()
    builds = 0

    def build() -> object:
        nonlocal builds
        builds += 1
        started.set()
        time.sleep(0.05)  # the other threads arrive while this build runs
        return object()

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", build))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == 1 and cache.loads == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_model_cache_failed_build_is_not_cached() -> None:
    cache = ModelCache()

    def fail() -> object:
        raise RuntimeError("no model")

    with pytest.raises(RuntimeError):
        cache.get("k", fail)
    assert len(cache) == 0 and cache.loads == 0
    assert cache.get("k", lambda: 1) == 1


def test_model_cache_discard_and_clear() -> None:
    cache = ModelCache()
    shared, other = object(), object()
    cache.get("a", lambda: shared)
    cache.get("b", lambda: shared)
    cache.get("c", lambda: other)
    cache.discard(shared)
    assert len(cache) == 1
    assert cache.get("c", object) is other
    cache.clear()
    assert len(cache) == 0
    assert cache.get("c", object) is not other
    assert cache.loads == 4


# --------------------------------------------------------------------------- devices


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:12"])
def test_device_pattern_accepts(device: str) -> None:
    assert re.match(DEVICE_PATTERN, device)


@pytest.mark.parametrize("device", ["", "gpu", "CUDA", "cuda:", "cuda:x", "cpu ", "tpu"])
def test_device_pattern_and_resolve_device_refuse(device: str) -> None:
    assert not re.match(DEVICE_PATTERN, device)
    with pytest.raises(ConfigError, match="device must be auto, cpu, mps, cuda or cuda:N"):
        resolve_device(device, missing="unused: the device is checked first")


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``import torch`` fails, whether or not torch is installed."""
    monkeypatch.setitem(sys.modules, "torch", None)
    yield


@pytest.mark.usefixtures("no_torch")
def test_without_torch_the_plugin_message_is_the_error() -> None:
    with pytest.raises(ConfigError, match=r"^my plugin needs torch: pip install it$"):
        import_torch("my plugin needs torch: pip install it")
    with pytest.raises(ConfigError, match=r"^my plugin needs torch"):
        resolve_device("auto", missing="my plugin needs torch")


def test_importing_the_core_helpers_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None\n"
        "sys.modules['onnxruntime'] = sys.modules['openvino'] = None\n"
        "import memsift.kit.local, memsift.testing.benchkit, memsift.testing.tiny_models\n"
        "import memsift.kit.local_onnx\n"
        "import memsift.interfaces, memsift.builtin.minilm\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- LocalRuntime


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A stand-in ``torch``: CPU only, and an inference mode that records its use."""
    state = SimpleNamespace(inference=0)

    @contextlib.contextmanager
    def inference_mode() -> Iterator[None]:
        state.inference += 1
        yield

    torch = SimpleNamespace(
        __version__="0.0-fake",
        cuda=SimpleNamespace(is_available=lambda: False, device_count=lambda: 0),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: False)),
        inference_mode=inference_mode,
        state=state,
    )
    monkeypatch.setitem(sys.modules, "torch", torch)  # type: ignore[arg-type]
    return torch


def test_the_runtime_loads_once_per_key_and_resolved_device(fake_torch: SimpleNamespace) -> None:
    runtime = LocalRuntime("acme needs torch")
    built: list[str] = []

    def build(device: str) -> LoadedModel:
        built.append(device)
        return LoadedModel(model=object(), device=device)

    first = runtime.load("auto", ("cross-encoder", "m"), build)
    assert first.device == "cpu" and built == ["cpu"]
    assert runtime.load("cpu", ("cross-encoder", "m"), build) is first  # auto is cpu here
    assert runtime.load("cpu", ("cross-encoder", "other"), build) is not first
    assert runtime.cache.loads == 2
    with pytest.raises(ConfigError, match="CUDA is not available"):
        runtime.load("cuda", ("cross-encoder", "m"), build)
    runtime.clear()
    assert len(runtime.cache) == 0


def test_inference_holds_the_models_lock_in_inference_mode(fake_torch: SimpleNamespace) -> None:
    runtime = LocalRuntime("acme needs torch")
    loaded = LoadedModel(model=object(), device="cpu")
    with runtime.inference(loaded) as torch:
        assert torch is fake_torch and fake_torch.state.inference == 1
        assert loaded.lock.locked()
    assert not loaded.lock.locked()


@pytest.mark.usefixtures("no_torch")
def test_the_runtime_says_how_to_install_torch() -> None:
    runtime = LocalRuntime("acme needs torch: pip install memsift-acme")
    with pytest.raises(ConfigError, match=r"^acme needs torch: pip install memsift-acme$"):
        runtime.load("cpu", ("m",), lambda device: LoadedModel(model=None, device=device))


# --------------------------------------------------------------------------- loading and checks

TOKEN = "hf_kit_local_5e4d3c2b1a"


def test_a_model_that_cannot_load_is_a_clean_model_not_found_error() -> None:
    def load() -> object:
        try:
            raise OSError(f"401 for url with token {TOKEN}")
        except OSError as inner:
            raise RuntimeError("hub failure") from inner

    with pytest.raises(ModelNotFoundError) as info:
        load_pretrained(
            load, model="acme/tiny", local_files_only=True, cache_option="cache_dir", token=TOKEN
        )
    message = str(info.value)
    assert "cannot load model 'acme/tiny' (local files only): RuntimeError: hub failure" in message
    assert "set cache_dir to where it is" in message
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert_secret_absent(info.value, TOKEN)


def test_load_pretrained_returns_what_loads() -> None:
    value = load_pretrained(
        lambda: 42, model="m", local_files_only=False, cache_option="cache_folder", token=None
    )
    assert value == 42


def test_one_label_and_positions_are_checked() -> None:
    check_one_label(1, model="m", provider="acme")
    with pytest.raises(ConfigError, match=r"has 2 output labels; the acme reranker needs"):
        check_one_label(2, model="m", provider="acme")
    inner = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=64))
    assert position_limit(inner) == 64
    assert position_limit(SimpleNamespace(auto_model=inner)) == 64  # a sentence-transformers module
    assert position_limit(SimpleNamespace(model=inner)) == 64  # a CrossEncoder
    assert position_limit(object()) is None
    check_max_length(64, inner, name="m")
    check_max_length(None, inner, name="m")
    with pytest.raises(ConfigError, match="max_length=65 exceeds the 64 positions of model 'm'"):
        check_max_length(65, inner, name="m")


# --------------------------------------------------------------------------- LogitReranker


class _LogitConfig(RerankerConfig):
    normalize: bool = Field(default=True)


class _Constant(LogitReranker):
    provider = "constant"

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return [0.5] * len(documents)


def _candidates(n: int) -> list[Candidate]:
    records = [MemoryRecord(id=str(i), memory=f"m{i}", hash=f"h{i}") for i in range(n)]
    return [Candidate(text=r.memory, vector_score=0.1, record=r) for r in records]


def test_a_logit_reranker_refuses_raw_logits_in_the_pipeline() -> None:
    assert _Constant(_LogitConfig()).score_candidates("q", _candidates(2)) == [0.5, 0.5]
    raw = _Constant(_LogitConfig(normalize=False))
    assert raw.rerank("q", ["a"]) == [0.5]  # direct calls may have the raw logits
    with pytest.raises(RerankError, match="normalize=False returns raw logits") as info:
        raw.score_candidates("q", _candidates(2))
    assert info.value.provider == "constant"
    with pytest.raises(RerankError, match="set normalize=True"):
        asyncio.run(raw.ascore_candidates("q", _candidates(2)))


# --------------------------------------------------------------------------- length batches


def test_length_batches_put_similar_lengths_together_longest_first() -> None:
    lengths = [5, 40, 7, 39, 6, 41]
    assert length_batches(lengths, 2) == [[5, 1], [3, 2], [4, 0]]
    assert length_batches(lengths, 10) == [[5, 1, 3, 2, 4, 0]]
    assert length_batches([], 4) == []
    with pytest.raises(ValueError, match="batch_size"):
        length_batches(lengths, 0)


def test_length_batches_do_not_depend_on_the_pools_order() -> None:
    texts = ["bb", "aa", "cc", "dd", "ee", "f"]
    lengths = [len(t) for t in texts]
    base = [{texts[i] for i in b} for b in length_batches(lengths, 2, keys=texts)]
    for shift in range(1, len(texts)):
        rotated = texts[shift:] + texts[:shift]
        batches = length_batches([len(t) for t in rotated], 2, keys=rotated)
        assert [{rotated[i] for i in b} for b in batches] == base


class _FakeTokenizer:
    """Splits on spaces; ``pad`` pads ``input_ids`` with -1 (numpy arrays)."""

    def __call__(
        self, queries: list[str], docs: list[str], *, truncation: bool, max_length: int
    ) -> dict[str, list[list[int]]]:
        ids = [[len(w) for w in f"{q} {d}".split()][:max_length] for q, d in zip(queries, docs)]
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}

    def pad(self, rows: dict[str, list[list[int]]], *, padding: bool, return_tensors: str) -> Any:
        width = max(len(r) for r in rows["input_ids"])
        return {k: np.array([r + [-1] * (width - len(r)) for r in v]) for k, v in rows.items()}


def test_encoded_batches_pad_each_batch_to_its_own_longest_pair() -> None:
    docs = ["a", "b c d e f g h", "i j", "k l m n o p q r s", "t"]
    seen: dict[int, int] = {}
    widths = []
    batches = encoded_batches(_FakeTokenizer(), "q", docs, max_length=6, batch_size=2, tensors="np")
    for indices, batch in batches:
        widths.append(batch["input_ids"].shape[1])
        for row, i in enumerate(indices):
            seen[i] = int((batch["input_ids"][row] != -1).sum())
    assert widths == [6, 3, 2]  # truncated at 6, then the short ones padded only to 3 and 2
    assert seen == {0: 2, 1: 6, 2: 3, 3: 6, 4: 2}, "every index kept its own pair"


def test_logits_to_scores_takes_numpy_arrays() -> None:
    scores = logits_to_scores(np.array([0.0, 2.0, -2.0], dtype=np.float32), normalize=True)
    assert scores == pytest.approx([0.5, 0.880797, 0.119203], abs=1e-6)
    assert logits_to_scores([1.5, -3.0], normalize=False) == [1.5, -3.0]


# --------------------------------------------------------------------------- quiet loading


def test_quiet_loading_silences_progress_bars_and_restores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = {"bars": True, "verbosity": 20, "hub": False}
    fake_logging = SimpleNamespace(
        is_progress_bar_enabled=lambda: state["bars"],
        disable_progress_bar=lambda: state.update(bars=False),
        enable_progress_bar=lambda: state.update(bars=True),
        get_verbosity=lambda: state["verbosity"],
        set_verbosity_error=lambda: state.update(verbosity=40),
        set_verbosity=lambda level: state.update(verbosity=level),
    )
    fake_hub = SimpleNamespace(
        are_progress_bars_disabled=lambda: state["hub"],
        disable_progress_bars=lambda: state.update(hub=True),
        enable_progress_bars=lambda: state.update(hub=False),
    )
    monkeypatch.setitem(sys.modules, "transformers", SimpleNamespace())
    monkeypatch.setitem(sys.modules, "transformers.utils", SimpleNamespace())
    monkeypatch.setitem(sys.modules, "transformers.utils.logging", fake_logging)
    monkeypatch.setitem(sys.modules, "huggingface_hub.utils", fake_hub)
    with quiet_loading():
        assert state == {"bars": False, "verbosity": 40, "hub": True}
        with quiet_loading():  # another load at the same time (any thread)
            pass
        assert state == {"bars": False, "verbosity": 40, "hub": True}, "restored too early"
    assert state == {"bars": True, "verbosity": 20, "hub": False}
    show_load_progress(True)
    try:
        with quiet_loading():
            assert state == {"bars": True, "verbosity": 20, "hub": False}
    finally:
        show_load_progress(False)


def test_load_pretrained_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr("memsift.kit.local.quiet_loading", lambda: _Recorder(seen), raising=True)
    assert (
        load_pretrained(lambda: 7, model="m", local_files_only=True, cache_option="c", token=None)
        == 7
    )
    assert seen == ["enter", "exit"]


class _Recorder(contextlib.AbstractContextManager[None]):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def __enter__(self) -> None:
        self.seen.append("enter")

    def __exit__(self, *exc: object) -> None:
        self.seen.append("exit")


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize(
    ("backend", "quantize", "device", "needle"),
    [
        ("torch", "int8", "cpu", "not offered by backend='torch'"),
        ("openvino", "int8", "cpu", "use backend='onnx' for int8"),
        ("onnx", "none", "cuda", "runs on the CPU"),
        ("onnx", "int4", "cpu", "quantize must be one of"),
        ("tensorrt", "none", "cpu", "backend must be one of"),
    ],
)
def test_backend_problems(backend: str, quantize: str, device: str, needle: str) -> None:
    problem = backend_problem(backend, quantize, device)
    assert problem is not None and needle in problem


@pytest.mark.parametrize(
    ("backend", "quantize", "device"),
    [("torch", "none", "cuda:1"), ("onnx", "int8", "auto"), ("openvino", "none", "cpu")],
)
def test_valid_backends(backend: str, quantize: str, device: str) -> None:
    assert backend_problem(backend, quantize, device) is None


def test_export_folders_are_keyed_on_the_model(tmp_path: Path) -> None:
    model = tmp_path / "my model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    first = export_folder(str(model), revision=None, cache=None, root=tmp_path / "x")
    assert first.parent == tmp_path / "x" and first.name.startswith("my-model-")
    assert export_folder(str(model), revision=None, cache=None, root=tmp_path / "x") == first
    (model / "config.json").write_text('{"changed": 1}')
    assert export_folder(str(model), revision=None, cache=None, root=tmp_path / "x") != first
    a = export_folder("org/ranker", revision=None, cache=None, root=tmp_path)
    assert a == export_folder("org/ranker", revision="main", cache=None, root=tmp_path)
    assert a != export_folder("org/ranker", revision="v2", cache=None, root=tmp_path)
    assert a.name.startswith("org-ranker-")


def test_export_folders_default_to_memsift_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMSIFT_HOME", str(tmp_path))
    folder = export_folder("org/ranker", revision=None, cache=None, root=None)
    assert folder.parent == tmp_path / "exports"
