"""The testing kit's fake hosted rerank API, driven directly over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from memsift.testing.fake_rerank_api import (
    FakeRerankAPI,
    Fault,
    RecordedRequest,
    relevance,
    threaded_server,
)

KEY = "test-key-1234"
DOCS = ["the cat sat on the mat", "stock prices fell today", "a cat and a dog"]


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with threaded_server() as server:
        yield server


@pytest.fixture(scope="module")
def _api(server: HTTPServer) -> FakeRerankAPI:
    return FakeRerankAPI(server, KEY, path="/v1/rerank")


@pytest.fixture
def api(_api: FakeRerankAPI) -> Iterator[FakeRerankAPI]:
    _api.reset()
    yield _api
    _api.release.set()


def post(
    api: FakeRerankAPI,
    body: Any,
    *,
    key: str | None = KEY,
    path: str = "/v1/rerank",
    method: str = "POST",
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(api.base_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def rerank_body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "query": "cat", "documents": DOCS, **extra}


def test_ranks_by_text_and_records_the_request(api: FakeRerankAPI) -> None:
    status, _, raw = post(api, rerank_body(top_n=2))
    assert status == 200
    results = json.loads(raw)["results"]
    assert len(results) == 2
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert r["relevance_score"] == relevance("cat", DOCS[r["index"]])
    assert {r["index"] for r in results} == {0, 2}  # the documents about cats
    [seen] = api.requests
    assert isinstance(seen, RecordedRequest)
    assert (seen.method, seen.path) == ("POST", "/v1/rerank")
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.body == rerank_body(top_n=2)
    assert api.documents_sent() == [DOCS]
    api.verify()


def test_scores_override_relevance(api: FakeRerankAPI) -> None:
    api.scores[DOCS[1]] = 0.99
    _, _, raw = post(api, rerank_body())
    assert json.loads(raw)["results"][0] == {"index": 1, "relevance_score": 0.99}


def test_relevance_is_deterministic_and_bounded() -> None:
    assert relevance("cat", "a cat") == relevance("cat", "a cat")
    assert 0.0 <= relevance("q", "unrelated") <= 1.0
    assert relevance("cat", "a cat") > relevance("cat", "a dog")


def test_wrong_key_is_401_and_not_a_violation(api: FakeRerankAPI) -> None:
    status, _, raw = post(api, rerank_body(), key="nope")
    assert status == 401
    assert json.loads(raw) == {"message": "invalid api token"}
    status, _, _ = post(api, rerank_body(), key=None)
    assert status == 401
    assert api.violations == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2], "not a JSON object"),
        (rerank_body(extra=1), "unexpected keys"),
        ({"model": "m", "query": "q"}, "missing keys"),
        (rerank_body(model=""), "model must be"),
        (rerank_body(query="  "), "query must be"),
        (rerank_body(documents=[]), "documents must be"),
        (rerank_body(top_n=9), "top_n must be between 1 and 3"),
    ],
)
def test_invalid_bodies_are_violations(api: FakeRerankAPI, body: Any, problem: str) -> None:
    status, _, raw = post(api, body)
    assert status == 400
    [violation] = api.violations
    assert problem in violation
    assert problem in json.loads(raw)["message"]
    with pytest.raises(AssertionError, match="invalid requests"):
        api.verify()


def test_wrong_method_and_content_type_are_violations(api: FakeRerankAPI) -> None:
    status, _, _ = post(api, None, method="PUT")
    assert status == 405
    request = urllib.request.Request(
        api.base_url + "/v1/rerank",
        data=b"query=cat",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/plain"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 400
    assert "PUT" in api.violations[0]
    assert "content type" in api.violations[1]


def test_max_documents(api: FakeRerankAPI) -> None:
    api.max_documents = 2
    status, _, _ = post(api, rerank_body())
    assert status == 400
    assert "the limit is 2" in api.violations[0]


def test_fault_queue_then_persistent_fault(api: FakeRerankAPI) -> None:
    api.fail(
        Fault(429, {"message": "slow down"}, {"Retry-After": "1"}),
        Fault(status=200),
        Fault(502, "<html>bad gateway</html>"),
        always=Fault(503),
    )
    status, headers, raw = post(api, rerank_body())
    assert (status, headers["Retry-After"], json.loads(raw)) == (
        429,
        "1",
        {"message": "slow down"},
    )
    assert post(api, rerank_body())[0] == 200
    status, _, raw = post(api, rerank_body())
    assert (status, raw) == (502, b"<html>bad gateway</html>")
    for _ in range(2):
        status, _, raw = post(api, rerank_body())
        assert (status, json.loads(raw)) == (503, {"message": "fault"})
    assert len(api.requests) == 5
    api.reset()
    assert post(api, rerank_body())[0] == 200


def test_malformed_and_bad_index_faults(api: FakeRerankAPI) -> None:
    api.fail(Fault(kind="malformed_json"), Fault(kind="bad_index"))
    status, _, raw = post(api, rerank_body())
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    _, _, raw = post(api, rerank_body())
    assert json.loads(raw)["results"][0]["index"] == len(DOCS) + 5


def test_delay_counts_concurrent_requests_and_release_ends_it(api: FakeRerankAPI) -> None:
    api.delay = 0.3
    threads = [threading.Thread(target=post, args=(api, rerank_body())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert api.max_in_flight >= 2
    assert api.in_flight == 0

    api.fail(Fault(delay=30.0))
    threading.Timer(0.2, api.release.set).start()
    started = time.monotonic()
    assert post(api, rerank_body())[0] == 200
    assert time.monotonic() - started < 10


class ShapedAPI(FakeRerankAPI):
    """A provider with its own path, models, extra check and answer shape."""

    path = "/v2/score"
    base_path = "/v2"
    auth_error = "bad key"
    allowed_keys = frozenset({"model", "query", "documents", "top_n", "mode"})
    models = frozenset({"r-1"})
    default_max_documents = None

    def check_body(self, body: dict[str, Any]) -> str | None:
        if body.get("mode", "fast") != "fast":
            return "mode must be 'fast'"
        return None

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        return {"data": results, "model": body["model"]}

    def error_body(self, message: str) -> Any:
        return {"detail": message}


def test_a_subclass_shapes_path_checks_and_answers(server: HTTPServer) -> None:
    api = ShapedAPI(server, KEY)
    assert api.base_url.endswith("/v2")
    body = {"model": "r-1", "query": "cat", "documents": DOCS}
    status, _, raw = post(api, body, path="/score")
    assert status == 200
    assert json.loads(raw)["model"] == "r-1"
    assert len(json.loads(raw)["data"]) == 3
    assert post(api, body, path="/score", key="x")[2] == b'{"detail": "bad key"}'
    post(api, {**body, "model": "r-9"}, path="/score")
    post(api, {**body, "mode": "slow"}, path="/score")
    assert api.violations == ["unknown model 'r-9'", "mode must be 'fast'"]


def test_memsift_testing_does_not_import_it() -> None:
    code = (
        "import sys, memsift.testing\n"
        "assert 'memsift.testing.fake_rerank_api' not in sys.modules\n"
        "assert 'pytest_httpserver' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
