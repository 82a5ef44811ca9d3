"""The runtime of rerankers and embedders that run a model in this process (torch-based).

What such a plugin shares instead of writing again:

- :class:`LocalRuntime`, one per plugin: the torch import (failing with the plugin's own
  install hint), the device (``auto`` resolved to cuda, mps or cpu; an explicit one
  checked), and the process-wide :class:`ModelCache` that loads each model once and shares
  it between provider instances;
- :class:`LoadedModel`, a loaded model with the lock that serialises its use, and
  :meth:`LocalRuntime.inference` to hold it under ``torch.inference_mode()``;
- :func:`load_pretrained` (a model that cannot load is a clean
  :class:`memsift.ModelNotFoundError`), :func:`check_one_label` and :func:`check_max_length`;
- :func:`logits_to_scores` (the sigmoid mapping), :func:`length_batches` (a pool cut into
  batches of pairs of similar token length, so little of a batch is padding),
  :func:`encoded_batches` (a tokenizer's pairs, encoded once and padded per batch) and
  :func:`logits_in_batches` (a pool scored batch by batch, back in input order);
- :func:`quiet_loading`: model loads print no progress bars or info logs unless
  :func:`show_load_progress` turned them on (the command line does, where a person watches);
- :class:`LocalReranker`, the base of a local cross-encoder reranker, and
  :class:`LogitReranker` beneath it: what every reranker scoring with a relevance logit
  does (``normalize``; raw logits refused by the search pipeline).

torch is not a dependency of memsift: nothing here imports it at module level, and only a
plugin that depends on torch calls what needs it.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import SecretStr

from memsift.errors import ConfigError, ModelNotFoundError, RerankError
from memsift.interfaces import Candidate, Reranker, RerankerConfig, check_rerank_input
from memsift.kit.messages import clean_error

T = TypeVar("T")

#: The device values a config accepts (a pydantic ``Field(pattern=...)``).
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"
_DEVICE_RE = re.compile(DEVICE_PATTERN)


class ModelCache:
    """Models loaded once per process per key, shared by every provider instance.

    ``get(key, build)`` returns the cached value or calls ``build()`` exactly once per key,
    even when several threads ask at the same time; different keys build in parallel.
    ``loads`` counts the builds (tests use it to check that a model is loaded once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, Any] = {}
        self._building: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                found: T = self._values[key]
                return found
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._values:
                    found = self._values[key]
                    return found
            value = build()
            with self._lock:
                self._values[key] = value
                self._building.pop(key, None)
                self.loads += 1
            return value

    def discard(self, value: object) -> None:
        """Forget the entries holding ``value`` (e.g. a model loaded for a benchmark)."""
        with self._lock:
            for key in [k for k, v in self._values.items() if v is value]:
                del self._values[key]

    def clear(self) -> None:
        """Forget every model; instances that hold one keep it until they are dropped."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


def import_torch(missing: str) -> Any:
    """Import torch, or raise ``ConfigError(missing)``: say there how to install it."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise ConfigError(missing) from exc


def resolve_device(device: str, *, missing: str) -> str:
    """Turn ``auto`` into ``cuda``, ``mps`` or ``cpu``; check that an explicit device exists.

    Imports torch (``missing`` is the error when it is not installed).
    """
    if not _DEVICE_RE.match(device):
        raise ConfigError(f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    torch = import_torch(missing)
    cuda_ok = bool(torch.cuda.is_available())
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda_ok else ("mps" if mps_ok else "cpu")
    if device.startswith("cuda"):
        if not cuda_ok:
            raise ConfigError(
                f"device={device!r} but CUDA is not available to torch {torch.__version__} "
                "(a CPU build, or no GPU): use device='cpu' or 'auto'"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device!r} but torch sees only {torch.cuda.device_count()} CUDA device(s)"
            )
    if device == "mps" and not mps_ok:
        raise ConfigError("device='mps' but Apple's MPS backend is not available: use 'auto'")
    return device


