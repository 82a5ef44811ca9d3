"""The provider fault matrix (:mod:`memsift.drills.faults`): every hosted provider of
:mod:`providers` x every fault, through the fault-injecting proxy, at a bounded size.

Each target runs with a 1 s ``timeout`` and one retry; the matrix runs four targets at a time
(the cells mostly wait on timeouts and backoffs). ``MEMSIFT_DRILL_FAULT_ROUNDS`` sets the
calls per cell (2 by default).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from memsift.drills.faults import FaultTarget, cells_of, drill_target, fault_matrix, table
from memsift.drills.report import DrillReport

from .conftest import DrillTable
from .providers import PROVIDERS, HostedProvider

KEY = "drill-key-5b0e7c1a9d3f"
ROUNDS = int(os.environ.get("MEMSIFT_DRILL_FAULT_ROUNDS", "2"))
TIMEOUT = 1.0
SLACK = 2.0
#: Faults a provider does not retry by its documented design: the ``huggingface`` endpoint
#: mode retries 429, 502, 503, 504 and connection errors, not a 500 (TEI's 500 is a model
#: error, not a passing one).
NO_RETRY = {"huggingface": frozenset({"500"})}
#: The ``llm_reranker``'s sync path fails a call at the first failed candidate and leaves the
#: other requests to end (with their retries) in worker threads: the proxy waits for them to
#: end before each cell, past the llm's first retry backoff (0.5 s).
SETTLE = {"llm_reranker-openai": 0.8, "llm_reranker-anthropic": 0.8}
#: Every variable a target reads a key or a URL from: none comes from the machine.
ENV_VARS = (
    *{env for p in PROVIDERS for env in p.key_envs},
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "CO_API_URL",
    "ZEROENTROPY_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
)


def target(provider: HostedProvider) -> FaultTarget:
    """``provider`` as the drill's target, with its fake accepting :data:`KEY`."""

    @contextmanager
    def serve() -> Iterator[str]:
        with provider.serve(KEY) as served:
            yield served.base_url

    def config(folder: Path, base_url: str, options: dict[str, Any]) -> dict[str, Any]:
        return provider.memory_config(folder, base_url, KEY, **options)

    return FaultTarget(
        name=provider.name,
        kind=provider.kind,
        serve=serve,
        memory_config=config,
        mutate=provider.mutate,
        mutations=provider.mutations,
        no_retry=NO_RETRY.get(provider.name, frozenset()),
        settle=SETTLE.get(provider.name, 0.0),
    )


@pytest.fixture(autouse=True)
def _no_real_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMSIFT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def reports() -> list[DrillReport]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        found = fault_matrix(
            [target(p) for p in PROVIDERS],
            workers=4,
            rounds=ROUNDS,
            timeout=TIMEOUT,
            retries=1,
            slack=SLACK,
        )
    print("\n" + table(found))
    for report in found:
        raised = {k: v for k, v in report.notes.items() if "raised:" in k or k == "stray_requests"}
        if raised:
            print(f"   {report.name}: {raised}")
        for problem in report.problems:
            print("  ", problem)
    return found


def test_every_hosted_provider_survives_every_fault(
    reports: list[DrillReport], drill_table: DrillTable
) -> None:
    drill_table(*reports)
    assert [r.name for r in reports] == [f"faults:{p.name}" for p in PROVIDERS]
    for report in reports:
        assert report.ok, (report.name, report.kinds, report.problems)


def test_every_fault_reached_every_target(reports: list[DrillReport]) -> None:
    for provider, report in zip(PROVIDERS, reports):
        cells = [c.name for c in cells_of(target(provider))]
        assert report.notes["cells"] == len(cells)
        assert report.attempts == len(cells) * ROUNDS
        for cell in cells:
            assert report.notes[f"delivered:{cell}"] >= 1, (provider.name, cell)
        # the matrix has the faults of the brief, and the target's own wrong answers
        names = {c.split("/")[0] for c in cells}
        assert {"429-short", "429-long", "429-none", "500", "503", "hang", "reset"} <= names
        assert {"malformed", "html-502", *provider.mutations} <= names
        assert len(provider.mutations) >= 2


def test_calls_stay_within_the_timeout(reports: list[DrillReport]) -> None:
    """The bound itself is checked per call by the drill (a ``latency`` failure); here, that
    the hang really held the calls up to the timeout (it was not answered early)."""
    for report in reports:
        assert report.notes["max_ms:hang/persistent"] >= TIMEOUT * 1000 * 0.9, report.name


# --------------------------------------------------------------------------- broken targets


def cohere() -> FaultTarget:
    return target(next(p for p in PROVIDERS if p.name == "cohere"))


def test_the_matrix_fails_a_reranker_that_scores_0_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reranker that hides its failures behind a score of 0 for every document: the
    searches look reranked while the API is down."""
    from memsift_cohere import CohereReranker

    original = CohereReranker.score_candidates

    def swallowed(self: CohereReranker, query: str, docs: Any) -> Any:
        try:
            return original(self, query, docs)
        except Exception:
            return [0.0] * len(docs)

    monkeypatch.setattr(CohereReranker, "score_candidates", swallowed)
    report = drill_target(cohere(), rounds=1, timeout=TIMEOUT, only=("500",))
    assert not report.ok
    assert report.kinds.get("applied_under_fault", 0) >= 1
    assert report.kinds.get("raise", 0) >= 1


def test_the_matrix_fails_a_reranker_whose_timeout_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stage's timeout and the retrier's cut of each attempt both ignored: a hung API
    holds the search for as long as it hangs."""
    from memsift.kit.retry import Deadline
    from memsift.search import RerankStage

    def no_stage_timeout(self: RerankStage, query: str, docs: Any) -> Any:
        return self.reranker.score_candidates(query, docs)

    monkeypatch.setattr(RerankStage, "_call", no_stage_timeout)
    monkeypatch.setattr(Deadline, "attempt_timeout", lambda self, request_timeout: 30.0)
    report = drill_target(cohere(), rounds=1, timeout=TIMEOUT, only=("hang",), hang=4.0)
    assert not report.ok
    assert report.kinds.get("latency", 0) >= 1
    assert report.notes["max_ms:hang/persistent"] > (TIMEOUT + SLACK) * 1000


def test_the_matrix_fails_an_llm_add_that_writes_despite_the_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An add with inference that, when the LLM fails, stores the raw text instead: the
    store changes under a failed call."""
    from memsift.errors import LLMError
    from memsift.memory import Memory

    original = Memory.add

    def add_anyway(self: Memory, messages: Any, **kwargs: Any) -> Any:
        try:
            return original(self, messages, **kwargs)
        except LLMError:
            original(self, messages, **{**kwargs, "infer": False})
            raise

    monkeypatch.setattr(Memory, "add", add_anyway)
    provider = next(p for p in PROVIDERS if p.name == "openai-llm")
    report = drill_target(target(provider), rounds=1, timeout=TIMEOUT, only=("503",))
    assert not report.ok
    assert report.kinds.get("written", 0) >= 1
