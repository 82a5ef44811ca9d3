"""Meta-tests that keep the plugin surface honest: every hook is tested, documented in
CONTRIBUTING.md, typed and described; every public name exists.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import memsift
from memsift import hookspecs, plugins, registry
from memsift.interfaces import PROVIDER_KINDS, ProviderConfig

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
CONTRIBUTING = REPO_ROOT / "CONTRIBUTING.md"
SPEC_MARKER = f"{hookspecs.PROJECT_NAME}_spec"


def collect_hookspecs() -> dict[str, Callable[..., Any]]:
    """Every function of ``memsift.hookspecs`` marked with ``@hookspec``."""
    return {
        name: obj
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and getattr(obj, SPEC_MARKER, None) is not None
    }


HOOKSPECS = collect_hookspecs()
HOOK_NAMES = sorted(HOOKSPECS)


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.delenv("MEMSIFT_TESTPLUGIN_FAIL_IMPORT", raising=False)
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


def test_the_hookspecs_are_found() -> None:
    assert {f"register_{kind}s" for kind in PROVIDER_KINDS} <= set(HOOKSPECS)
    assert "memsift_search_completed" in HOOKSPECS


def test_hookimpl_marker_is_public_and_matches_the_specs() -> None:
    assert memsift.hookimpl is hookspecs.hookimpl
    assert hookspecs.hookimpl.project_name == hookspecs.hookspec.project_name == "memsift"


# --------------------------------------------------------------------------- every hook is tested


def _test_sources() -> dict[Path, str]:
    me = Path(__file__).resolve()
    return {
        path: path.read_text(encoding="utf-8")
        for path in sorted(TESTS_DIR.rglob("test_*.py"))
        if path.resolve() != me and "plugin_fixtures" not in path.parts
    }


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(rf"\b{re.escape(hook)}\b")
    users = [path.name for path, text in _test_sources().items() if pattern.search(text)]
    assert users, f"no test under tests/ mentions the hook {hook!r}"


# ------------------------------------------------------------------------- every hook is documented


def _sections(markdown: str) -> list[tuple[int, str, str]]:
    """(level, heading, body) of every markdown section; the body stops at the next heading
    of the same or a higher level, so it holds its subsections."""
    lines = markdown.splitlines()
    in_fence = False
    headings: list[tuple[int, int, str]] = []  # (line, level, title)
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        found = re.match(r"^(#{1,6})\s+(.*\S)\s*$", line)
        if found and not in_fence:
            headings.append((i, len(found.group(1)), found.group(2)))
    out = []
    for n, (start, level, title) in enumerate(headings):
        end = next((s for s, lv, _ in headings[n + 1 :] if lv <= level), len(lines))
        out.append((level, title, "\n".join(lines[start + 1 : end])))
    return out


def _hook_sections() -> list[tuple[int, str, str]]:
    assert CONTRIBUTING.is_file(), "CONTRIBUTING.md is missing"
    sections = _sections(CONTRIBUTING.read_text(encoding="utf-8"))
    return [s for s in sections if re.search(r"\bhooks?\b", s[1], re.IGNORECASE)]


def test_contributing_has_a_section_about_hooks() -> None:
    assert _hook_sections(), "CONTRIBUTING.md needs a section whose heading mentions hooks"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_documented_in_contributing(hook: str) -> None:
    pattern = re.compile(rf"\b{re.escape(hook)}\b")
    bodies = [body for _, _, body in _hook_sections()]
    documented = [sub for body in bodies for sub in _sections(body) if pattern.search(sub[1])]
    assert documented, f"CONTRIBUTING.md: no heading for {hook!r} in a section about hooks"
    _, heading, text = documented[0]
    for param in inspect.signature(HOOKSPECS[hook]).parameters:
        assert param in heading + text, f"CONTRIBUTING.md: {hook}'s argument {param!r}"


# ------------------------------------------------------------------------ every hook is well formed


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_docstring_with_its_calling_rule(hook: str) -> None:
    doc = inspect.getdoc(HOOKSPECS[hook])
    assert doc, f"hookspec {hook} has no docstring"
    assert "called" in doc.lower(), f"hookspec {hook}'s docstring must say when it is called"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_fully_typed(hook: str) -> None:
    annotations = HOOKSPECS[hook].__annotations__
    params = list(inspect.signature(HOOKSPECS[hook]).parameters)
    assert params, f"hookspec {hook} takes no argument"
    for name in [*params, "return"]:
        assert name in annotations, f"hookspec {hook}: {name!r} has no type"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_known_to_the_plugin_manager(hook: str) -> None:
    caller = getattr(plugins.get_plugin_manager().hook, hook)
    assert caller.spec is not None
    assert caller.spec.argnames == tuple(inspect.signature(HOOKSPECS[hook]).parameters)


def test_the_kind_table_matches_the_register_hooks() -> None:
    """registry.KINDS is the one table of provider kinds: one register hook per kind, whose
    registrar is typed with the kind's base class."""
    register_hooks = {name for name in HOOK_NAMES if name.startswith("register_")}
    assert {spec.hook for spec in registry.KINDS.values()} == register_hooks
    assert set(registry.KINDS) == set(PROVIDER_KINDS)
    for kind, spec in registry.KINDS.items():
        assert spec.kind == kind
        assert registry.KIND_LABEL[kind] == spec.label
        assert issubclass(spec.config_base, ProviderConfig)
        assert getattr(memsift, spec.base.__name__) is spec.base
        assert getattr(memsift, spec.config_base.__name__) is spec.config_base
        annotation = HOOKSPECS[spec.hook].__annotations__["registry"]
        assert annotation == f"ProviderRegistrar[{spec.base.__name__}]"


