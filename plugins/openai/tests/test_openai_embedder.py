"""The ``openai`` embedder against the fake API: dimensions, batching, truncation, answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from openai_fakes import API_KEY

from memsift import ProviderError
from memsift.testing import assert_secret_absent
from memsift.testing.fake_openai_api import FakeOpenAI, Fault, fake_embedding
from memsift_openai import OpenAIEmbedder

MakeEmbedder = Callable[..., OpenAIEmbedder]


@pytest.mark.parametrize(
    ("model", "dims"),
    [
        ("text-embedding-3-small", 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
    ],
)
def test_dims_of_known_models_need_no_request(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder, model: str, dims: int
) -> None:
    embedder = make_embedder(model=model)
    assert embedder.dims == dims
    assert embedder.embed([]).shape == (0, dims)
    assert fake_api.requests == []


def test_dimensions_shorten_the_vectors(fake_api: FakeOpenAI, make_embedder: MakeEmbedder) -> None:
    embedder = make_embedder(dimensions=256)
    assert embedder.dims == 256
    vectors = embedder.embed(["Alice lives in Lisbon", "tea"])
    assert vectors.shape == (2, 256) and vectors.dtype == np.float32
    assert fake_api.embedding_requests()[0]["dimensions"] == 256
    expected = np.asarray(fake_embedding("Alice lives in Lisbon", 1536)[:256])
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_mem0s_embedding_model_dims(fake_api: FakeOpenAI, make_embedder: MakeEmbedder) -> None:
    """mem0's key (as ``embedding_model_dims`` or ``embedding_dims``) asks for that size."""
    for key in ("embedding_model_dims", "embedding_dims"):
        embedder = make_embedder(**{key: 512})
        assert embedder.dims == 512
        assert embedder.embed(["x"]).shape == (1, 512)
        assert fake_api.embedding_requests()[-1]["dimensions"] == 512
    same = make_embedder(embedding_model_dims=1536)
    same.embed(["x"])
    assert "dimensions" not in fake_api.embedding_requests()[-1]  # the native size: not sent


def test_dims_of_an_unknown_model_are_asked_once(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder
) -> None:
    embedder = make_embedder(model="nomic-embed-text")
    assert embedder.dims == FakeOpenAI.default_embedding_dims
    assert embedder.dims == FakeOpenAI.default_embedding_dims
    assert len(fake_api.requests) == 1
    declared = make_embedder(model="nomic-embed-text", embedding_model_dims=64)
    assert declared.dims == 64 and len(fake_api.requests) == 1
    assert declared.embed(["a"]).shape == (1, 64)
    assert "dimensions" not in fake_api.embedding_requests()[-1]


def test_the_async_twin_learns_the_dims_too(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder
) -> None:
    embedder = make_embedder(model="nomic-embed-text")
    assert asyncio.run(embedder.aembed([])).shape == (0, FakeOpenAI.default_embedding_dims)
    assert len(fake_api.requests) == 1


def test_a_vector_of_another_dimension_is_an_error(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder
) -> None:
    fake_api.fail(Fault(kind="wrong_dimensions"), endpoint="embeddings")
    with pytest.raises(ProviderError, match="1535-dimensional vectors, expected 1536"):
        make_embedder().embed(["a", "b"])
    declared = make_embedder(model="nomic-embed-text", embedding_model_dims=32)
    with pytest.raises(ProviderError, match="64-dimensional vectors, expected 32"):
        declared.embed(["a"])


@pytest.mark.parametrize(
    ("kind", "says"),
    [("missing_rows", "1 of 2 inputs got no embedding"), ("malformed_json", "not JSON")],
)
def test_a_broken_answer_is_an_error(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder, kind: str, says: str
) -> None:
    fake_api.fail(Fault(kind=kind), endpoint="embeddings")  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match=says) as info:
        make_embedder().embed(["a", "b"])
    assert info.value.__context__ is None


