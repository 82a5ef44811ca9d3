"""Every task of the project: tests per package, lint, typecheck, demo, bench.

``nox`` runs the default sessions: the core tests, one test session per plugin package
(discovered from ``plugins/*/pyproject.toml``), lint and typecheck. Each session installs
what it needs into its own virtualenv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parent
PLUGINS = sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
TEST_PLUGIN = "tests/plugin_fixtures/memsift-testplugin"

nox.options.sessions = ["tests", *[f"plugin-{p}" for p in PLUGINS], "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


def _preinstall(plugin_dir: Path) -> list[str]:
    """Packages a plugin needs installed first (e.g. the CPU build of torch)."""
    data = tomllib.loads((plugin_dir / "pyproject.toml").read_text())
    nox_cfg = data.get("tool", {}).get("memsift", {}).get("nox", {})
    return list(nox_cfg.get("preinstall", []))


@nox.session
def tests(session: nox.Session) -> None:
    """The core's tests (with the offline model pack and a test-only plugin installed)."""
    session.install("-e", ".[offline,test]")
    session.install("-e", TEST_PLUGIN)
    session.run("pytest", *(session.posargs or ["-q", "tests"]))


def _plugin_session(name: str) -> None:
    @nox.session(name=f"plugin-{name}")
    def plugin(session: nox.Session) -> None:
        plugin_dir = ROOT / "plugins" / name
        pre = _preinstall(plugin_dir)
        if pre:
            session.install(*pre)
        session.install("-e", ".[offline,test]")
        session.install("-e", f"plugins/{name}[test]")
        session.run("pytest", *(session.posargs or ["-q", f"plugins/{name}/tests"]))

    plugin.__doc__ = f"Tests of the plugin package plugins/{name}."


for _name in PLUGINS:
    _plugin_session(_name)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and format check of the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the core."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: scoped, filtered, reranked searches."""
    session.install("-e", ".[offline]")
    session.run("memsift", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The performance figures of DESIGN.md section 7 (pass --quick for a short run)."""
    session.install("-e", ".[offline]")
    session.run("memsift", "bench", *session.posargs)
