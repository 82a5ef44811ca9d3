"""The package as installed: entry point, discovery, lazy SDK import, the README."""

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
from openai_fakes import API_KEY

import memsift_openai
from memsift import registry
from memsift.testing.fake_openai_api import FakeOpenAI
from memsift_openai import (
    OpenAIEmbedder,
    OpenAIEmbedderConfig,
    OpenAILLM,
    OpenAILLMConfig,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="memsift") if ep.name == "openai"]
    assert len(found) == 1
    assert found[0].value == "memsift_openai"
    assert found[0].dist is not None and found[0].dist.name == "memsift-openai"
    assert memsift_openai.__version__ == version("memsift-openai")


def test_the_registry_finds_both_providers() -> None:
    llm = registry.get_llm("openai")
    assert llm.factory is OpenAILLM and llm.config_model is OpenAILLMConfig
    embedder = registry.get_embedder("openai")
    assert embedder.factory is OpenAIEmbedder and embedder.config_model is OpenAIEmbedderConfig
    assert llm.plugin == embedder.plugin == "memsift-openai"


def test_building_imports_the_sdk_but_loading_does_not() -> None:
    code = (
        "import sys, memsift_openai\n"
        "from memsift import registry\n"
        "registry.get_llm('openai'); registry.get_embedder('openai')\n"
        "assert 'openai' not in sys.modules, 'the SDK was imported'\n"
        "memsift_openai.OpenAILLM(memsift_openai.OpenAILLMConfig(api_key='k'))\n"
        "assert 'openai' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
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
    row = next(r for r in json.loads(done.stdout) if r["name"] == "memsift-openai")
    assert row["loaded"] is True and row["error"] is None
    kinds = {(p["kind"], p["name"]) for p in row["providers"]}
    assert kinds == {("llm", "openai"), ("embedder", "openai")}


@pytest.mark.parametrize("model", [OpenAILLMConfig, OpenAIEmbedderConfig])
def test_the_readme_documents_every_key(model: type) -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))
    missing = set(model.model_fields) - documented
    assert not missing, f"README.md lacks config rows for {sorted(missing)}"


def test_the_readme_example_runs(fake_api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first example, as it is, against the fake (key and URL from the env)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "Memory.from_config" in b)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_api.base_url)
    fake_api.reply('{"facts": ["Moved to Lisbon in March", "Loves green tea"]}')
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), namespace)
    try:
        printed = out.getvalue()
        assert "ADD Moved to Lisbon in March" in printed
        assert printed.splitlines()[2].endswith("Moved to Lisbon in March")
        assert len(fake_api.chat_requests()) == 1
    finally:
        namespace["m"].close()  # type: ignore[attr-defined]
    assert os.environ["OPENAI_BASE_URL"] == fake_api.base_url
