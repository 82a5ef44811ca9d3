"""The API key appears nowhere in a raised error's chain: not in its message, not in the SDK
exception it came from (``__cause__`` / ``__context__``, recursively), not in exceptions
held by its traceback's frames, not in ``traceback.format_exception``."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI, Fault, memory_config

from memsift import ConfigError, Memory, MemoryConfig, RerankError
from memsift_cohere import CohereConfig, CohereReranker

Make = Callable[..., CohereReranker]
QUERY = "Where does Alice live?"
DOCS = ["Alice moved to Lisbon in March.", "The report is due on Friday."]
ECHO = f"invalid api token: got 'Bearer {API_KEY}'"


def reachable(error: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    out: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        stack.extend((current.__cause__, current.__context__))
        tb = current.__traceback__
        while tb is not None:
            stack.extend(v for v in tb.tb_frame.f_locals.values() if isinstance(v, BaseException))
            tb = tb.tb_next
    return out


def assert_no_secret(error: BaseException, secret: str = API_KEY) -> None:
    for found in reachable(error):
        for text in (str(found), repr(found), repr(found.args)):
            assert secret not in text, f"{type(found).__name__} in the chain holds the key"
    assert secret not in "".join(traceback.format_exception(error))


# (name, the faults, the status the error must carry)
FAULTS: list[tuple[str, list[Fault], Fault | None, int]] = [
    ("401-echo", [Fault(401, {"message": ECHO})], None, 401),
    ("401-text-body", [Fault(401, ECHO)], None, 401),
    ("500-echo", [], Fault(500, {"message": f"internal error for {API_KEY}"}), 500),
    ("429-long-wait", [Fault(429, {"message": ECHO}, {"Retry-After": "120"})], None, 429),
    ("429-exhausted", [], Fault(429, {"message": ECHO}, {"Retry-After-Ms": "10"}), 429),
]


def _call(reranker: CohereReranker, mode: str) -> list[float]:
    if mode == "sync":
        return reranker.rerank(QUERY, DOCS)
    return asyncio.run(reranker.arerank(QUERY, DOCS))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("name", "faults", "always", "status"), FAULTS, ids=[f[0] for f in FAULTS])
def test_an_error_body_echoing_the_key_stays_out_of_the_chain(
    make_reranker: Make,
    fake_api: FakeCohereAPI,
    mode: str,
    name: str,
    faults: list[Fault],
    always: Fault | None,
    status: int,
) -> None:
    fake_api.fail(*faults, always=always)
    with pytest.raises(RerankError) as info:
        _call(make_reranker(timeout=2.0, max_retries=1), mode)
    assert info.value.status == status
    assert "***" in str(info.value)  # the echo is there, scrubbed
    assert_no_secret(info.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_key_from_the_environment_stays_out_of_the_chain(
    fake_api: FakeCohereAPI, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("CO_API_KEY", API_KEY)
    reranker = CohereReranker(CohereConfig(base_url=fake_api.base_url, max_retries=0))
    fake_api.fail(Fault(401, {"message": ECHO}))
    try:
        with pytest.raises(RerankError) as info:
            _call(reranker, mode)
    finally:
        reranker.close()
    assert info.value.status == 401
    assert_no_secret(info.value)


@pytest.mark.parametrize("wrong", [[API_KEY], {"key": API_KEY}, 918273645546372819])
def test_a_wrong_typed_api_key_stays_out_of_the_chain(wrong: Any) -> None:
    with pytest.raises(ConfigError) as info:
        MemoryConfig.from_dict({"reranker": {"provider": "cohere", "config": {"api_key": wrong}}})
    assert "api_key" in str(info.value)
    assert_no_secret(info.value, API_KEY)
    assert_no_secret(info.value, "918273645546372819")


@pytest.fixture(scope="module")
def memories(
    _fake_api: FakeCohereAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Memory]]:
    built = {}
    for on_error in ("fallback", "raise"):
        path = tmp_path_factory.mktemp(on_error)
        options = {"cache_size": 0, "timeout": 2.0, "max_retries": 0, "on_error": on_error}
        built[on_error] = Memory.from_config(memory_config(path, _fake_api.base_url, **options))
        built[on_error].add(DOCS, user_id="alice")
    yield built
    for memory in built.values():
        memory.close()


def test_a_search_that_raises_keeps_the_key_out_of_the_chain(
    memories: dict[str, Memory], fake_api: FakeCohereAPI
) -> None:
    fake_api.fail(Fault(401, {"message": ECHO}))
    with pytest.raises(RerankError) as info:
        memories["raise"].search(QUERY, user_id="alice", rerank=True)
    assert info.value.status == 401
    assert_no_secret(info.value)


def test_a_search_that_falls_back_reports_and_logs_no_key(
    memories: dict[str, Memory], fake_api: FakeCohereAPI, caplog: pytest.LogCaptureFixture
) -> None:
    fake_api.fail(Fault(401, {"message": ECHO}))
    with caplog.at_level(logging.DEBUG):
        block = memories["fallback"].search(QUERY, user_id="alice", rerank=True)["rerank"]
    assert block["applied"] is False and "HTTP 401" in block["error"]
    assert API_KEY not in block["error"]
    assert API_KEY not in caplog.text
    _no_key_in_records(caplog.records)


def _no_key_in_records(records: Sequence[logging.LogRecord]) -> None:
    for record in records:
        if record.exc_info and record.exc_info[1] is not None:
            assert_no_secret(record.exc_info[1])