def logits_to_scores(logits: Any, *, normalize: bool) -> list[float]:
    """One Python float per element of ``logits`` (a torch tensor or anything numpy reads);
    their sigmoid when ``normalize``."""
    if hasattr(logits, "detach"):  # a torch tensor
        logits = logits.detach().reshape(-1).to("cpu").double().numpy()
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    if normalize:
        values = 1.0 / (1.0 + np.exp(-values))
    return [float(v) for v in values]


# --------------------------------------------------------------------------- quiet loading

_progress = {"shown": False}
_quiet_lock = threading.Lock()
_quiet: dict[str, Any] = {"depth": 0, "restore": []}


def show_load_progress(enabled: bool = True) -> None:
    """Let model loads print their progress bars (off by default; the CLI turns it on)."""
    _progress["shown"] = bool(enabled)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Within the block, transformers and huggingface_hub print no progress bars ("Loading
    weights", downloads) and no info logs, unless :func:`show_load_progress` is on. What
    was set before is restored when the last such block (of any thread) ends; libraries
    that are not installed are left alone."""
    if _progress["shown"]:
        yield
        return
    with _quiet_lock:
        if _quiet["depth"] == 0:
            _quiet["restore"] = _silence()
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                for undo in reversed(_quiet["restore"]):
                    undo()


def _silence() -> list[Callable[[], None]]:
    restore: list[Callable[[], None]] = []
    with suppress(ImportError):
        tf_logging = importlib.import_module("transformers.utils.logging")
        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            restore.append(tf_logging.enable_progress_bar)
        level = tf_logging.get_verbosity()
        tf_logging.set_verbosity_error()
        restore.append(lambda: tf_logging.set_verbosity(level))
    with suppress(ImportError):
        hub = importlib.import_module("huggingface_hub.utils")
        if not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
            restore.append(hub.enable_progress_bars)
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    st_logger.setLevel(max(st_level, logging.ERROR))
    restore.append(lambda: st_logger.setLevel(st_level))
    return restore


# --------------------------------------------------------------------------- the runtime

#: How to get the CPU build of torch (the default wheel on Linux pulls CUDA).
TORCH_CPU = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"


def install_hint(requirement: str) -> str:
    """How to install a plugin: ``pip install <requirement>``, with torch's CPU build first."""
    return f"pip install {requirement} (for the CPU build of torch, install it first: {TORCH_CPU})"


@dataclass
class LoadedModel:
    """A model loaded once per process (see :class:`ModelCache`), on ``device``, with the
    lock that serialises its use: fast tokenizers and forward passes are not safe to run
    from several threads at once. Subclass it to keep what else the provider needs."""

    model: Any
    device: str
    lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )


M = TypeVar("M", bound=LoadedModel)


class LocalRuntime:
    """What the local models of one plugin share. Make one, at module level::

        RUNTIME = LocalRuntime("the acme reranker needs torch: pip install memsift-acme")

    ``torch_missing`` is the error when torch is not installed (say how to install it).
    ``cache`` is the plugin's :class:`ModelCache`.
    """

    def __init__(self, torch_missing: str) -> None:
        self.torch_missing = torch_missing
        self.cache = ModelCache()

    def import_torch(self) -> Any:
        """Import torch, or raise the plugin's ConfigError."""
        return import_torch(self.torch_missing)

    def resolve_device(self, device: str) -> str:
        """``auto`` as cuda, mps or cpu; an explicit device checked (see :func:`resolve_device`)."""
        return resolve_device(device, missing=self.torch_missing)

    def load(self, device: str, key: tuple[Hashable, ...], build: Callable[[str], M]) -> M:
        """The model ``key`` names, on ``device`` (``auto`` resolved first): ``build(device)``
        once per process per (key, device), then shared."""
        resolved = self.resolve_device(device)
        return self.cache.get((*key, resolved), lambda: build(resolved))

    @contextmanager
    def inference(self, loaded: LoadedModel) -> Iterator[Any]:
        """Hold ``loaded``'s lock under ``torch.inference_mode()``; yields torch."""
        torch = self.import_torch()
        with loaded.lock, torch.inference_mode():
            yield torch

    def clear(self) -> None:
        """Forget every model (instances that hold one keep it until they are dropped)."""
        self.cache.clear()


