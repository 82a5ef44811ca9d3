"""A small hosted reranker speaking the wire format of ``FakeRerankAPI``, and variants of
it that each break one rule of a hosted provider. A plugin module: ``register_rerankers``
registers them all (the tests expose it through a fake distribution's entry point)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from pydantic import Field, SecretStr

import memsift
from memsift.errors import RerankError
from memsift.interfaces import Reranker, RerankerConfig, check_rerank_input
from memsift.kit.hosted import Failure, Retrier, rank_scores, retry_after, retryable_status


class FakeHostedConfig(RerankerConfig):
    base_url: str = Field(description="the API's address")
    api_key: SecretStr = Field(description="bearer token")
    model: str = Field(default="fake-rerank-1", description="model name sent to the API")
    max_retries: int = Field(default=2, ge=0, le=10, description="retries of 429 and 5xx")
    request_timeout: float = Field(default=30.0, gt=0, description="seconds per request")


class FakeHostedReranker(Reranker):
    """POST {base_url}/rerank with {model, query, documents, top_n}; bearer auth."""

    config: FakeHostedConfig
    name = "fake_hosted"

    def __init__(self, config: FakeHostedConfig) -> None:
        super().__init__(config)
        self.retrier = Retrier(
            self.name,
            max_retries=self.retries(),
            timeout=config.timeout,
            request_timeout=config.request_timeout,
            backoff=0.05,
            secret=config.api_key,
        )

    def retries(self) -> int:
        return self.config.max_retries

    def post(self, body: dict[str, Any], timeout: float) -> bytes:
        request = urllib.request.Request(
            self.config.base_url + "/rerank",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.config.api_key.get_secret_value()}",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read()
            return data

    def translate(self, exc: Exception) -> Failure:
        if isinstance(exc, urllib.error.HTTPError):
            raw = exc.read()
            try:
                message = json.loads(raw).get("message", "")
            except ValueError:
                message = raw.decode("utf-8", "replace")
            status = exc.code
            return Failure(
                RerankError(self.name, message or "error", status=status),
                retry=retryable_status(status),
                retry_after=self.wait(dict(exc.headers.items())),
            )
        if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc):
            return Failure(RerankError(self.name, "the request timed out"))
        return Failure(RerankError(self.name, f"could not reach the API: {type(exc).__name__}"))

    def wait(self, headers: dict[str, str]) -> float | None:
        return retry_after(headers)

    def parse(self, raw: bytes, count: int) -> list[float]:
        try:
            body = json.loads(raw)
        except ValueError:
            raise RerankError(self.name, "malformed response: not JSON") from None
        results = body.get("results") if isinstance(body, dict) else None
        return rank_scores(self.name, results, count)

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = check_rerank_input(query, documents)
        if not docs:
            return []
        body = {"model": self.config.model, "query": query, "documents": docs, "top_n": len(docs)}
        raw = self.retrier.call(lambda timeout: self.post(body, timeout), self.translate)
        return self.parse(raw, len(docs))

    def close(self) -> None:
        self.retrier.close()


class NoRetryOn429(FakeHostedReranker):
    """Never retries: a 429 becomes a fallback."""

    def retries(self) -> int:
        return 0


class IgnoresRetryAfter(FakeHostedReranker):
    """Retries at once, whatever the server asked."""

    def wait(self, headers: dict[str, str]) -> float | None:
        return 0.0


class MalformedAsZeros(FakeHostedReranker):
    """Reads an unparseable answer as all-zero scores instead of failing."""

    def parse(self, raw: bytes, count: int) -> list[float]:
        try:
            return super().parse(raw, count)
        except RerankError:
            return [0.0] * count


class SwallowsErrors(FakeHostedReranker):
    """Hides API failures behind made-up descending scores."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        try:
            return super().rerank(query, documents)
        except RerankError:
            n = len(documents)
            return [1.0 - i / max(1, n) for i in range(n)]


class WaitsPastTheBudget(FakeHostedReranker):
    """Waits out any Retry-After, whatever the reranker's timeout."""

    def __init__(self, config: FakeHostedConfig) -> None:
        super().__init__(config)
        self.retrier = Retrier(
            self.name,
            max_retries=self.retries(),
            timeout=None,
            request_timeout=config.request_timeout,
            max_wait=3600.0,
            secret=config.api_key,
        )


class ChainsTheKey(FakeHostedReranker):
    """Raises its errors from an exception that holds the request, key and all."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        try:
            return super().rerank(query, documents)
        except RerankError as exc:
            request = f"POST /rerank Authorization: Bearer {self.config.api_key.get_secret_value()}"
            raise RerankError(self.name, exc.message, status=exc.status) from RuntimeError(request)


PROVIDERS: dict[str, type[FakeHostedReranker]] = {
    "fake_hosted": FakeHostedReranker,
    "fake_hosted_no_retry": NoRetryOn429,
    "fake_hosted_ignores_retry_after": IgnoresRetryAfter,
    "fake_hosted_malformed_as_zeros": MalformedAsZeros,
    "fake_hosted_swallows_errors": SwallowsErrors,
    "fake_hosted_waits_past_the_budget": WaitsPastTheBudget,
    "fake_hosted_chains_the_key": ChainsTheKey,
}
#: breakage id -> provider name; the hosted pipeline suite must fail each one.
BROKEN: dict[str, str] = {
    "no-retry-on-429": "fake_hosted_no_retry",
    "ignores-retry-after": "fake_hosted_ignores_retry_after",
    "malformed-answer-read-as-zeros": "fake_hosted_malformed_as_zeros",
    "swallows-api-errors": "fake_hosted_swallows_errors",
    "waits-past-the-budget": "fake_hosted_waits_past_the_budget",
    "chains-the-key": "fake_hosted_chains_the_key",
}


@memsift.hookimpl
def register_rerankers(registry: memsift.ProviderRegistrar) -> None:
    for name, cls in PROVIDERS.items():
        registry.register(name, cls, FakeHostedConfig, description="a fake hosted reranker")