def test_batches_keep_within_the_request_limits(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder
) -> None:
    texts = [f"memory number {i}" for i in range(25)]
    embedder = make_embedder(dimensions=32, batch_size=10)
    vectors = embedder.embed(texts)
    assert [len(b["input"]) for b in fake_api.embedding_requests()] == [10, 10, 5]
    singles = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(vectors, singles, atol=1e-6)
    fake_api.reset()
    budget = make_embedder(dimensions=32, max_request_tokens=100)
    budget.embed(["x" * 60, "y" * 30, "z" * 30, "w" * 200])
    sizes = [[len(t) for t in b["input"]] for b in fake_api.embedding_requests()]
    assert sizes == [[60, 30], [30], [200]]  # an input over the budget goes alone


def test_the_default_batch_is_the_apis_2048(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder
) -> None:
    make_embedder(dimensions=8).embed([f"t{i}" for i in range(2049)])
    assert [len(b["input"]) for b in fake_api.embedding_requests()] == [2048, 1]


def test_long_and_empty_inputs(fake_api: FakeOpenAI, make_embedder: MakeEmbedder) -> None:
    """Inputs are cut to max_input_tokens UTF-8 bytes at a character boundary; an empty
    text is sent as a space (the API refuses empty inputs)."""
    embedder = make_embedder(dimensions=16)
    embedder.embed(["é" * 5000, "🙂" * 3000, ""])
    sent = fake_api.embedding_requests()[0]["input"]
    assert sent[0] == "é" * 4095  # 8190 bytes: the next character would pass 8191
    assert sent[1] == "🙂" * 2047
    assert sent[2] == " "
    fake_api.reset()
    make_embedder(dimensions=16, max_input_tokens=None).embed(["a" * 8000])
    assert fake_api.embedding_requests()[0]["input"] == ["a" * 8000]


def test_encoding_formats(fake_api: FakeOpenAI, make_embedder: MakeEmbedder) -> None:
    as_float = make_embedder(dimensions=64).embed(["Alice", "Bob"])
    as_base64 = make_embedder(dimensions=64, encoding_format="base64").embed(["Alice", "Bob"])
    formats = [b["encoding_format"] for b in fake_api.embedding_requests()]
    assert formats == ["float", "base64"]  # float to another server unless asked
    np.testing.assert_allclose(as_float, as_base64, atol=1e-6)


def test_errors_carry_the_status_and_no_key(
    fake_api: FakeOpenAI, make_embedder: MakeEmbedder
) -> None:
    fake_api.fail(Fault(status=401), endpoint="embeddings")
    with pytest.raises(ProviderError) as info:
        make_embedder().embed(["a"])
    assert info.value.status == 401 and info.value.provider == "openai"
    assert_secret_absent(info.value, API_KEY)
    fake_api.fail(Fault(status=429, headers={"Retry-After": "0"}), endpoint="embeddings")
    assert make_embedder(max_retries=1).embed(["a"]).shape == (1, 1536)  # the SDK retried
    fake_api.fail(always=Fault(delay=2.0), endpoint="embeddings")
    with pytest.raises(ProviderError, match="timed out") as timed:
        make_embedder(timeout=0.3).embed(["a"])
    assert timed.value.status is None


def test_async_batches_run_concurrently(fake_api: FakeOpenAI, make_embedder: MakeEmbedder) -> None:
    fake_api.delay = 0.3
    embedder = make_embedder(dimensions=16, batch_size=2)
    texts = [f"text {i}" for i in range(8)]
    vectors = asyncio.run(embedder.aembed(texts))
    assert fake_api.max_in_flight >= 2
    fake_api.delay = 0.0
    np.testing.assert_allclose(vectors, embedder.embed(texts), atol=1e-6)


def test_purpose_is_ignored(fake_api: FakeOpenAI, make_embedder: MakeEmbedder) -> None:
    embedder = make_embedder(dimensions=32)
    np.testing.assert_array_equal(
        embedder.embed(["Lisbon"], purpose="query"), embedder.embed(["Lisbon"])
    )
    assert fake_api.embedding_requests()[0] == fake_api.embedding_requests()[1]
