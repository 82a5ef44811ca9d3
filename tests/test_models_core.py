"""The core's helpers for local-model plugins: memsift.models, memsift.testing.benchkit,
check_embed_input.

This venv has no torch: the torch-using helpers are exercised by the plugin suites; here,
what runs without it, and the promise that importing these modules never imports torch.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from memsift import ConfigError, InvalidInputError, Reranker, RerankerConfig
from memsift.interfaces import check_embed_input, check_rerank_input
from memsift.models import DEVICE_PATTERN, ModelCache, import_torch, resolve_device
from memsift.search import RerankStage
from memsift.testing.benchkit import (
    POOL,
    QUERY,
    SPECIALS,
    Timed,
    compare_with_stage,
    pool_hits,
    summarize,
)

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
        "import memsift.models, memsift.testing.benchkit, memsift.testing.tiny_models\n"
        "import memsift.interfaces, memsift.builtin.minilm\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- check_embed_input


def test_check_embed_input_returns_a_list() -> None:
    assert check_embed_input(["a", "b"]) == ["a", "b"]
    assert check_embed_input(("a", "")) == ["a", ""]
    assert check_embed_input(t for t in ["x"]) == ["x"]
    assert check_embed_input([]) == []


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("one text", "not a single string; wrap it in a list"),
        (b"bytes", "not a single string; wrap it in a list"),
        (42, "texts must be a sequence of strings, got int"),
        (None, "texts must be a sequence of strings, got NoneType"),
        (["ok", 3], r"texts\[1\] must be a string, got int"),
        ([None], r"texts\[0\] must be a string, got NoneType"),
    ],
)
def test_check_embed_input_refuses(texts: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_embed_input(texts)


# --------------------------------------------------------------------------- benchkit


def test_pool_and_hits() -> None:
    hits = pool_hits()
    assert len(POOL) == 30 and QUERY.strip()
    assert [h.record.memory for h in hits] == POOL
    assert len({h.record.id for h in hits}) == 30
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert SPECIALS[:2] == ["[PAD]", "[UNK]"]


def test_timed_keeps_the_last_duration_even_on_error() -> None:
    def work(x: int, *, sleep: float = 0.0) -> int:
        time.sleep(sleep)
        if x < 0:
            raise ValueError("negative")
        return x * 2

    timed = Timed(work)
    assert timed.last_ms == 0.0
    assert timed(3, sleep=0.01) == 6
    assert timed.last_ms >= 10
    with pytest.raises(ValueError):
        timed(-1)
    assert 0 <= timed.last_ms < 10


def test_summarize_medians_and_ratios() -> None:
    out = summarize(direct=[10.0, 20.0, 30.0], stage=[11.0, 22.0, 30.0], inner=[10.0, 21.0, 29.0])
    assert out == {
        "direct_ms": 20.0,
        "stage_ms": 22.0,
        "ratio": 1.1,
        "paired_ratio": 1.1,
        "overhead_ms": 1.0,
        "inner_ratio": round(22 / 21, 5),
    }


class SleepyReranker(Reranker):
    """A pure-Python reranker whose work takes a known time, timed from inside."""

    def __init__(self) -> None:
        super().__init__(RerankerConfig())
        self.score = Timed(self._score)

    def _score(self, documents: Sequence[str]) -> list[float]:
        time.sleep(0.002)
        return [1.0 / (1 + i) for i in range(len(documents))]

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores: list[float] = self.score(check_rerank_input(query, documents))
        return scores


def test_compare_with_stage_interleaves_and_reports() -> None:
    reranker = SleepyReranker()
    stage = RerankStage.build("sleepy", reranker)
    order: list[str] = []

    def direct() -> None:
        order.append("direct")
        reranker._score(POOL)

    def inner() -> float:
        order.append("stage")
        return reranker.score.last_ms

    try:
        out = compare_with_stage(stage, direct, inner, repeats=4, warmup=1)
    finally:
        stage.close()
    assert list(out) == [
        "direct_ms",
        "stage_ms",
        "ratio",
        "paired_ratio",
        "overhead_ms",
        "inner_ratio",
        "candidates",
        "repeats",
    ]
    assert out["candidates"] == 30.0 and out["repeats"] == 4.0
    assert out["direct_ms"] >= 2 and out["stage_ms"] >= 2
    assert 0 <= out["overhead_ms"] < out["stage_ms"] and out["inner_ratio"] >= 1.0
    # one warm-up round, then the order alternates so neither side always goes first
    assert order == ["direct", "stage"] + ["direct", "stage", "stage", "direct"] * 2


def test_compare_with_stage_needs_a_repeat_and_a_working_stage() -> None:
    class Broken(SleepyReranker):
        def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
            raise RuntimeError("boom")

    with pytest.raises(ValueError, match="repeats must be at least 1"):
        compare_with_stage(RerankStage.build("x", SleepyReranker()), lambda: None, float, 0)
    stage = RerankStage.build("broken", Broken())
    try:
        with pytest.raises(RuntimeError, match="the rerank stage failed"):
            compare_with_stage(stage, lambda: None, float, 1)
    finally:
        stage.close()