def load_pretrained(
    load: Callable[[], T],
    *,
    model: str,
    local_files_only: bool,
    cache_option: str,
    token: SecretStr | str | None,
) -> T:
    """``load()``; when it fails, a :class:`memsift.ModelNotFoundError` that says where the
    model was looked for and what to do (``cache_option`` names the config key of the
    download folder), with no exception chained (the hub's error holds the request, with
    the token in its headers) and without ``token`` in its message. The load is
    :func:`quiet_loading`."""
    failure: ModelNotFoundError | None = None
    try:
        with quiet_loading():
            return load()
    except Exception as exc:
        where = "local files only" if local_files_only else "local folder, hub cache or hub"
        failure = ModelNotFoundError(
            f"cannot load model {model!r} ({where}): {type(exc).__name__}: {exc}. Give a "
            "folder holding the model, or a hub id that is in the cache (download it once "
            f"with network access, or set {cache_option} to where it is); with "
            "HF_HUB_OFFLINE=1 or local_files_only=True nothing is downloaded."
        )
    raise clean_error(failure, token)  # outside the except block: nothing chained


def check_one_label(num_labels: int, *, model: str, provider: str) -> None:
    """Refuse a classifier with more than one output: a reranker needs one relevance logit."""
    if num_labels != 1:
        raise ConfigError(
            f"model {model!r} has {num_labels} output labels; the {provider} reranker needs "
            "a cross-encoder with one relevance logit (num_labels=1)"
        )


