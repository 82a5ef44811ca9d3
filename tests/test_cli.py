"""The `memsift` command: add, search, compare, demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memsift.cli import main


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "embedder": {"provider": "hashing"},
                "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "s")}},
            }
        )
    )
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_add_then_search_and_compare(config_file: str) -> None:
    code, out = run(
        "add",
        "apple pie [r=0.1]",
        "apple tart [r=0.9]",
        "banana bread",
        "--user-id",
        "alice",
        "--metadata",
        '{"kind": "food"}',
        "--config",
        config_file,
    )
    assert code == 0, out
    assert out.count("ADD") == 3
    code, out = run("add", "apple secret", "--user-id", "bob", "--config", config_file)
    assert code == 0
    code, out = run("search", "apple", "--user-id", "alice", "--json", "--config", config_file)
    assert code == 0, out
    response = json.loads(out)
    assert {h["memory"] for h in response["results"]} == {
        "apple pie [r=0.1]",
        "apple tart [r=0.9]",
        "banana bread",
    }
    assert response["rerank"]["applied"] is False
    code, out = run(
        "search",
        "apple",
        "--user-id",
        "alice",
        "--reranker",
        "scripted",
        "--rerank",
        "--json",
        "--config",
        config_file,
    )
    response = json.loads(out)
    assert response["rerank"]["applied"] is True
    assert response["results"][0]["memory"] == "apple tart [r=0.9]"
    code, out = run(
        "search",
        "apple",
        "--user-id",
        "alice",
        "--filter",
        '{"kind": "food"}',
        "--top-k",
        "2",
        "--config",
        config_file,
    )
    assert code == 0 and "vector order" in out
    code, out = run(
        "compare",
        "apple",
        "--user-id",
        "alice",
        "--reranker",
        "scripted",
        "--json",
        "--config",
        config_file,
    )
    both = json.loads(out)
    assert both["off"]["rerank"]["applied"] is False
    assert both["on"]["rerank"]["applied"] is True
    assert [h["id"] for h in both["on"]["results"]] != [h["id"] for h in both["off"]["results"]]
    code, out = run("compare", "apple", "--user-id", "alice", "--config", config_file)
    assert code == 0 and "bm25" in out and "move" in out


def test_errors_are_clean(config_file: str) -> None:
    code, out = run("search", "apple", "--config", config_file)  # no scope
    assert code == 2 and "scoped" in out
    code, out = run(
        "search", "apple", "--user-id", "a", "--filter", "{bad", "--config", config_file
    )
    assert code == 2 and "--filter must be JSON" in out
    code, out = run(
        "search",
        "apple",
        "--user-id",
        "a",
        "--filter",
        '{"k": {"bogus": 1}}',
        "--config",
        config_file,
    )
    assert code == 2 and "bogus" in out
    code, out = run(
        "search", "apple", "--user-id", "a", "--reranker", "nope", "--config", config_file
    )
    assert code == 2 and "not installed" in out


def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "memsift", "demo", "--path", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "stored 40 memories" in out
    assert "reranked" in out and "bm25" in out
    # the scoped search for bob only shows bob's memories
    assert "Maya's birthday party is on 8 August" in out
