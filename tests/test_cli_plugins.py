"""``memsift plugins [--json] [--all]``: installed plugin distributions, their versions and
the providers each registers; built-ins with ``--all``; blocked and failed plugins and
provider-name conflicts shown; plugin-provided text printed as text, never as markup.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import memsift
from memsift import plugins, registry
from memsift.cli import main
from memsift.errors import ProviderNotFoundError
from memsift.interfaces import Reranker, RerankerConfig, check_rerank_input
from memsift.registry import ProviderRegistrar
from memsift.testing import registered

TESTPLUGIN = "memsift-testplugin"
TESTPLUGIN_MODULE = "memsift_testplugin"
FAIL_IMPORT_ENV = "MEMSIFT_TESTPLUGIN_FAIL_IMPORT"
ROW_KEYS = {"name", "version", "builtin", "entry_point", "loaded", "blocked", "error", "providers"}
PROVIDER_KEYS = {"kind", "name", "description", "conflicts_with"}
BUILTINS = {
    "memsift.builtin.faiss": ("vector_store", "faiss"),
    "memsift.builtin.minilm": ("embedder", "minilm"),
    "memsift.builtin.bm25": ("reranker", "bm25"),
}
TESTPLUGIN_PROVIDERS = {
    ("reranker", "scripted"),
    ("reranker", "failing"),
    ("reranker", "bad_scores"),
    ("llm", "echo"),
}


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.delenv(FAIL_IMPORT_ENV, raising=False)
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, ["plugins", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def json_rows(*args: str) -> dict[str, dict[str, Any]]:
    rows = json.loads(invoke("--json", *args).stdout)
    assert isinstance(rows, list)
    by_name = {row["name"]: row for row in rows}
    assert len(by_name) == len(rows), "a plugin is listed twice"
    return by_name


def providers_of(row: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["kind"], p["name"]) for p in row["providers"]}


# --------------------------------------------------------------------------- --json


def test_json_lists_the_test_plugin_with_its_providers() -> None:
    rows = json_rows()
    row = rows[TESTPLUGIN]
    assert set(row) == ROW_KEYS
    assert row["version"] == importlib.metadata.version(TESTPLUGIN)
    assert row["builtin"] is False
    assert row["loaded"] is True
    assert row["blocked"] is False
    assert row["error"] is None
    assert providers_of(row) >= TESTPLUGIN_PROVIDERS
    assert row["entry_point"] == "testplugin"
    for provider in row["providers"]:
        assert set(provider) == PROVIDER_KEYS
        assert provider["conflicts_with"] == []
        assert provider["kind"] in {"embedder", "reranker", "vector_store", "llm"}
        assert isinstance(provider["description"], str)
    scripted = next(p for p in row["providers"] if p["name"] == "scripted")
    assert scripted["description"] == registry.get_reranker("scripted").description


def test_json_without_all_hides_the_builtins() -> None:
    rows = json_rows()
    assert not any(row["builtin"] for row in rows.values())
    assert not set(BUILTINS) & set(rows)


def test_json_all_lists_the_builtins() -> None:
    rows = json_rows("--all")
    for module, provider in BUILTINS.items():
        row = rows[module]
        assert set(row) == ROW_KEYS
        assert row["builtin"] is True
        assert row["entry_point"] is None
        assert row["loaded"] is True
        assert provider in providers_of(row)
    assert TESTPLUGIN in rows
    # every registered provider is listed under exactly one plugin
    listed = [p for row in rows.values() for p in providers_of(row)]
    assert len(listed) == len(set(listed))
    for kind in ("embedder", "reranker", "vector_store", "llm"):
        for spec in registry.list_providers(kind):
            assert (kind, spec.name) in providers_of(rows[spec.plugin])


def test_json_shows_a_blocked_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    plugins.reload_plugins()
    row = json_rows()[TESTPLUGIN]
    assert row["blocked"] is True
    assert row["loaded"] is False
    assert row["error"] is None
    assert row["providers"] == []


def test_json_shows_a_plugin_that_failed_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAIL_IMPORT_ENV, "1")
    monkeypatch.delitem(sys.modules, TESTPLUGIN_MODULE, raising=False)
    plugins.reload_plugins()
    with pytest.warns(plugins.PluginLoadWarning, match=TESTPLUGIN):
        rows = json_rows("--all")
    row = rows[TESTPLUGIN]
    assert row["loaded"] is False
    assert row["blocked"] is False
    assert "ImportError" in row["error"]
    assert row["providers"] == []
    assert ("reranker", "bm25") in providers_of(rows["memsift.builtin.bm25"])


def test_json_shows_a_plugin_whose_hook_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    def register_rerankers(registry: ProviderRegistrar) -> None:
        raise RuntimeError("cannot reach the model hub")

    module = types.ModuleType("memsift_flaky")
    module.register_rerankers = memsift.hookimpl(register_rerankers)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = importlib.metadata.entry_points
    fake = importlib.metadata.EntryPoint(
        name="memsift-flaky", value="memsift_flaky", group="memsift"
    )
    monkeypatch.setattr(plugins, "entry_points", lambda **kw: [*real(**kw), fake])
    plugins.reload_plugins()

    with pytest.warns(plugins.PluginLoadWarning, match="memsift-flaky"):
        rows = json_rows()
    assert "RuntimeError: cannot reach the model hub" in rows["memsift-flaky"]["error"]
    assert rows[TESTPLUGIN]["error"] is None


def test_json_with_no_external_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda **kw: [])
    plugins.reload_plugins()
    assert json_rows() == {}
    assert set(json_rows("--all")) == set(BUILTINS)


# --------------------------------------------------------------------------- the table


def test_table_lists_the_test_plugin() -> None:
    out = invoke().stdout
    assert TESTPLUGIN in out
    assert importlib.metadata.version(TESTPLUGIN) in out
    assert "loaded" in out
    for kind, name in TESTPLUGIN_PROVIDERS:
        assert f"{kind}: {name}" in out
    assert "bm25" not in out


def test_table_all_lists_the_builtins() -> None:
    out = invoke("--all").stdout
    for kind, name in BUILTINS.values():
        assert f"{kind}: {name}" in out
    assert "built-in" in out
    assert TESTPLUGIN in out


def test_table_shows_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    plugins.reload_plugins()
    out = invoke().stdout
    assert TESTPLUGIN in out
    assert "blocked" in out
    assert "scripted" not in out


def test_table_shows_failed_with_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAIL_IMPORT_ENV, "1")
    monkeypatch.delitem(sys.modules, TESTPLUGIN_MODULE, raising=False)
    plugins.reload_plugins()
    with pytest.warns(plugins.PluginLoadWarning):
        out = invoke().stdout
    assert TESTPLUGIN in out
    assert "failed" in out
    assert "ImportError" in out


def test_table_without_plugins_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda **kw: [])
    plugins.reload_plugins()
    out = invoke().stdout
    assert "no external plugins installed" in out
    assert "--all" in out


def test_help_documents_the_options() -> None:
    result = CliRunner().invoke(main, ["plugins", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output
    assert "--all" in result.output


# --------------------------------------------------------------------------- real processes


def _env(**overrides: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {plugins.LOAD_PLUGINS_ENV, FAIL_IMPORT_ENV}
    }
    env.update(overrides)
    return env


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_python_dash_m_memsift_plugins_json_all() -> None:
    result = _run([sys.executable, "-m", "memsift", "plugins", "--json", "--all"], _env())
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for module, provider in BUILTINS.items():
        assert provider in providers_of(rows[module])
    assert providers_of(rows[TESTPLUGIN]) >= TESTPLUGIN_PROVIDERS
    assert "Warning" not in result.stderr


def test_console_script_shows_blocked_plugin() -> None:
    script = Path(sys.executable).with_name("memsift")
    assert script.exists(), f"the memsift console script is not installed beside {sys.executable}"
    result = _run([str(script), "plugins", "--json"], _env(**{plugins.LOAD_PLUGINS_ENV: ""}))
    assert result.returncode == 0, result.stderr
    (row,) = [row for row in json.loads(result.stdout) if row["name"] == TESTPLUGIN]
    assert row["blocked"] is True
    assert row["providers"] == []


# --------------------------------------------------------------------------- conflicts


@pytest.fixture
def wide_console() -> Iterator[None]:
    """Print tables 200 columns wide, so that no cell is wrapped."""
    from memsift.cli import render

    saved = render.console._width
    render.console.width = 200
    yield
    render.console._width = saved


class Same(Reranker):
    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return [0.5] * len(check_rerank_input(query, documents))


def _claims(provider: str) -> object:
    class Claim:
        @memsift.hookimpl
        def register_rerankers(self, registry: ProviderRegistrar) -> None:
            registry.register(provider, Same, RerankerConfig, description="a rival")

    return Claim()


@pytest.mark.usefixtures("wide_console")
def test_conflict_is_listed_under_both_plugins_and_exits_0() -> None:
    with registered(_claims("scripted"), name="memsift-rival"):
        rows = json_rows()
        ours = next(p for p in rows[TESTPLUGIN]["providers"] if p["name"] == "scripted")
        theirs = next(p for p in rows["memsift-rival"]["providers"] if p["name"] == "scripted")
        assert ours["conflicts_with"] == ["memsift-rival"]
        assert theirs["conflicts_with"] == [TESTPLUGIN]
        assert rows[TESTPLUGIN]["loaded"] and rows["memsift-rival"]["loaded"]

        out = invoke().stdout
    assert "reranker: scripted (conflict: also memsift-rival)" in out
    assert f"reranker: scripted (conflict: also {TESTPLUGIN})" in out
    assert (
        "conflict: reranker 'scripted' is registered by two plugins: "
        f"{TESTPLUGIN} (entry point testplugin) and memsift-rival (registered in-process); "
        "uninstall one or restrict MEMSIFT_LOAD_PLUGINS"
    ) in out


def test_search_naming_a_conflicting_reranker_fails_cleanly() -> None:
    with registered(_claims("scripted"), name="memsift-rival"):
        result = CliRunner().invoke(
            main, ["search", "q", "--user-id", "u", "--reranker", "scripted"]
        )
    assert result.exit_code == 2, result.output
    assert "reranker 'scripted' is registered by two plugins" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- text, not markup

REGEX = r"^[a-z][a-z0-9_\-]{0,63}$"


def test_errors_are_printed_as_text_not_markup() -> None:
    """A message holding ``[...]`` (a regex, a list) is printed exactly as it is."""
    result = CliRunner().invoke(
        main, ["search", "q", "--user-id", "u", "--reranker", "no[bold]such[/bold]"]
    )
    assert result.exit_code == 2
    assert "reranker 'no[bold]such[/bold]' is not installed" in result.output


def test_error_printer_keeps_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    from memsift.cli.render import fail

    with pytest.raises(SystemExit) as caught:
        fail(ProviderNotFoundError(f"the name must match {REGEX} [red]ok[/red]"))
    assert caught.value.code == 2
    out = capsys.readouterr().out
    assert f"error: the name must match {REGEX} [red]ok[/red]" in out


@pytest.mark.usefixtures("wide_console")
def test_table_prints_plugin_names_and_descriptions_as_text() -> None:
    class Loud:
        @memsift.hookimpl
        def register_rerankers(self, registry: ProviderRegistrar) -> None:
            registry.register("loud", Same, RerankerConfig, description=f"[red]matches {REGEX}")

    with registered(Loud(), name="memsift-[bold]loud"):
        out = invoke().stdout
    assert "memsift-[bold]loud" in out
    assert f"[red]matches {REGEX}" in out


def test_table_notes_an_allow_list_typo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, f"{TESTPLUGIN},memsift-cohre")
    plugins.reload_plugins()
    with pytest.warns(plugins.PluginLoadWarning, match="'memsift-cohre'"):
        out = invoke().stdout
    assert "MEMSIFT_LOAD_PLUGINS names 'memsift-cohre', which is not an installed" in out
    assert "scripted" in out


@pytest.mark.usefixtures("wide_console")
def test_table_shows_a_plugin_with_a_wrong_hook_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    def register_rerankers(reg: ProviderRegistrar) -> None:
        raise AssertionError("never called")

    module = types.ModuleType("memsift_wrongsig")
    module.register_rerankers = memsift.hookimpl(register_rerankers)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = importlib.metadata.entry_points
    fake = importlib.metadata.EntryPoint(name="wrongsig", value="memsift_wrongsig", group="memsift")
    monkeypatch.setattr(plugins, "entry_points", lambda **kw: [*real(**kw), fake])
    plugins.reload_plugins()

    with pytest.warns(plugins.PluginLoadWarning, match=r"wrongsig \(entry point wrongsig\)"):
        result = invoke()
    assert "wrongsig" in result.stdout and "failed" in result.stdout
    assert "PluginValidationError" in result.stdout
    assert "reranker: scripted" in result.stdout
