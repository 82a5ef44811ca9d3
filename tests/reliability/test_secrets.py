"""The secrets drill over every hosted provider of the catalogue (``providers.py``): the key,
from the config and from each of its environment variables (and, for the LLM rerankers, from
the nested ``llm`` config), shows nowhere — logs at DEBUG, reprs, dumps, exceptions and their
chains and frames, the ``rerank`` block, ``memsift plugins`` and the CLI's output — through
successful and failing calls. And the drill fails when a provider leaks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from memsift import RerankError
from memsift.drills.report import DrillReport
from memsift.drills.secret_scan import capture_logs, exception_leaks, find_secret, secret_forms
from memsift.drills.secret_targets import FAULTS, key_options
from memsift.drills.secrets import drill_target, secrets_drill
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

from .conftest import DrillSizes, DrillTable
from .providers import BY_NAME, PROVIDERS, HostedProvider, Served


@dataclass
class Drilled:
    """The drill's view of a catalogue entry (a :class:`memsift.drills.secrets.Target`),
    with the extra places it takes its key (``key_options``)."""

    name: str
    kind: str
    key_envs: tuple[str, ...]
    serve: Callable[[str], AbstractContextManager[Served]]
    memory_config: Callable[..., dict[str, Any]]
    key_options: dict[str, Callable[[str], dict[str, Any]]] = field(default_factory=dict)


def _nested(secret: str) -> dict[str, Any]:
    return {"llm": {"api_key": secret}}


def target(hosted: HostedProvider, **changes: Any) -> Drilled:
    """``hosted`` for the drill; the LLM rerankers take their key from the nested llm
    config too."""
    extra = {"nested llm config": _nested} if hosted.provider == "llm_reranker" else {}
    drilled = Drilled(
        hosted.name, hosted.kind, hosted.key_envs, hosted.serve, hosted.memory_config, extra
    )
    return replace(drilled, **changes)


def sources_of(drilled: Drilled) -> int:
    return 1 + len(drilled.key_envs) + len(key_options(drilled))


# --------------------------------------------------------------------------- the drill


@pytest.mark.parametrize("hosted", PROVIDERS, ids=[p.name for p in PROVIDERS])
def test_the_key_shows_nowhere(
    hosted: HostedProvider, sizes: DrillSizes, drill_table: DrillTable
) -> None:
    drilled = target(hosted)
    (report,) = secrets_drill([drilled], seed=sizes.seed)
    drill_table(report)
    assert report.ok, report.problems
    sources = sources_of(drilled)
    notes = report.notes
    assert notes["key sources"] == sources
    # each fault through Memory, and with the key in the config through AsyncMemory too;
    # a reranker both falling back and raising
    modes = 2 if hosted.kind == "reranker" else 1
    runs = sources + 1
    assert notes["faults"] == len(FAULTS) * modes * runs
    # every fault was seen failing (or, for a reranker that falls back, reported)
    per_run = {"reranker": len(FAULTS), "llm": len(FAULTS), "embedder": 2 * len(FAULTS)}
    assert notes["errors checked"] == per_run[hosted.kind] * runs
    if hosted.kind == "reranker":
        assert notes["fallbacks checked"] == len(FAULTS) * runs
    assert notes["async calls"] > 0 and notes["URLs with credentials"] == 1
    assert notes["cli runs"] >= 5 * sources
    assert notes["SDK and HTTP log records"] >= 10 * sources


# --------------------------------------------------------------------------- the drill catches


@pytest.fixture
def quick() -> Drilled:
    """One reranker, its key from the config only: a short run for the broken targets."""
    return target(BY_NAME["huggingface"], key_envs=())


def kinds(report: DrillReport) -> set[str]:
    return set(report.kinds)


def test_a_provider_that_logs_its_key_at_debug_fails_the_drill(
    quick: Drilled, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = HuggingFaceReranker.score_candidates

    def score(self: Any, query: str, candidates: Any) -> Any:
        key = self.config.api_key.get_secret_value()
        logging.getLogger("memsift_huggingface").debug("calling with key %s", key)
        return original(self, query, candidates)

    monkeypatch.setattr(HuggingFaceReranker, "score_candidates", score)
    report = drill_target(quick)
    assert "logs" in kinds(report), report.problems
    assert any("logger 'memsift_huggingface'" in p for p in report.problems)


def log_request_headers(monkeypatch: pytest.MonkeyPatch, logger: str) -> None:
    """httpx's client, made to log each request's headers on ``logger`` at DEBUG (as an SDK
    could)."""
    import httpx

    original = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        logging.getLogger(logger).debug("request headers: %s", dict(request.headers))
        return original(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", send)


def test_an_sdk_that_logs_the_request_headers_fails_the_drill(
    quick: Drilled, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_request_headers(monkeypatch, "some_sdk._base_client")
    report = drill_target(quick)
    assert "logs" in kinds(report), report.problems
    assert any("logger 'some_sdk._base_client'" in p for p in report.problems)


def test_on_the_loggers_memsift_filters_the_key_is_masked(
    quick: Drilled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same leak on httpx's own logger: memsift's filter masks the provider's key."""
    log_request_headers(monkeypatch, "httpx")
    with capture_logs() as capture:
        report = drill_target(quick)
    assert report.ok, report.problems
    assert any("request headers" in r.getMessage() for r in capture.records)
    assert any("'authorization': 'Bearer ***'" in r.getMessage() for r in capture.records)


