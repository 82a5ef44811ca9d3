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
from types import SimpleNamespace

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
    import_torch,
    load_pretrained,
    position_limit,
    resolve_device,
)
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
        "import memsift.kit.local, memsift.testing.benchkit, memsift.testing.tiny_models\n"
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
