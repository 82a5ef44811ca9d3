"""The conformance suites catch what they promise to catch.

Each suite of :mod:`memsift.testing` runs, through pytest's ``pytester`` (in process), against
a correct reference provider, which must pass every test of the suite, and against
deliberately broken variants of it from ``tests/broken_providers``, each of which must fail
the suite. The broken runs use ``-x``: the suite stops at its first failure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import memsift.testing
import memsift.testing.hosted_pipeline  # noqa: F401
from memsift.plugins import reload_plugins

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from broken_providers import embedders, hosted, llms, packages, rerankers, stores  # noqa: E402

pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.Pytester]:
    """A pytester whose runs see ``tests/`` (the broken providers) on ``sys.path`` and load
    no third-party pytest plugin (the suites need none); the plugin host is reloaded
    afterwards, so nothing a run registered stays visible."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.syspathinsert(TESTS)
    pytester.syspathinsert(pytester.path)
    yield pytester
    reload_plugins()


def run(pytester: pytest.Pytester, source: str, *, stop_first: bool) -> pytest.RunResult:
    pytester.makepyfile(test_generated_suite=source)
    args = ["-q", "-p", "no:cacheprovider"]
    return pytester.runpytest(*args, *(["-x"] if stop_first else []))


def _summary(result: pytest.RunResult) -> str:
    """The failures of a run: its ``E`` lines and its short test summary."""
    lines = result.outlines
    keep = [ln for ln in lines if ln.startswith(("E ", "FAILED", "ERROR"))]
    return "\n".join([*keep[-60:], *lines[-3:]])


def assert_passes(result: pytest.RunResult) -> None:
    outcomes = result.parseoutcomes()
    tail = _summary(result)
    assert outcomes.get("failed", 0) == 0, f"the reference provider fails the suite:\n{tail}"
    assert outcomes.get("errors", 0) == 0, f"the suite errored:\n{tail}"
    assert outcomes.get("passed", 0) >= 5, tail


def assert_fails(result: pytest.RunResult) -> None:
    outcomes = result.parseoutcomes()
    tail = _summary(result)
    assert outcomes.get("errors", 0) == 0, f"the suite errored instead of failing:\n{tail}"
    assert outcomes.get("failed", 0) >= 1, f"the broken provider passed the suite:\n{tail}"


# --------------------------------------------------------------------------- vector stores

STORE_SUITE = """
import pytest
from broken_providers import stores
from memsift.testing import VectorStoreConformance


class TestSuite(VectorStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path):
        return {factory}(tmp_path)
"""


def test_the_reference_store_passes_the_store_suite(suite: pytest.Pytester) -> None:
    assert_passes(run(suite, STORE_SUITE.format(factory="stores.REFERENCE"), stop_first=False))


@pytest.mark.parametrize("breakage", list(stores.BROKEN))
def test_the_store_suite_catches(suite: pytest.Pytester, breakage: str) -> None:
    source = STORE_SUITE.format(factory=f"stores.BROKEN[{breakage!r}]")
    assert_fails(run(suite, source, stop_first=True))


# --------------------------------------------------------------------------- embedders

EMBEDDER_SUITE = """
import pytest
from broken_providers import embedders
from memsift.testing import EmbedderConformance


class TestSuite(EmbedderConformance):
    @pytest.fixture
    def embedder(self):
        return {cls}(embedders.HashingConfig())
"""


def test_the_reference_embedder_passes_the_embedder_suite(suite: pytest.Pytester) -> None:
    source = EMBEDDER_SUITE.format(cls="embedders.REFERENCE")
    assert_passes(run(suite, source, stop_first=False))


@pytest.mark.parametrize("breakage", list(embedders.BROKEN))
def test_the_embedder_suite_catches(suite: pytest.Pytester, breakage: str) -> None:
    source = EMBEDDER_SUITE.format(cls=f"embedders.BROKEN[{breakage!r}]")
    assert_fails(run(suite, source, stop_first=True))


# --------------------------------------------------------------------------- rerankers

RERANKER_SUITE = """
import pytest
from broken_providers import rerankers
from memsift.testing import RerankerConformance


class TestSuite(RerankerConformance):
    @pytest.fixture
    def reranker(self):
        return {cls}(rerankers.OverlapConfig())
"""


