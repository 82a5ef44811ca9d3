"""``EmbedderConformance``: the contract every embedder must keep."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from memsift.errors import InvalidInputError
from memsift.interfaces import Embedder

TEXTS = [
    "I love pizza",
    "My favourite food is Italian",
    "The car broke down on the highway",
    "Zoë wohnt in Köln 🏠",
]

#: Texts of different topics, for the check that queries and documents share one space.
DISTINCT_TEXTS = [
    "Alice moved to Lisbon in March and works as a nurse.",
    "The quarterly report is due on Friday.",
    "Bob prefers green tea over coffee in the morning.",
    "Our team meeting moved to Tuesday at 10am.",
    "The car broke down on the highway near Porto.",
    "My favourite food is Italian, especially pizza.",
    "Carol is learning to play the cello.",
    "The cat sleeps on the windowsill all afternoon.",
    "Stock prices fell sharply after the announcement.",
    "Zoë wohnt in Köln und fährt gern Fahrrad.",
]

#: Texts without word characters, or otherwise odd: each must get a finite unit vector.
ODD_TEXTS = [
    "?!",
    "...",
    "-- // ** ##",
    "🙂🎉🚀",
    "🏠",
    "\u200b",
    "e\u0301\u0301\u0301",
    "東京",
    "مرحبا بالعالم",
    "a",
    "12345",
    "https://example.com/a?b=c&d=e#f",
    "tab\tand\nnewline",
    "ALL CAPS SHOUTING",
    "(((((((((())))))))))",
]
#: Texts an embedder may refuse with InvalidInputError; if it accepts them, the vector
#: must be finite and of unit norm.
BLANK_TEXTS = ["", " ", "   \n\t  "]

_WORDS = [
    "alice",
    "bob",
    "carol",
    "lisbon",
    "porto",
    "river",
    "tea",
    "coffee",
    "report",
    "friday",
    "meeting",
    "nurse",
    "cello",
    "cat",
    "pizza",
    "italian",
    "car",
    "highway",
    "morning",
    "March",
    "Tuesday",
    "Zoë",
    "Köln",
    "東京",
    "🙂",
    "the",
    "a",
    "of",
    "and",
    "in",
    "to",
    "is",
    "was",
    "will",
    "2026",
    "10am",
    "3.5",
    "déjà-vu",
    "naïve",
    "O'Brien",
]

_CHILD = r"""
import importlib, json, sys
import numpy as np

def load(path):
    module_name, _, qualname = path.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj

request = json.loads(sys.stdin.read())
spec = request["spec"]
factory = load(spec["factory"])
if spec.get("config_model"):
    embedder = factory(load(spec["config_model"]).model_validate(spec["kwargs"]))
else:
    embedder = factory(**spec["kwargs"])
out = {}
for purpose in ("document", "query"):
    vectors = np.asarray(embedder.embed(request["texts"], purpose=purpose), dtype=np.float64)
    out[purpose] = vectors.tolist()
embedder.close()
sys.stdout.write("\n@@memsift-vectors@@" + json.dumps(out) + "\n")
"""
_MARK = "@@memsift-vectors@@"


@dataclass(frozen=True)
class EmbedderSpec:
    """How to build the same embedder in a fresh Python process.

    ``factory`` is an importable ``"package.module:name"``. With ``config_model`` (also
    ``"module:name"``) the child process builds ``factory(config_model.model_validate(
    kwargs))`` -- the way memsift builds every provider; without it, ``factory(**kwargs)``.
    ``kwargs`` must be JSON-serialisable. ``env`` adds environment variables to the child.
    """

    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    config_model: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, embedder: Embedder) -> EmbedderSpec:
        """The spec that rebuilds ``embedder`` from its class and its config (secrets
        included: they reach the child process on its stdin, never its command line)."""
        config = embedder.config
        return cls(
            factory=_path_of(type(embedder)),
            config_model=_path_of(type(config)),
            kwargs=_plain(config),
        )


def _path_of(obj: type) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a config (secrets revealed, paths as strings)."""
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, (SecretStr, SecretBytes)):
        secret = value.get_secret_value()
        return secret.decode() if isinstance(secret, bytes) else secret
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def batch_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct texts of varied lengths (1 to ~40 words, some unicode and emoji)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        length = rng.choice([1, 2, 3, 5, 8, 12, 20, 40]) if len(out) % 11 else rng.randint(1, 6)
        text = " ".join(rng.choice(_WORDS) for _ in range(length))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _check_layout(vectors: Any, rows: int, dims: int, what: str) -> None:
    assert isinstance(vectors, np.ndarray), f"{what}: expected a numpy array, got {type(vectors)}"
    assert vectors.dtype == np.float32, f"{what}: dtype {vectors.dtype}, expected float32"
    assert vectors.ndim == 2, f"{what}: {vectors.ndim}-d array, expected 2-d"
    assert vectors.shape == (rows, dims), f"{what}: shape {vectors.shape}, expected {(rows, dims)}"
    assert vectors.flags["C_CONTIGUOUS"], f"{what}: the array is not C-contiguous"
    assert np.all(np.isfinite(vectors)), f"{what}: non-finite values"
    if rows:
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        assert np.allclose(norms, 1.0, atol=1e-4), f"{what}: L2 norms {norms}, expected 1"


