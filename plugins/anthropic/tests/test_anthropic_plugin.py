"""The package as installed: entry point, registry, lazy SDK import, the README's example."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
from fake_anthropic_api import API_KEY, FakeAnthropicAPI, Reply

import memsift_anthropic
from memsift import registry
from memsift_anthropic import AnthropicConfig, AnthropicLLM

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="memsift") if ep.name == "anthropic"]
    assert len(found) == 1
    assert found[0].value == "memsift_anthropic"
    assert found[0].dist is not None and found[0].dist.name == "memsift-anthropic"


def test_the_version_comes_from_the_metadata() -> None:
    assert memsift_anthropic.__version__ == version("memsift-anthropic")


def test_the_registry_finds_the_llm() -> None:
    spec = registry.get_llm("anthropic")
    assert spec.factory is AnthropicLLM
    assert spec.config_model is AnthropicConfig
    assert spec.plugin == "memsift-anthropic"


def test_importing_the_plugin_does_not_import_the_sdk() -> None:
    code = (
        "import sys, memsift_anthropic\n"
        "from memsift import registry\n"
        "registry.get_llm('anthropic')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('anthropic', 'httpx2')]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
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
    row = next(r for r in json.loads(done.stdout) if r["name"] == "memsift-anthropic")
    assert row["loaded"] is True and not row.get("error")
    assert [(p["kind"], p["name"]) for p in row["providers"]] == [("llm", "anthropic")]


def test_the_readme_example_runs(
    fake_api: FakeAnthropicAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's example, as written, against the fake API (key and URL from env)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "Memory.from_config" in b)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.base_url)
    monkeypatch.chdir(tmp_path)
    fake_api.script(Reply(text='{"facts": ["Alice lives in Lisbon", "Alice prefers green tea"]}'))
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), namespace)
    memory = namespace["m"]
    try:
        assert "Alice lives in Lisbon" in out.getvalue()
        assert len(fake_api.requests) == 1
    finally:
        memory.close()  # type: ignore[attr-defined]
