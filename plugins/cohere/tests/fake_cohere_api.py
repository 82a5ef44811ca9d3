"""A fake of Cohere's v2 rerank endpoint: :class:`memsift.testing.fake_rerank_api.FakeRerankAPI`
with Cohere's path, body keys and answer shape."""

from __future__ import annotations

import uuid
from typing import Any

from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault, relevance

__all__ = ["API_KEY", "PATH", "FakeCohereAPI", "Fault", "relevance"]

PATH = "/v2/rerank"
API_KEY = "co-test-key-5f1e9a0b7c3d"


class FakeCohereAPI(FakeRerankAPI):
    """The fake endpoint. One per test session; :meth:`reset` between tests."""

    path = PATH
    allowed_keys = frozenset({"model", "query", "documents", "top_n", "max_tokens_per_doc"})
    malformed_body = '{"id": "x", "results": [{"index": 0, '

    def check_body(self, body: dict[str, Any]) -> str | None:
        mtpd = body.get("max_tokens_per_doc")
        if mtpd is not None and (not isinstance(mtpd, int) or mtpd < 1):
            return "max_tokens_per_doc must be a positive integer"
        return None

    def response_body(self, body: dict[str, Any], results: list[dict[str, Any]]) -> Any:
        return {
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
        }

    def error_body(self, message: str) -> Any:
        return {"id": str(uuid.uuid4()), "message": message}
