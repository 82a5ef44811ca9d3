"""The built-in embedder's runs: length-bucketed batches (same vectors, in the texts' order),
the onnxruntime session that does not spin after a call, and quiet model downloads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from memsift.builtin import minilm
from memsift.builtin.batching import BATCH_TOKENS, plan_batches
from memsift.builtin.minilm import MiniLMConfig, MiniLMEmbedder

SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def _mixed_texts() -> list[str]:
    rng = np.random.default_rng(4)
    words = [
        "budget",
        "wedding",
        "billing",
        "Lisbon",
        "Spanish",
        "marathon",
        "espresso",
        "hiring",
        "dentist",
        "roadmap",
    ]
    out = [" ".join(rng.choice(words, int(k))) for k in rng.integers(1, 120, size=40)]
    out += ["", "short", out[3], out[7], "short", out[3]]  # duplicates, in several places
    return out


@pytest.fixture(autouse=True)
def _pack_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(minilm.OFFLINE_PACK_ENV, raising=False)


@pytest.fixture(scope="module")
def embedders() -> Iterator[dict[str, MiniLMEmbedder]]:
    made = {
        "tokens": MiniLMEmbedder(MiniLMConfig(batch_size=8, batch_tokens=300)),
        "chars": MiniLMEmbedder(MiniLMConfig(bucketing="chars", batch_size=8)),
        "none": MiniLMEmbedder(MiniLMConfig(bucketing="none", batch_size=8)),
        "single": MiniLMEmbedder(MiniLMConfig(bucketing="none", batch_size=1)),
    }
    yield made
    for e in made.values():
        e.close()


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("bucketing", ["tokens", "chars", "none"])
def test_every_text_is_in_exactly_one_run(bucketing: Any) -> None:
    texts = _mixed_texts()
    lengths = [len(t.split()) + 2 for t in texts]
    runs = plan_batches(texts, lengths, bucketing, batch_size=8, batch_tokens=200)
    flat = np.concatenate(runs)
    assert sorted(flat.tolist()) == list(range(len(texts)))
    assert all(1 <= len(r) <= 8 for r in runs)


def test_token_runs_are_sorted_and_within_the_budget() -> None:
    lengths = [5, 200, 7, 7, 60, 3, 200, 61, 5, 400]
    texts = ["x"] * len(lengths)
    runs = plan_batches(texts, lengths, "tokens", batch_size=3, batch_tokens=130)
    flat = np.concatenate(runs)
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first
    for run in runs:
        longest = max(lengths[i] for i in run)
        assert len(run) == 1 or len(run) * longest <= 130
        assert len(run) <= 3
    assert [len(r) for r in runs] == [3, 2, 2, 1, 1, 1]  # 3,5,5 | 7,7 | 60,61 | 200 | 200 | 400
    # ties keep the input order (a stable sort)
    assert [int(i) for i in runs[0]] == [5, 0, 8]


def test_chars_and_none_plans() -> None:
    texts = ["ccc", "a", "bb", "dddd", "e"]
    chars = plan_batches(texts, [0] * 5, "chars", batch_size=2)
    assert [r.tolist() for r in chars] == [[1, 4], [2, 0], [3]]
    none = plan_batches(texts, [0] * 5, "none", batch_size=2)
    assert [r.tolist() for r in none] == [[0, 1], [2, 3], [4]]
    assert plan_batches([], [], "tokens") == []


def test_config_of_the_runs() -> None:
    cfg = MiniLMConfig()
    assert (cfg.bucketing, cfg.batch_tokens, cfg.allow_spinning) == ("tokens", BATCH_TOKENS, False)
    for bad in ({"bucketing": "length"}, {"batch_tokens": 0}, {"allow_spinning": "maybe"}):
        with pytest.raises(ValidationError):
            MiniLMConfig.model_validate(bad)


# --------------------------------------------------------------------------- the vectors


def test_bucketed_vectors_equal_unbucketed_in_the_texts_order(
    embedders: dict[str, MiniLMEmbedder],
) -> None:
    texts = _mixed_texts()
    tokens = embedders["tokens"].embed(texts)
    singles = embedders["single"].embed(texts)  # one text per run: no padding at all
    assert tokens.shape == (len(texts), 384)
    np.testing.assert_allclose(tokens, singles, atol=2e-5)
    np.testing.assert_allclose(embedders["none"].embed(texts), singles, atol=2e-5)
    np.testing.assert_allclose(embedders["chars"].embed(texts), singles, atol=2e-5)
    # duplicates get the same vector wherever they are; different texts differ
    np.testing.assert_allclose(tokens[3], tokens[len(texts) - 4], atol=2e-5)
    np.testing.assert_allclose(tokens[3], tokens[-1], atol=2e-5)
    np.testing.assert_allclose(tokens[-5], tokens[-2], atol=2e-5)
    assert float(tokens[0] @ tokens[1]) < 0.9999


def test_bucketing_keeps_the_order_of_a_reversed_list(
    embedders: dict[str, MiniLMEmbedder],
) -> None:
    texts = _mixed_texts()
    forward = embedders["tokens"].embed(texts)
    backward = embedders["tokens"].embed(texts[::-1])
    np.testing.assert_allclose(backward[::-1], forward, atol=2e-5)


def test_a_text_over_the_budget_runs_alone() -> None:
    tiny = MiniLMEmbedder(MiniLMConfig(batch_tokens=4))  # every text is over it
    texts = ["one two three four five six", "seven", "eight nine"]
    ref = MiniLMEmbedder(MiniLMConfig(bucketing="none", batch_size=1))
    try:
        np.testing.assert_allclose(tiny.embed(texts), ref.embed(texts), atol=2e-5)
    finally:
        tiny.close()
        ref.close()


# --------------------------------------------------------------------------- the session


def _entries(embedder: MiniLMEmbedder) -> tuple[Any, ...]:
    embedder.embed(["load"])
    loaded = embedder._loaded
    assert loaded is not None
    options = loaded.session.get_session_options()
    return tuple(options.get_session_config_entry(k) for k in SPIN_KEYS)


def test_the_session_does_not_spin_by_default() -> None:
    embedder = MiniLMEmbedder()
    try:
        assert _entries(embedder) == ("0", "0")
        assert embedder._loaded is not None
        assert embedder._loaded.session.get_session_options().inter_op_num_threads == 1
    finally:
        embedder.close()


def test_allow_spinning_and_threads_reach_the_session() -> None:
    embedder = MiniLMEmbedder(MiniLMConfig(allow_spinning=True, threads=1))
    try:
        assert _entries(embedder) == ("1", "1")
        assert embedder._loaded is not None
        assert embedder._loaded.session.get_session_options().intra_op_num_threads == 1
    finally:
        embedder.close()


# --------------------------------------------------------------------------- quiet loading


def test_hub_downloads_show_no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.utils import are_progress_bars_disabled

    from memsift.kit.local import show_load_progress

    seen: list[bool] = []

    def fake(**kwargs: Any) -> str:
        seen.append(are_progress_bars_disabled())
        return f"/nowhere/{kwargs['filename']}"

    monkeypatch.setenv(minilm.OFFLINE_PACK_ENV, "0")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    before = are_progress_bars_disabled()
    minilm.resolve_model_files(MiniLMConfig())
    assert seen == [True, True]
    assert are_progress_bars_disabled() == before  # restored after the load
    show_load_progress(True)  # what the command line does where a person watches
    try:
        seen.clear()
        minilm.resolve_model_files(MiniLMConfig())
        assert seen == [before, before]
    finally:
        show_load_progress(False)