WRONG_KIND = """
from memsift import ProviderRegistrar, Reranker, RerankerConfig, hookimpl
from memsift.builtin.bm25 import BM25Reranker
from memsift.builtin.minilm import MiniLMEmbedder


@hookimpl
def register_rerankers(registry: ProviderRegistrar[Reranker]) -> None:
    registry.register("x", MiniLMEmbedder, RerankerConfig)
    registry.register("y", BM25Reranker, dict)
    registry.register("ok", BM25Reranker, RerankerConfig)


@hookimpl
def register_embedders(registry: ProviderRegistrar) -> None:  # unparametrised: accepted
    registry.register("z", BM25Reranker, RerankerConfig)
"""


def test_the_registrar_type_catches_a_provider_of_the_wrong_kind(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    plugin = tmp_path / "wrong_kind.py"
    plugin.write_text(WRONG_KIND)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            f"--cache-dir={tmp_path / 'cache'}",
            str(plugin),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout + result.stderr
    assert 'wrong_kind.py:9: error: Argument 2 to "register"' in errors[0]
    assert '"type[MiniLMEmbedder]"; expected "type[Reranker]"' in errors[0]
    assert 'wrong_kind.py:10: error: Argument 3 to "register"' in errors[1]
    assert 'expected "type[ProviderConfig]"' in errors[1]


def test_installed_plugins_implement_only_known_hooks() -> None:
    """A misspelt hook name in a built-in or the test plugin would silently do nothing."""
    memsift.registry.get_registry()
    plugins.get_plugin_manager().check_pending()


# --------------------------------------------------------------------------- public names


@pytest.mark.parametrize(
    "module_name",
    [
        "memsift",
        "memsift.errors",
        "memsift.config",
        "memsift.interfaces",
        "memsift.testing",
        "memsift.builtin",
    ],
)
def test_every_public_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{module_name}.__all__ repeats a name"
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ names what it lacks: {missing}"


def test_star_import_of_memsift_works() -> None:
    namespace: dict[str, Any] = {}
    exec("from memsift import *", namespace)
    assert set(memsift.__all__) <= set(namespace)