class EmbedderConformance:
    """The contract of :class:`memsift.Embedder`, for embedder plugins.

    Subclass it and provide:

    ``embedder`` (required)
        a fixture returning a ready provider instance.

    ``embedder_spec`` (optional)
        a fixture returning an :class:`EmbedderSpec`: how to build the *same* embedder in
        another Python process, for the check that vectors do not depend on the process
        (a salted ``hash()``, a random seed, thread-count-dependent numerics). The default,
        ``EmbedderSpec.of(embedder)``, rebuilds it from its class and its config, which
        works whenever the class and its config model are importable (a provider of an
        installed plugin is) and the config is JSON-serialisable. Otherwise return e.g.
        ``EmbedderSpec("my_plugin.testing:make_embedder", {"model_dir": str(path)})``. The
        child process inherits the environment and ``sys.path``, but gets another
        ``PYTHONHASHSEED``. Fakes the embedder talks to must still be reachable from there
        (a fake server on 127.0.0.1 that runs in the test process is).

    Class attributes: ``atol`` (1e-5), the tolerance of every equality of vectors;
    ``subprocess_timeout`` (300 s).

    What is checked: float32, C-contiguous, 2-D ``(n, dims)`` arrays of unit rows for
    every batch size and both purposes; finite vectors for any text (punctuation only,
    emoji, zero-width and combining characters, very long texts; blank texts may be refused
    with InvalidInputError); batches of 1, 7, 64 and 257 texts equal to embedding them one
    by one; determinism within and across processes; query and document vectors in one
    space (each text's query vector is the closest to its own document vector); the async
    twin; bad input.
    """

    #: tolerance of every equality of vectors (batches, processes, async)
    atol = 1e-5
    subprocess_timeout = 300

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError("provide an `embedder` fixture in your test class")

    @pytest.fixture
    def embedder_spec(self, embedder: Embedder) -> EmbedderSpec:
        return EmbedderSpec.of(embedder)

    # ------------------------------------------------------------------ layout

    def test_shape_dtype_and_norm(self, embedder: Embedder) -> None:
        vectors = embedder.embed(TEXTS)
        assert isinstance(vectors, np.ndarray)
        assert vectors.dtype == np.float32
        assert vectors.shape == (len(TEXTS), embedder.dims)
        assert np.all(np.isfinite(vectors))
        assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-4)

    @pytest.mark.parametrize("purpose", ["document", "query"])
    @pytest.mark.parametrize("size", [0, 1, 2, 9])
    def test_layout_for_every_batch_size(self, embedder: Embedder, purpose: str, size: int) -> None:
        texts = batch_texts(size, seed=size)
        vectors = embedder.embed(texts, purpose=purpose)  # type: ignore[arg-type]
        _check_layout(vectors, size, embedder.dims, f"embed({size} texts, purpose={purpose!r})")
        async_vectors = asyncio.run(embedder.aembed(texts, purpose=purpose))  # type: ignore[arg-type]
        _check_layout(async_vectors, size, embedder.dims, f"aembed({size} texts)")

    def test_dims_is_a_positive_int(self, embedder: Embedder) -> None:
        assert isinstance(embedder.dims, int) and embedder.dims > 0
        assert isinstance(embedder.model_name, str) and embedder.model_name

    def test_empty_list(self, embedder: Embedder) -> None:
        vectors = embedder.embed([])
        assert vectors.shape == (0, embedder.dims)

    # ------------------------------------------------------------------ any text

    def test_any_text_gets_a_finite_unit_vector(self, embedder: Embedder) -> None:
        """Texts without word characters, emoji, combining and zero-width characters: a
        finite vector of norm 1 each, alone and in one batch."""
        for text in ODD_TEXTS:
            _check_layout(embedder.embed([text]), 1, embedder.dims, f"embed([{text!r}])")
            _check_layout(
                embedder.embed([text], purpose="query"), 1, embedder.dims, f"query {text!r}"
            )
        batch = embedder.embed([*ODD_TEXTS, *TEXTS])
        _check_layout(batch, len(ODD_TEXTS) + len(TEXTS), embedder.dims, "a batch of odd texts")

    @pytest.mark.parametrize("text", BLANK_TEXTS, ids=["empty", "space", "whitespace"])
    def test_blank_text_is_refused_or_embedded(self, embedder: Embedder, text: str) -> None:
        try:
            vectors = embedder.embed([text, "a word"])
        except InvalidInputError:
            return
        _check_layout(vectors, 2, embedder.dims, f"embed([{text!r}, 'a word'])")

    def test_long_text_is_truncated_not_rejected(self, embedder: Embedder) -> None:
        vectors = embedder.embed(["word " * 20000])
        assert vectors.shape == (1, embedder.dims)
        assert np.all(np.isfinite(vectors))

    @pytest.mark.parametrize(
        "text",
        ["?! " * 5000, "東京は日本の首都です。" * 1500, "🙂" * 8000, "x" * 100_000],
        ids=["punctuation", "cjk", "emoji", "one-word"],
    )
    def test_very_long_odd_text(self, embedder: Embedder, text: str) -> None:
        _check_layout(embedder.embed([text, "short"]), 2, embedder.dims, "a very long text")

    # ------------------------------------------------------------------ batching

    def test_batch_equals_single(self, embedder: Embedder) -> None:
        batch = embedder.embed(TEXTS)
        singles = np.vstack([embedder.embed([t]) for t in TEXTS])
        np.testing.assert_allclose(batch, singles, atol=self.atol)

    def test_batches_of_1_7_64_257_equal_one_by_one(self, embedder: Embedder) -> None:
        """The same text gets the same vector alone and in a batch of any size, at any
        position of the batch."""
        texts = batch_texts(257, seed=257)
        singles = np.vstack([embedder.embed([t]) for t in texts])
        for size in (1, 7, 64, 257):
            start = 0 if size == 257 else (size * 3) % (257 - size)
            chunk = texts[start : start + size]
            vectors = embedder.embed(chunk)
            _check_layout(vectors, size, embedder.dims, f"a batch of {size}")
            bad = np.flatnonzero(
                np.abs(vectors - singles[start : start + size]).max(axis=1) > self.atol
            )
            assert not len(bad), (
                f"in a batch of {size}, {len(bad)} texts get another vector than alone "
                f"(first at batch position {int(bad[0])}: {chunk[int(bad[0])]!r})"
            )
        order = list(range(64))
        random.Random(1).shuffle(order)
        shuffled = embedder.embed([texts[i] for i in order])
        np.testing.assert_allclose(shuffled, singles[order], atol=self.atol)

    # ------------------------------------------------------------------ determinism

    def test_deterministic(self, embedder: Embedder) -> None:
        np.testing.assert_allclose(embedder.embed(TEXTS), embedder.embed(TEXTS), atol=self.atol)
        np.testing.assert_allclose(
            embedder.embed(TEXTS, purpose="query"),
            embedder.embed(TEXTS, purpose="query"),
            atol=self.atol,
        )

    def test_query_purpose_has_same_shape(self, embedder: Embedder) -> None:
        assert embedder.embed(TEXTS[:1], purpose="query").shape == (1, embedder.dims)

    def test_queries_and_documents_share_one_space(self, embedder: Embedder) -> None:
        """A text embedded as a query is closer to the same text embedded as a document
        than to any other text's document vector (and the other way round). This holds for
        symmetric models and for asymmetric ones with query/passage prefixes alike."""
        docs = embedder.embed(DISTINCT_TEXTS, purpose="document")
        queries = embedder.embed(DISTINCT_TEXTS, purpose="query")
        sims = queries.astype(np.float64) @ docs.astype(np.float64).T
        for i, text in enumerate(DISTINCT_TEXTS):
            best_doc = int(np.argmax(sims[i]))
            assert best_doc == i, (
                f"the query vector of {text!r} is closest to the document vector of "
                f"{DISTINCT_TEXTS[best_doc]!r} (cosine {sims[i, best_doc]:.3f}) rather than "
                f"its own ({sims[i, i]:.3f}): queries and documents are not in one space"
            )
            best_query = int(np.argmax(sims[:, i]))
            assert best_query == i, (
                f"the document vector of {text!r} is closest to the query vector of "
                f"{DISTINCT_TEXTS[best_query]!r}, not its own"
            )

    def test_deterministic_across_processes(
        self, embedder: Embedder, embedder_spec: EmbedderSpec
    ) -> None:
        """A fresh process building the same embedder gives the same vectors."""
        texts = [*TEXTS, *DISTINCT_TEXTS[:4], "?!"]
        here = {
            "document": embedder.embed(texts, purpose="document"),
            "query": embedder.embed(texts, purpose="query"),
        }
        there = rebuild_and_embed(embedder_spec, texts, timeout=self.subprocess_timeout)
        for purpose in ("document", "query"):
            other = np.asarray(there[purpose], dtype=np.float32)
            assert other.shape == here[purpose].shape
            worst = float(np.abs(other - here[purpose]).max())
            assert worst <= self.atol, (
                f"another process gives other {purpose} vectors for the same texts (largest "
                f"difference {worst:.3g}): the embedder depends on the process, e.g. on "
                "Python's salted hash() or an unseeded random state"
            )

    # ------------------------------------------------------------------ async

    def test_async_twin_equals_sync(self, embedder: Embedder) -> None:
        sync = embedder.embed(TEXTS)
        async_vectors = asyncio.run(embedder.aembed(TEXTS))
        np.testing.assert_allclose(async_vectors, sync, atol=self.atol)

    def test_concurrent_async_calls_equal_sync(self, embedder: Embedder) -> None:
        texts = batch_texts(12, seed=12)
        expected_docs = embedder.embed(texts)
        expected_queries = embedder.embed(texts, purpose="query")

        async def run() -> list[Any]:
            calls = [embedder.aembed(texts[i:] + texts[:i]) for i in range(3)]
            calls.append(embedder.aembed(texts, purpose="query"))
            return list(await asyncio.gather(*calls))

        *rotated, queries = asyncio.run(run())
        for i, vectors in enumerate(rotated):
            np.testing.assert_allclose(vectors, np.roll(expected_docs, -i, axis=0), atol=self.atol)
        np.testing.assert_allclose(queries, expected_queries, atol=self.atol)

    # ------------------------------------------------------------------ bad input

    @pytest.mark.parametrize("bad", [[None], [1], ["ok", b"bytes"]], ids=["none", "int", "bytes"])
    def test_bad_input_raises_invalid_input(self, embedder: Embedder, bad: list[object]) -> None:
        with pytest.raises(InvalidInputError):
            embedder.embed(bad)  # type: ignore[arg-type]

    def test_a_string_instead_of_a_list_is_rejected(self, embedder: Embedder) -> None:
        with pytest.raises(InvalidInputError):
            embedder.embed("a string, not a list")


