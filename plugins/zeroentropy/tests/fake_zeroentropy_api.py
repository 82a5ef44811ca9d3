"""A fake of ZeroEntropy's rerank endpoint:
:class:`memsift.testing.fake_rerank_api.FakeRerankAPI` with ZeroEntropy's path, models, size
limit and answer shape."""

from __future__ import annotations

from typing import Any

from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault, relevance

__all__ = [
    "API_KEY",
    "MODELS",
    "PATH",
    "FakeZeroEntropyAPI",
    "Fault",
    "relevance",
    "request_bytes",
]

PATH = "/v1/models/rerank"
API_KEY = "ze-test-key-8d2c4b6a1e0f"
MODELS = frozenset({"zerank-2", "zerank-1", "zerank-1-small"})


def request_bytes(query: str, documents: list[str]) -> int:
    """A request's size as the API counts it against its limits."""
    return sum(150 + len(query.encode()) + len(d.encode()) for d in documents)


class FakeZeroEntropyAPI(FakeRerankAPI):
    """The fake endpoint. One per test session; :meth:`reset` between tests.
    ``max_bytes`` limits a request's size (see :func:`request_bytes`)."""

    path = PATH
    base_path = "/v1"  # the base URL as the SDK takes it: with the API version
    auth_error = "Invalid API Key"
    allowed_keys = frozenset({"model", "query", "documents", "top_n", "latency"})
    models = MODELS
    default_max_documents = None
    malformed_body = '{"actual_latency_mode": "fast", "results": [{"index": 0, '
    max_bytes: int

    def reset(self) -> None:
        super().reset()
        self.max_bytes = 5_000_000

    def check_body(self, body: dict[str, Any]) -> str | None:
        if "latency" in body and body["latency"] not in ("fast", "slow"):
            return "latency must be 'fast' or 'slow'"
        size = request_bytes(body["query"], body["documents"])
        if size > self.max_bytes:
            return f"the request counts {size} bytes; the limit is {self.max_bytes}"
        return None

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        size = request_bytes(body["query"], body["documents"])
        return {
            "actual_latency_mode": body.get("latency") or "fast",
            "e2e_latency": 0.012,
            "inference_latency": 0.008,
            "results": results,
            "total_bytes": size,
            "total_tokens": size // 4,
        }

    def error_body(self, message: str) -> Any:
        return {"detail": message}