def position_limit(model: Any) -> int | None:
    """The token positions of a transformers model, or of the one inside a
    sentence-transformers module (``auto_model``, ``model``), when its config says."""
    for holder in (model, getattr(model, "auto_model", None), getattr(model, "model", None)):
        value = getattr(getattr(holder, "config", None), "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_max_length(max_length: int | None, model: Any, *, name: str) -> None:
    """Refuse a ``max_length`` over the positions of ``model`` (``name`` in the error)."""
    positions = position_limit(model)
    if max_length is not None and positions is not None and max_length > positions:
        raise ConfigError(
            f"max_length={max_length} exceeds the {positions} positions of model {name!r}: "
            f"set max_length to at most {positions}"
        )


def length_batches(
    lengths: Sequence[int], batch_size: int, *, keys: Sequence[str] | None = None
) -> list[list[int]]:
    """The indices ``0..len(lengths)-1`` cut into batches of at most ``batch_size``, longest
    first, so each batch holds pairs of similar length and little of it is padding.

    Ties are broken by ``keys`` (the texts), then by index: which pairs share a batch
    depends on the pool's contents, not on their order (a permuted pool is batched alike).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = sorted(
        range(len(lengths)), key=lambda i: (-lengths[i], keys[i] if keys is not None else "", i)
    )
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encoded_batches(
    tokenizer: Any,
    query: str,
    documents: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    tensors: str,
) -> Iterator[tuple[list[int], Any]]:
    """The (query, document) pairs encoded once (truncated to ``max_length``, longest side
    first), then cut by :func:`length_batches` on their token counts and padded per batch:
    ``(indices, batch)`` with ``batch`` the tokenizer's padded output (``tensors`` ``"pt"``
    or ``"np"``)."""
    encoded = tokenizer(
        [query] * len(documents), list(documents), truncation=True, max_length=max_length
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    for indices in length_batches(lengths, batch_size, keys=documents):
        rows = {name: [values[i] for i in indices] for name, values in encoded.items()}
        yield indices, tokenizer.pad(rows, padding=True, return_tensors=tensors)


def logits_in_batches(
    torch: Any,
    texts: Sequence[str],
    batch_size: int,
    forward: Callable[[list[int]], Any],
    *,
    lengths: Sequence[int] | None = None,
) -> Any:
    """A pool's logits, ``batch_size`` texts per forward pass, longest first (less padding).

    ``forward(indices)`` returns the logits of the texts at ``indices`` (one per text);
    ``lengths`` are the texts' token counts (default: their lengths in characters). The
    result is a 1-d float32 CPU tensor in the order of ``texts``. Call it inside
    :meth:`LocalRuntime.inference`.
    """
    sizes = lengths if lengths is not None else [len(t) for t in texts]
    out = torch.empty(len(texts), dtype=torch.float32)
    for indices in length_batches(sizes, batch_size, keys=texts):
        out[torch.tensor(indices)] = forward(indices).reshape(-1).float().cpu()
    return out


# --------------------------------------------------------------------------- the rerankers


class LogitReranker(Reranker):
    """A reranker whose model gives one relevance logit per (query, document) pair.

    With ``normalize`` (the config's, True by default) ``rerank`` returns the logits'
    sigmoid, in [0, 1]; with ``normalize=False`` the raw logits, which only direct callers
    can use: the search pipeline needs [0, 1], so ``score_candidates`` refuses them with a
    clear error (and the search falls back to vector order). Set ``provider``.
    """

    provider: ClassVar[str] = ""

    @property
    def normalize(self) -> bool:
        """Whether scores are the sigmoid of the logits (the config's ``normalize``)."""
        return bool(getattr(self.config, "normalize", True))

    def score_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        self._require_normalized()
        return self.rerank(query, [c.text for c in candidates])

    async def ascore_candidates(self, query: str, candidates: Sequence[Candidate]) -> list[float]:
        self._require_normalized()
        return await self.arerank(query, [c.text for c in candidates])

    def _require_normalized(self) -> None:
        if not self.normalize:
            raise RerankError(
                self.provider,
                "normalize=False returns raw logits, which the search pipeline cannot use "
                "(it needs scores in [0, 1]); set normalize=True, the default",
            )


class LocalReranker(LogitReranker, Generic[M]):
    """A cross-encoder run in this process. Subclass it; implement two methods.

    Building the reranker loads its model (:meth:`_load`, through the plugin's
    :class:`LocalRuntime`, so one model serves every instance). ``rerank`` validates its
    input, scores the pool with :meth:`_logits`, maps a failure of the model to
    :class:`memsift.RerankError`, and returns :func:`logits_to_scores`; ``arerank`` runs it
    in a worker thread. A subclass sets ``provider`` and implements:

    ``_load()``
        the :class:`LoadedModel` for the config (``runtime.load(...)``), checked.
    ``_logits(query, documents)``
        the model's logits for the pairs, a 1-d tensor in the order of ``documents``
        (batching is the model's: :func:`logits_in_batches`, or the library's own).
    """

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__(config)
        self._loaded: M = self._load()

    @abstractmethod
    def _load(self) -> M:
        """The loaded (shared) model for ``self.config``."""

    @abstractmethod
    def _logits(self, query: str, documents: list[str]) -> Any:
        """The logits of ``(query, document)`` pairs: a 1-d tensor, in order."""

    @property
    def device(self) -> str:
        """The device the model runs on (``auto`` resolved)."""
        return self._loaded.device

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        try:
            logits = self._logits(query, docs)
        except Exception as exc:
            raise RerankError(self.provider, f"{type(exc).__name__}: {exc}") from exc
        return logits_to_scores(logits, normalize=self.normalize)


__all__ = [
    "DEVICE_PATTERN",
    "TORCH_CPU",
    "LoadedModel",
    "LocalReranker",
    "LocalRuntime",
    "LogitReranker",
    "ModelCache",
    "check_max_length",
    "check_one_label",
    "encoded_batches",
    "import_torch",
    "install_hint",
    "length_batches",
    "load_pretrained",
    "logits_in_batches",
    "logits_to_scores",
    "position_limit",
    "quiet_loading",
    "resolve_device",
    "show_load_progress",
]
