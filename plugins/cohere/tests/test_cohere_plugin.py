"""The package as installed: entry point, discovery, the CLI, lazy SDK import, the README."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI

from memsift import registry
from memsift.plugins import get_plugin_host
from memsift_cohere import CohereConfig, CohereReranker

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="memsift") if ep.name == "cohere"]
    assert len(found) == 1
    assert found[0].value == "memsift_cohere"
    assert found[0].dist is not None and found[0].dist.name == "memsift-cohere"


def test_the_registry_finds_the_reranker() -> None:
    spec = registry.get_reranker("cohere")
    assert spec.factory is CohereReranker
    assert spec.config_model is CohereConfig
    assert spec.plugin == "memsift-cohere"
    assert "cohere" in [s.name for s in registry.list_providers("reranker")]
    info = get_plugin_host().infos["memsift-cohere"]
    assert info.loaded and info.error is None
    assert ("reranker", "cohere") in info.providers


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_importing_the_plugin_does_not_import_the_sdk() -> None:
    done = _run(
        "import sys, memsift_cohere\n"
        "from memsift import registry\n"
        "registry.get_reranker('cohere')\n"
        "assert 'cohere' not in sys.modules, 'the SDK was imported'\n"
        "assert 'httpx' not in sys.modules, 'httpx was imported'\n"
    )
    assert done.returncode == 0, done.stderr


def test_memsift_plugins_lists_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memsift", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    row = next(r for r in rows if r["name"] == "memsift-cohere")
    assert row["loaded"] is True and row["error"] is None
    assert row["version"] == "0.1.0"
    assert {"kind": "reranker", "name": "cohere"}.items() <= row["providers"][0].items()


def test_the_readme_config_gives_reranked_results(
    fake_api: FakeCohereAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's example, copied as it is, against the fake API (key and URL from env)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "Memory.from_config" in b)
    monkeypatch.setenv("CO_API_KEY", API_KEY)
    monkeypatch.setenv("CO_API_URL", fake_api.base_url)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), namespace)
    memory = namespace["m"]
    try:
        results = namespace["results"]
        assert isinstance(results, dict)
        assert results["rerank"]["applied"] is True
        assert results["rerank"]["candidates"] == 2
        assert len(fake_api.requests) == 1
        assert fake_api.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
        assert "Lisbon" in out.getvalue()
        # the score cache is on by default: the same search again makes no request
        again = memory.search("Where do I live?", user_id="alice", top_k=3)  # type: ignore[attr-defined]
        assert again["rerank"]["cache_hits"] == 2
        assert len(fake_api.requests) == 1
    finally:
        memory.close()  # type: ignore[attr-defined]
