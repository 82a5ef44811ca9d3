"""``memsift import FILE.jsonl``: per-memory scope ids and metadata, the whole file checked
before anything is written (bad lines named by number), batches, progress only on a terminal,
the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memsift import Memory
from memsift.cli import importer, main


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "s")}},
    }


@pytest.fixture
def config_file(tmp_path: Path, cfg: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def write_jsonl(path: Path, lines: list[Any]) -> str:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return str(path)


LINES = [
    {"text": "prefers window seats", "user_id": "alice", "metadata": {"topic": "travel"}},
    {"text": "allergic to peanuts", "user_id": "bob", "metadata": {"topic": "health"}},
    "",
    {"text": "likes jazz", "user_id": "alice", "agent_id": "dj", "created_at": "2024-01-01"},
    {"text": "runs on tuesdays", "run_id": "r1"},
]


def test_import_loads_each_line_with_its_own_scope_and_metadata(
    tmp_path: Path, config_file: str, cfg: dict[str, Any]
) -> None:
    file = write_jsonl(tmp_path / "m.jsonl", LINES)
    code, out = run("import", file, "--config", config_file, "--batch-size", "2")
    assert code == 0, out
    assert "imported" in out and "4 memories" in out
    with Memory.from_config(cfg) as m:
        alice = {r["memory"]: r for r in m.get_all(user_id="alice")["results"]}
        assert set(alice) == {"prefers window seats", "likes jazz"}
        assert alice["prefers window seats"]["metadata"] == {"topic": "travel"}
        assert alice["likes jazz"]["agent_id"] == "dj"
        assert alice["likes jazz"]["created_at"] == "2024-01-01T00:00:00.000000+00:00"
        (bob,) = m.get_all(user_id="bob")["results"]
        assert bob["metadata"] == {"topic": "health"}
        assert [r["memory"] for r in m.get_all(run_id="r1")["results"]] == ["runs on tuesdays"]
        assert m.history(bob["id"])[0]["event"] == "ADD"


def test_json_summary_and_default_scope(tmp_path: Path, config_file: str) -> None:
    file = write_jsonl(
        tmp_path / "m.jsonl",
        [{"text": "a"}, {"text": "b", "user_id": "own"}, {"text": "c", "metadata": {"x": 1}}],
    )
    code, out = run("import", file, "--user-id", "dflt", "--json", "--config", config_file)
    assert code == 0, out
    summary = json.loads(out)
    assert summary["imported"] == 3 and summary["scopes"] == 2
    assert summary["with_metadata"] == 1 and summary["batches"] == 1
    code, out = run("search", "a", "--user-id", "dflt", "--json", "--config", config_file)
    assert {h["memory"] for h in json.loads(out)["results"]} == {"a", "c"}


def test_bad_lines_are_reported_by_number_and_nothing_is_written(
    tmp_path: Path, config_file: str, cfg: dict[str, Any]
) -> None:
    file = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            LINES[0],
            "{not json",
            [1, 2],
            {"text": "no scope"},
            {"text": "x", "user_id": "*"},
            {"text": "x", "user_id": "u", "colour": "red"},
            LINES[1],
        ],
    )
    code, out = run("import", file, "--config", config_file)
    assert code == 2, out
    assert "5 bad line(s); nothing was imported" in out
    assert "line 2: not JSON" in out
    assert "line 3: must be a JSON object, got list" in out
    assert "line 4: " in out and "at least one of user_id" in out
    assert "line 5: " in out and "line 6: unknown key(s) 'colour'" in out
    assert "line 1:" not in out and "line 7:" not in out
    with Memory.from_config(cfg) as m:
        assert m.get_all(user_id="alice")["results"] == []
        assert m.get_all(user_id="bob")["results"] == []


def test_many_bad_lines_are_cut(tmp_path: Path, config_file: str) -> None:
    file = write_jsonl(tmp_path / "bad.jsonl", [{"text": ""}] * (importer.SHOWN_PROBLEMS + 5))
    code, out = run("import", file, "--config", config_file)
    assert code == 2
    assert "... and 5 more" in out


def test_stdin_empty_file_and_batch_size(tmp_path: Path, config_file: str) -> None:
    lines = "\n".join(json.dumps({"text": f"m{i}", "user_id": "s"}) for i in range(5))
    code, out = run(
        "import", "-", "--json", "--batch-size", "2", "--config", config_file, stdin=lines
    )
    assert code == 0, out
    assert json.loads(out)["batches"] == 3 and json.loads(out)["imported"] == 5
    empty = write_jsonl(tmp_path / "empty.jsonl", [""])
    code, out = run("import", empty, "--config", config_file)
    assert code == 0 and "nothing was imported" in out
    code, out = run("import", empty, "--batch-size", "0", "--config", config_file)
    assert code == 2


def test_progress_bar_only_on_a_terminal(
    tmp_path: Path, config_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write_jsonl(tmp_path / "m.jsonl", LINES)
    used: list[int] = []
    real = importer._with_progress

    def spy(m: Any, items: Any, batch_size: int) -> Any:
        used.append(len(items))
        return real(m, items, batch_size)

    monkeypatch.setattr(importer, "_with_progress", spy)
    assert run("import", file, "--config", config_file)[0] == 0
    assert used == []  # CliRunner's output is not a terminal
    monkeypatch.setattr(type(importer.console), "is_terminal", property(lambda self: True))
    assert run("import", file, "--user-id", "again", "--config", config_file)[0] == 0
    assert used == [4]


def test_a_store_failure_is_a_clean_error(
    tmp_path: Path, config_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memsift.errors import StoreError

    def broken(self: Any, *a: Any, **k: Any) -> Any:
        raise StoreError("the disk is full")

    monkeypatch.setattr(Memory, "add_many", broken)
    file = write_jsonl(tmp_path / "m.jsonl", LINES)
    code, out = run("import", file, "--config", config_file)
    assert code == 2 and "the disk is full" in out