def child_environment() -> dict[str, str]:
    """The environment of a child Python process that sees what this one sees: this
    process's environment, and its ``sys.path`` as ``PYTHONPATH``."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def rebuild_and_embed(
    spec: EmbedderSpec, texts: list[str], *, timeout: float = 300
) -> dict[str, list[list[float]]]:
    """Build the embedder of ``spec`` in a fresh Python process and embed ``texts`` there,
    as documents and as queries. The child gets this process's ``sys.path`` and
    environment, and another ``PYTHONHASHSEED``."""
    env = child_environment()
    seed = env.get("PYTHONHASHSEED", "")
    env["PYTHONHASHSEED"] = str(int(seed) + 1) if seed.isdigit() else "random"
    env.update(spec.env)
    request = {
        "spec": {
            "factory": spec.factory,
            "config_model": spec.config_model,
            "kwargs": dict(spec.kwargs),
        },
        "texts": texts,
    }
    for path in filter(None, (spec.factory, spec.config_model)):
        if "<locals>" in path or path.startswith("__main__:"):
            pytest.fail(
                f"cannot rebuild {path} in another process: it is not importable; provide an "
                "`embedder_spec` fixture returning an EmbedderSpec of an importable factory",
                pytrace=False,
            )
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0 or _MARK not in done.stdout:
        pytest.fail(
            "building the embedder in another process failed (provide an `embedder_spec` "
            f"fixture if it cannot be rebuilt from its class and config):\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    payload = done.stdout.rsplit(_MARK, 1)[1].strip()
    result: dict[str, list[list[float]]] = json.loads(payload)
    return result