def test_a_config_whose_repr_shows_the_key_fails_the_drill(
    quick: Drilled, monkeypatch: pytest.MonkeyPatch
) -> None:
    def leaky(self: Any) -> str:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return f"HuggingFaceRerankerConfig(api_key={key!r})"

    monkeypatch.setattr(HuggingFaceRerankerConfig, "__repr__", leaky)
    report = drill_target(quick)
    assert "repr" in kinds(report), report.problems
    assert any("repr of Memory.reranker.config" in p for p in report.problems)


def test_an_error_that_quotes_the_key_fails_the_drill(
    quick: Drilled, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = HuggingFaceReranker.score_candidates

    def score(self: Any, query: str, candidates: Any) -> Any:
        try:
            return original(self, query, candidates)
        except RerankError as exc:
            key = self.config.api_key.get_secret_value()
            raise RerankError("huggingface", f"{exc.message} (key {key})") from None

    monkeypatch.setattr(HuggingFaceReranker, "score_candidates", score)
    report = drill_target(quick)
    # raised: in the error; fallen back: in the rerank block; in the CLI's error output
    assert {"exception", "response", "cli"} <= kinds(report), report.problems


def test_a_fake_whose_faults_do_nothing_fails_the_drill(quick: Drilled) -> None:
    """A drill that cannot make the calls fail has not checked the failures."""

    hosted_serve = quick.serve

    @contextmanager
    def serve(api_key: str) -> Iterator[Served]:
        with hosted_serve(api_key) as served:
            served.fail = lambda *args, **kwargs: None  # type: ignore[method-assign]
            yield served

    quick.serve = serve
    report = drill_target(quick)
    assert kinds(report) == {"not-exercised"}, report.problems
    assert any("rerank block" in p for p in report.problems)


# --------------------------------------------------------------------------- the instruments


def test_a_secret_is_found_in_its_encodings() -> None:
    import base64
    import urllib.parse

    key = "sk-Drill+key/0123456789=="
    for text in (
        f"Authorization: Bearer {key}",
        key.lower(),
        urllib.parse.quote(key, safe=""),
        "Basic " + base64.b64encode(f"user:{key}".encode()).decode(),
        base64.urlsafe_b64encode(f"xy{key}z".encode()).decode(),
        key.encode().hex(),
    ):
        assert find_secret(text, key) is not None, text
    assert find_secret(f"cut: {key[:-3]}...", key) == "a part of it (12+ characters)"
    assert find_secret(f"a masked key: {key[:6]}...{key[-4:]}", key) is None
    assert {"plain", "lower-cased", "url-quoted", "hex", "base64@0", "base64@2"} <= set(
        secret_forms(key)
    )


def test_the_log_capture_sees_every_logger_and_restores_them() -> None:
    quiet = logging.getLogger("memsift_drill_quiet")
    quiet.setLevel(logging.ERROR)
    quiet.propagate = False
    try:
        with capture_logs() as capture:
            quiet.debug("the key is %s", "sk-in-a-record-123456")
            logging.getLogger("openai._base_client").debug("Request options: %s", {})
        assert {r.name for r in capture.records} >= {"memsift_drill_quiet", "openai._base_client"}
        assert capture.leaks("sk-in-a-record-123456") == [
            "logger 'memsift_drill_quiet' (DEBUG): plain"
        ]
        assert quiet.level == logging.ERROR and quiet.propagate is False
    finally:
        quiet.propagate = True
        quiet.setLevel(logging.NOTSET)


def test_exception_leaks_reach_contexts_groups_and_frames() -> None:
    key = "sk-In-A-Chain-0123456789"

    def inner() -> None:
        failure = {"detail": key.lower()}  # a local of a frame the error passes through
        raise RuntimeError("clean") from (ValueError("clean") if failure else None)

    try:
        inner()
    except RuntimeError as exc:
        found = exception_leaks(exc, key)
    assert "local 'failure' of inner() in a RuntimeError's frames: lower-cased" in found
    assert not [line for line in found if "chain" in line or "traceback" in line]

    class Group(Exception):  # what an ExceptionGroup holds: its members
        def __init__(self, *members: BaseException) -> None:
            super().__init__("clean")
            self.exceptions = members

    group = Group(ValueError("clean"), KeyError(key))
    assert exception_leaks(group, key) == [
        "str of a KeyError in the chain: plain",
        "repr of a KeyError in the chain: plain",
        "args of a KeyError in the chain: plain",
    ]