def test_the_reference_reranker_passes_the_reranker_suite(suite: pytest.Pytester) -> None:
    source = RERANKER_SUITE.format(cls="rerankers.REFERENCE")
    assert_passes(run(suite, source, stop_first=False))


@pytest.mark.parametrize("breakage", list(rerankers.BROKEN))
def test_the_reranker_suite_catches(suite: pytest.Pytester, breakage: str) -> None:
    source = RERANKER_SUITE.format(cls=f"rerankers.BROKEN[{breakage!r}]")
    assert_fails(run(suite, source, stop_first=True))


# --------------------------------------------------------------------------- llms

LLM_SUITE = """
import pytest
from broken_providers import llms
from memsift.testing import LLMConformance


class TestSuite(LLMConformance):
    @pytest.fixture
    def llm(self):
        return {cls}(llms.ScriptedLLMConfig())

    @pytest.fixture
    def llm_secret(self):
        return llms.SECRET

    @pytest.fixture
    def faulty_llm(self):
        return lambda fault: {cls}(llms.ScriptedLLMConfig(fault=fault))
"""


def test_the_reference_llm_passes_the_llm_suite(suite: pytest.Pytester) -> None:
    assert_passes(run(suite, LLM_SUITE.format(cls="llms.REFERENCE"), stop_first=False))


@pytest.mark.parametrize("breakage", list(llms.BROKEN))
def test_the_llm_suite_catches(suite: pytest.Pytester, breakage: str) -> None:
    assert_fails(run(suite, LLM_SUITE.format(cls=f"llms.BROKEN[{breakage!r}]"), stop_first=True))


# --------------------------------------------------------------------------- plugin packages

PACKAGE_SUITE = f"""
from memsift.testing import PluginPackageConformance


class TestSuite(PluginPackageConformance):
    distribution = {packages.DISTRIBUTION!r}
    providers = {{"reranker": ["pkg_overlap"]}}
    heavy_modules = ({packages.HEAVY!r}, "torch")
"""


def test_the_reference_package_passes_the_package_suite(suite: pytest.Pytester) -> None:
    packages.install(suite.path, "reference")
    assert_passes(run(suite, PACKAGE_SUITE, stop_first=False))


@pytest.mark.parametrize("breakage", packages.BROKEN)
def test_the_package_suite_catches(suite: pytest.Pytester, breakage: str) -> None:
    packages.install(suite.path, breakage)
    assert_fails(run(suite, PACKAGE_SUITE, stop_first=True))


# --------------------------------------------------------------------------- hosted pipeline

HOSTED_SUITE = """
import pytest
import memsift.testing  # noqa: F401  (imported once here, not again by every run)
import memsift.testing.hosted_pipeline  # noqa: F401
from memsift.plugins import reload_plugins
from memsift.testing.fake_rerank_api import FakeRerankAPI, threaded_server
from memsift.testing.hosted_pipeline import HostedRerankerPipelineConformance

KEY = "fake-key-0123456789"


@pytest.fixture(scope="module")
def api():
    reload_plugins()  # the next lookup sees the fake distribution of the hosted rerankers
    with threaded_server() as server:
        yield FakeRerankAPI(server, KEY)


class TestSuite(HostedRerankerPipelineConformance):
    @pytest.fixture
    def fake_api(self, api):
        return api

    @pytest.fixture
    def memory_config(self, fake_api):
        def make(options):
            config = {{"base_url": fake_api.base_url, "api_key": KEY, "max_retries": 1, **options}}
            return {{"reranker": {{"provider": {provider!r}, "config": config}}}}

        return make
"""


def _install_hosted(folder: Path) -> None:
    info = folder / "memsift_fakehosted-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: memsift-fakehosted\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[memsift]\nfakehosted = broken_providers.hosted\n")


def test_the_reference_hosted_reranker_passes_the_pipeline_suite(suite: pytest.Pytester) -> None:
    _install_hosted(suite.path)
    assert_passes(run(suite, HOSTED_SUITE.format(provider="fake_hosted"), stop_first=False))


@pytest.mark.parametrize("breakage", list(hosted.BROKEN))
def test_the_pipeline_suite_catches(suite: pytest.Pytester, breakage: str) -> None:
    _install_hosted(suite.path)
    source = HOSTED_SUITE.format(provider=hosted.BROKEN[breakage])
    assert_fails(run(suite, source, stop_first=True))
