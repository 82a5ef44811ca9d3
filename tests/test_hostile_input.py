"""Hostile inputs get documented errors, before anything is written: lone surrogates, sizes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from memsift import AsyncMemory, Memory
from memsift.builtin import minilm
from memsift.builtin.minilm import CHARS_PER_TOKEN, MiniLMEmbedder
from memsift.cli import main
from memsift.errors import FilterError, InvalidInputError
from memsift.inputs import MAX_ID_CHARS, MAX_MEMORY_CHARS, MAX_QUERY_CHARS

BAD = "ab\ud800c"  # a lone surrogate at position 2
NOT_UNICODE = re.escape("lone surrogate (U+D800) at position 2")


def config(tmp_path: Path, embedder: str = "hashing") -> dict[str, Any]:
    return {
        "embedder": {"provider": embedder},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
    }


@pytest.fixture
def m(tmp_path: Path) -> Iterator[Memory]:
    with Memory.from_config(config(tmp_path)) as memory:
        memory.add("alice likes tea", user_id="alice", metadata={"kind": "drink"})
        yield memory


def state(m: Memory) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Every memory of alice and the history of each."""
    records = m.get_all(user_id="alice")["results"]
    return records, [m.history(r["id"]) for r in records]


# --------------------------------------------------------------------------- surrogates


def test_a_surrogate_in_the_query(m: Memory) -> None:
    with pytest.raises(InvalidInputError) as info:
        m.search("tea\ud800", user_id="alice")
    assert str(info.value) == (
        "query contains a lone surrogate (U+D800) at position 3; text must be valid Unicode"
    )


WRITES: dict[str, Callable[[Memory, str], Any]] = {
    "add text": lambda m, mid: m.add(BAD, user_id="alice"),
    "add message content": lambda m, mid: m.add({"role": "user", "content": BAD}, user_id="a"),
    "add user_id": lambda m, mid: m.add("x", user_id=BAD),
    "add agent_id": lambda m, mid: m.add("x", user_id="alice", agent_id=BAD),
    "add run_id": lambda m, mid: m.add("x", user_id="alice", run_id=BAD),
    "add metadata value": lambda m, mid: m.add("x", user_id="alice", metadata={"k": BAD}),
    "add metadata nested value": lambda m, mid: m.add(
        "x", user_id="alice", metadata={"k": {"deep": [1, BAD]}}
    ),
    "add metadata nested key": lambda m, mid: m.add("x", user_id="alice", metadata={"k": {BAD: 1}}),
    "add metadata key": lambda m, mid: m.add("x", user_id="alice", metadata={BAD: 1}),
    "update data": lambda m, mid: m.update(mid, BAD),
    "update metadata": lambda m, mid: m.update(mid, "new", metadata={"k": BAD}),
    "update id": lambda m, mid: m.update(mid + BAD, "new"),
    "delete id": lambda m, mid: m.delete(mid + BAD),
    "delete_all user_id": lambda m, mid: m.delete_all(user_id=BAD),
    "get id": lambda m, mid: m.get(BAD),
    "history id": lambda m, mid: m.history(BAD),
    "search user_id": lambda m, mid: m.search("tea", user_id=BAD),
    "get_all agent_id": lambda m, mid: m.get_all(agent_id=BAD),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_a_surrogate_anywhere_is_invalid_input_and_changes_nothing(m: Memory, name: str) -> None:
    before = state(m)
    with pytest.raises(InvalidInputError) as info:
        WRITES[name](m, before[0][0]["id"])
    message = str(info.value)
    assert "surrogate" in message or "invalid metadata key" in message
    assert not isinstance(info.value.__cause__, UnicodeError)
    assert state(m) == before


@pytest.mark.parametrize(
    "filters",
    [{"kind": BAD}, {"user_id": BAD}, {"OR": [{"kind": {"in": ["x", BAD]}}]}],
)
def test_a_surrogate_in_a_filter_literal_is_a_filter_error(
    m: Memory, filters: dict[str, Any]
) -> None:
    before = state(m)
    for call in (
        lambda: m.search("tea", user_id="alice", filters=filters),
        lambda: m.get_all(user_id="alice", filters=filters),
        lambda: m.delete_all(user_id="alice", filters=filters),
    ):
        with pytest.raises(FilterError, match=r"strings must be valid Unicode: a lone surrogate"):
            call()
    assert state(m) == before


def test_async_memory_checks_the_same(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncMemory.from_config(config(tmp_path)) as am:
            with pytest.raises(InvalidInputError, match=NOT_UNICODE):
                await am.add(BAD, user_id="alice")
            with pytest.raises(InvalidInputError, match=NOT_UNICODE):
                await am.search(BAD, user_id="alice")
            with pytest.raises(InvalidInputError, match=NOT_UNICODE):
                await am.get(BAD)
            assert (await am.get_all(user_id="alice"))["results"] == []

    asyncio.run(scenario())


def test_minilm_refuses_a_surrogate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(minilm.OFFLINE_PACK_ENV, raising=False)
    embedder = MiniLMEmbedder()
    try:
        with pytest.raises(InvalidInputError) as info:
            embedder.embed(["fine", BAD], purpose="query")
        assert str(info.value).startswith("texts[1] contains a lone surrogate (U+D800)")
    finally:
        embedder.close()
    with (
        Memory.from_config(config(tmp_path, "minilm")) as mm,
        pytest.raises(InvalidInputError, match=NOT_UNICODE),
    ):
        mm.search(BAD, user_id="alice")


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("scope", ["user_id", "agent_id", "run_id"])
def test_scope_ids_are_bounded(m: Memory, scope: str) -> None:
    ok = "u" * MAX_ID_CHARS
    long = "u" * (MAX_ID_CHARS + 1)
    m.add("at the limit", **{"user_id": "alice", scope: ok})
    before = state(m)
    limit = f"is {MAX_ID_CHARS + 1} characters long; the limit is {MAX_ID_CHARS}"
    with pytest.raises(InvalidInputError, match=limit):
        m.add("over the limit", **{"user_id": "alice", scope: long})
    with pytest.raises(InvalidInputError, match=limit):
        m.search("limit", **{"user_id": "alice", scope: long})
    with pytest.raises(InvalidInputError, match=limit):
        m.get_all(**{scope: long})
    with pytest.raises(InvalidInputError, match=limit):
        m.delete_all(filters={scope: long})
    with pytest.raises(InvalidInputError, match=f"the limit is {MAX_ID_CHARS}"):
        m.add("a megabyte of id", **{"user_id": "alice", scope: "u" * 1_000_000})
    assert state(m) == before


def test_memory_ids_are_bounded(m: Memory) -> None:
    long = "i" * (MAX_ID_CHARS + 1)
    for call in (m.get, m.delete, m.history, lambda i: m.update(i, "x")):
        with pytest.raises(InvalidInputError, match=f"the limit is {MAX_ID_CHARS}"):
            call(long)


def test_queries_are_bounded_not_truncated(m: Memory) -> None:
    assert m.search("t" * MAX_QUERY_CHARS, user_id="alice")["results"] is not None
    start = time.perf_counter()
    with pytest.raises(InvalidInputError) as info:
        m.search("tea " * 2_500_000, user_id="alice")  # 10 MB
    assert time.perf_counter() - start < 1.0
    assert f"the limit is {MAX_QUERY_CHARS}" in str(info.value)
    assert "rejected, not truncated" in str(info.value)


def test_memories_are_bounded(m: Memory) -> None:
    with pytest.raises(InvalidInputError, match=f"the limit is {MAX_MEMORY_CHARS}"):
        m.add("x" * (MAX_MEMORY_CHARS + 1), user_id="alice")


def test_minilm_cuts_long_texts_before_tokenising(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(minilm.OFFLINE_PACK_ENV, raising=False)
    embedder = MiniLMEmbedder()
    try:
        limit = embedder.config.max_length * CHARS_PER_TOKEN
        seen: list[int] = []
        original = MiniLMEmbedder._embed_batch

        def spy(self: MiniLMEmbedder, loaded: Any, batch: list[str]) -> Any:
            seen.extend(len(t) for t in batch)
            return original(self, loaded, batch)

        monkeypatch.setattr(MiniLMEmbedder, "_embed_batch", spy)
        words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "by", "it"]
        long = " ".join(words[i % len(words)] for i in range(20_000))  # ~90,000 characters
        assert len(long) > 20 * limit
        vectors = embedder.embed([long, long[:limit], "short"])
        assert max(seen) <= limit
        # Ordinary text reaches the token limit long before the character cut.
        np.testing.assert_array_equal(vectors[0], vectors[1])
        start = time.perf_counter()
        embedder.embed(["word " * 2_000_000])  # 10 MB
        assert time.perf_counter() - start < 5.0
    finally:
        embedder.close()


# --------------------------------------------------------------------------- the command


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(tmp_path)))
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, " ".join(result.output.split())


