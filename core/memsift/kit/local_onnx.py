"""Local cross-encoders run by onnxruntime or OpenVINO instead of torch: export, cache, run.

A reranker with ``backend: onnx`` or ``backend: openvino`` exports its transformers model
once to ONNX (``torch.onnx.export``), optionally quantises it to int8 with onnxruntime's
dynamic quantisation (``quantize: int8``, onnx only; weights per channel, activations per
batch), and keeps the files in an export
folder keyed on the model (a local folder's path and the size and time of its files, or
a hub id, its revision and cache folder): a second load, in this process or another,
reads the files and does not export again. OpenVINO compiles the same fp32 ONNX graph
(saved once as OpenVINO IR beside it), in fp32 precision.

Scores: fp32 ONNX and OpenVINO equal torch's logits to float rounding (about 1e-5); int8
is an approximation (see :data:`INT8_TOLERANCE`), and with dynamic quantisation a pair's
score depends slightly on the other pairs in its batch (one scale per batch).

Sessions never spin: onnxruntime's worker threads go to sleep when a call returns, so
they do not take the cores from the embedder or the next search.

Importing this module imports none of torch, onnxruntime, openvino or transformers.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsift.config import memsift_home
from memsift.errors import ConfigError
from memsift.kit.local import encoded_batches, quiet_loading

#: The backends of a local cross-encoder, and the quantisations each offers.
BACKENDS = ("torch", "onnx", "openvino")
QUANTIZATIONS: dict[str, tuple[str, ...]] = {
    "torch": ("none",),
    "onnx": ("none", "int8"),
    "openvino": ("none",),
}
#: How far (absolute, on the logit) fp32 ONNX / OpenVINO may be from torch.
FP32_TOLERANCE = 1e-4
#: How far (absolute, on the sigmoid score in [0, 1]) int8 may be from torch's fp32 score on
#: the tiny test models, whose random weights are about 25 times a trained model's (there the
#: median error is about 0.02 and the largest seen 0.16); a trained model errs far less.
INT8_TOLERANCE = 0.25
#: The same on the raw logit (``normalize: false``), on the tiny test models.
INT8_LOGIT_TOLERANCE = 1.0
#: Bumped when the export files change, so old exports are not read.
EXPORT_FORMAT = 1
ONNX_FILES = {"none": "model.onnx", "int8": "model_int8.onnx"}
OPENVINO_FILE = "openvino_model.xml"
_MARKER = "memsift-export.json"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def backend_problem(backend: str, quantize: str, device: str) -> str | None:
    """Why ``backend`` with ``quantize`` on ``device`` is not a valid combination (or None)."""
    if backend not in BACKENDS:
        return f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
    offered = QUANTIZATIONS[backend]
    if quantize not in offered:
        where = [b for b, q in QUANTIZATIONS.items() if quantize in q]
        return (
            f"quantize={quantize!r} is not offered by backend={backend!r} (it offers "
            f"{', '.join(offered)}); use backend={where[0]!r} for {quantize}"
            if where
            else f"quantize must be one of none, int8, got {quantize!r}"
        )
    if backend != "torch" and device not in ("auto", "cpu"):
        return f"backend={backend!r} runs on the CPU: set device to cpu or auto (got {device!r})"
    return None


def _import(module: str, hint: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{hint} ({module} is not installed: {exc})") from exc


# --------------------------------------------------------------------------- the cache


def export_folder(
    model: str, *, revision: str | None, cache: str | None, root: str | Path | None
) -> Path:
    """The export folder of ``model``: under ``root`` (default ``$MEMSIFT_HOME/exports``),
    named by the model and a digest of what identifies its weights (a local folder's path
    and the size and modification time of its files; a hub id, revision and cache)."""
    base = Path(root).expanduser() if root is not None else memsift_home() / "exports"
    source = Path(model).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file())
        stamp: list[Any] = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        ident: dict[str, Any] = {"folder": str(source.resolve()), "files": stamp}
    else:
        ident = {"hub": model, "revision": revision or "main", "cache": cache}
    ident["format"] = EXPORT_FORMAT
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    name = _SLUG.sub("-", source.name if source.is_dir() else model).strip("-") or "model"
    return base / f"{name[:60]}-{digest}"


def _onnx_export(model: Any, tokenizer: Any, target: Path) -> None:
    """Save ``model`` (a transformers sequence classifier) as ``target/model.onnx`` with its
    tokenizer and config, written in a temporary folder then moved into place."""
    torch = importlib.import_module("torch")
    names = [n for n in inspect.signature(model.forward).parameters]
    names = [n for n in names if n in set(tokenizer.model_input_names)]
    sample = tokenizer(["a short query"] * 2, ["a document", "another document"], padding=True)
    inputs = {n: torch.tensor(sample[n]) for n in names}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model = model.to("cpu").eval()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (),
                str(tmp / ONNX_FILES["none"]),
                kwargs=inputs,
                input_names=names,
                output_names=["logits"],
                dynamic_axes={
                    **{n: {0: "batch", 1: "sequence"} for n in names},
                    "logits": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        with quiet_loading():
            tokenizer.save_pretrained(str(tmp))
            model.config.save_pretrained(str(tmp))
        (tmp / _MARKER).write_text(json.dumps({"format": EXPORT_FORMAT, "inputs": names}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process exported it first: keep theirs
            if not (target / _MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _int8(folder: Path) -> None:
    quantization = importlib.import_module("onnxruntime.quantization")
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(fd)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger
    try:
        quantization.quantize_dynamic(
            str(folder / ONNX_FILES["none"]),
            tmp,
            weight_type=quantization.QuantType.QInt8,
            per_channel=True,
        )
        os.replace(tmp, folder / ONNX_FILES["int8"])
    finally:
        logging.disable(previous)
        Path(tmp).unlink(missing_ok=True)


def _openvino_ir(ov: Any, folder: Path) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".xml", dir=folder)
    os.close(fd)
    try:
        ov.save_model(
            ov.Core().read_model(str(folder / ONNX_FILES["none"])), tmp, compress_to_fp16=False
        )
        os.replace(Path(tmp).with_suffix(".bin"), folder / "openvino_model.bin")
        os.replace(tmp, folder / OPENVINO_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
        Path(tmp).with_suffix(".bin").unlink(missing_ok=True)


# --------------------------------------------------------------------------- the model


@dataclass
class BackendCrossEncoder:
    """A cross-encoder run by onnxruntime or OpenVINO; ``run`` is its forward pass.

    ``config`` is the transformers config (its ``max_position_embeddings`` and
    ``num_labels`` are checked like a torch model's), ``path`` the file that runs.
    """

    backend: str
    quantize: str
    path: Path
    tokenizer: Any
    config: Any
    input_names: list[str]
    runner: Callable[[dict[str, Any]], Any] = field(repr=False)

    def run(self, inputs: dict[str, Any]) -> Any:
        """The logits (``(batch, labels)`` float array) of one padded batch."""
        feed = {n: np.asarray(inputs[n], dtype=np.int64) for n in self.input_names}
        return self.runner(feed)

    def logits(
        self, query: str, documents: Sequence[str], *, max_length: int, batch_size: int
    ) -> Any:
        """The first logit of every (query, document) pair, in input order: pairs batched by
        token length (:func:`memsift.kit.local.encoded_batches`)."""
        out = np.empty(len(documents), dtype=np.float32)
        for indices, batch in encoded_batches(
            self.tokenizer,
            query,
            documents,
            max_length=max_length,
            batch_size=batch_size,
            tensors="np",
        ):
            out[indices] = np.asarray(self.run(dict(batch)))[:, 0]
        return out


def load_backend_cross_encoder(
    folder: Path,
    *,
    backend: str,
    quantize: str,
    build: Callable[[], tuple[Any, Any]],
    hint: str,
    threads: int | None = None,
) -> BackendCrossEncoder:
    """The cross-encoder exported in ``folder`` for ``backend`` / ``quantize``; exported
    first when the files are not there (``build()`` returns the torch model and its
    tokenizer, and is called only then). ``hint`` says how to install the backend's
    libraries (a :class:`ConfigError` when they are missing)."""
    problem = backend_problem(backend, quantize, "cpu")
    if problem is not None or backend == "torch":
        raise ConfigError(problem or "backend='torch' does not export")
    if backend == "onnx":
        ort = _import("onnxruntime", hint)
    else:
        ov = _import("openvino", hint)
    if not (folder / _MARKER).is_file():
        _import("onnx", hint)  # torch.onnx.export writes through it
        model, tokenizer = build()
        _onnx_export(model, tokenizer, folder)
    marker = json.loads((folder / _MARKER).read_text())
    names = [str(n) for n in marker["inputs"]]
    if backend == "onnx":
        path = folder / ONNX_FILES[quantize]
        if not path.is_file():
            _int8(folder)
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        runner: Callable[[dict[str, Any]], Any] = lambda feed: session.run(None, feed)[0]  # noqa: E731
    else:
        path = folder / OPENVINO_FILE
        if not path.is_file():
            _openvino_ir(ov, folder)
        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(str(path), "CPU", properties)
        runner = lambda feed: compiled(feed)[0]  # noqa: E731
    transformers = importlib.import_module("transformers")
    with quiet_loading():
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        config = transformers.AutoConfig.from_pretrained(str(folder))
    return BackendCrossEncoder(backend, quantize, path, tokenizer, config, names, runner)


__all__ = [
    "BACKENDS",
    "FP32_TOLERANCE",
    "INT8_LOGIT_TOLERANCE",
    "INT8_TOLERANCE",
    "QUANTIZATIONS",
    "BackendCrossEncoder",
    "backend_problem",
    "export_folder",
    "load_backend_cross_encoder",
]
