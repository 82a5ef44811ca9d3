"""``memsift.testing`` imports its suites on first access, so that the modules that need no
pytest -- :mod:`memsift.testing.benchkit`, which plugin benchmarks use under ``memsift bench``
in an environment that may have no pytest -- import without it."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import memsift.testing

SUITE_MODULES = (
    "memsift.testing.embedder",
    "memsift.testing.llm",
    "memsift.testing.plugin_package",
    "memsift.testing.reranker",
    "memsift.testing.vector_store",
)

NO_PYTEST = textwrap.dedent(
    f"""
    import sys
    sys.modules["pytest"] = None  # from here on, every import of pytest fails
    import memsift.testing.benchkit
    from memsift.testing.benchkit import Figure
    import memsift.testing
    loaded = [m for m in {SUITE_MODULES!r} if m in sys.modules]
    assert not loaded, f"suites imported with benchkit: {{loaded}}"
    try:
        memsift.testing.RerankerConformance
    except ImportError:
        pass
    else:
        raise AssertionError("a suite imported without pytest")
    print("ok")
    """
)


def test_benchkit_imports_without_pytest() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_PYTEST],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("name", memsift.testing.__all__)
def test_every_exported_name_is_the_one_its_module_defines(name: str) -> None:
    value = getattr(memsift.testing, name)
    assert getattr(importlib.import_module(value.__module__), name) is value
    assert name in dir(memsift.testing)


def test_a_suite_imports_from_the_package() -> None:
    from memsift.testing import RerankerConformance
    from memsift.testing.reranker import RerankerConformance as defined

    assert RerankerConformance is defined


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchSuite'"):
        memsift.testing.NoSuchSuite  # noqa: B018