def test_cli_prints_hostile_input_errors_cleanly(config_file: str) -> None:
    # A command-line argument that is not valid UTF-8 arrives as a lone surrogate.
    code, out = run("search", "tea\udcff", "--user-id", "alice", "--config", config_file)
    assert code == 2 and "query contains a lone surrogate (U+DCFF) at position 3" in out
    code, out = run("add", "x", "--user-id", "al\udcffice", "--config", config_file)
    assert code == 2 and "user_id contains a lone surrogate (U+DCFF) at position 2" in out
    code, out = run(
        "add", "x", "--user-id", "a", "--metadata", '{"k": "\\ud800"}', "--config", config_file
    )
    assert code == 2 and "U+D800" in out
    code, out = run("search", "x", "--user-id", "u" * 300, "--config", config_file)
    assert code == 2 and f"the limit is {MAX_ID_CHARS}" in out
    # Messages are printed as text: brackets in them are not taken for markup.
    code, out = run(
        "search", "x", "--user-id", "a", "--filter", '{"[bold]k": 1}', "--config", config_file
    )
    assert code == 2 and "[bold]k" in out


def test_cli_prints_memories_as_text_not_markup(config_file: str) -> None:
    for text in ("tea [/x] closing", "tea [bold]bold[/bold]"):
        code, out = run("add", text, "--user-id", "alice", "--config", config_file)
        assert code == 0 and text in out
    for command in ("search", "compare"):
        code, out = run(command, "tea [/y]", "--user-id", "alice", "--config", config_file)
        assert code == 0, out
        assert "tea [/x] closing" in out and "tea [bold]bold[/bold]" in out
