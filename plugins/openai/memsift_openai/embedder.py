"""The ``openai`` embedder: the embeddings endpoint of OpenAI or an OpenAI-compatible server.

Batches: a request carries at most ``batch_size`` inputs (the API takes 2048) and at most
``max_request_tokens`` input tokens (the API takes 300,000), counted as UTF-8 bytes, which is
never fewer than the tokens OpenAI's tokenizers (or any byte-level BPE or byte-fallback
tokenizer) make of a text, so the count never falls short; an input is first cut to
``max_input_tokens`` bytes (8191 by default, the models' limit), at a character boundary. An
empty text is sent as a single space (the API refuses empty inputs). Vectors come back in
input order, as L2-normalised float32 rows, and must all have the expected dimension:
``dimensions`` or ``embedding_model_dims`` when given, the model's own for OpenAI's models,
else the dimension of the first answer (``dims`` asks the server once when nothing else tells
it). ``purpose`` is ignored: the models embed queries and documents in one space.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib
import json
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from memsift import Embedder, ProviderError, check_embed_input
from memsift.interfaces import FloatArray
from memsift.kit.hosted import clean_error, gather_all
from memsift_openai._client import PROVIDER, Clients, Failure, translate
from memsift_openai.config import OpenAIEmbedderConfig, is_openai_url

#: Most batches one ``aembed`` call sends at once.
MAX_CONCURRENT_REQUESTS = 4
#: The text ``dims`` embeds to learn a server's dimension.
PROBE_TEXT = "dimension probe"


class OpenAIEmbedder(Embedder):
    """Embeds texts through ``client.embeddings.create`` of the official ``openai`` SDK."""

    config: OpenAIEmbedderConfig

    def __init__(self, config: OpenAIEmbedderConfig) -> None:
        super().__init__(config)
        importlib.import_module("openai")
        self._clients = Clients(config)
        self._lock = threading.Lock()
        self._dims: int | None = config.expected_dims()

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.config.model!r}, base_url={self._clients.shown_url!r})"

    @property
    def dims(self) -> int:
        """The vectors' dimension; asks the server once when the config does not tell it."""
        if self._dims is None:
            self.embed([PROBE_TEXT])
        assert self._dims is not None
        return self._dims

    # ------------------------------------------------------------------ embedding

    def embed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        items = check_embed_input(texts)
        if not items:
            return np.zeros((0, self.dims), dtype=np.float32)
        client = self._clients.sync()
        parts: list[FloatArray] = []
        for batch in self._batches(items):
            try:
                raw = client.embeddings.with_raw_response.create(**self._arguments(batch))
                body = raw.content
            except Exception as exc:
                failure = self._failure(exc)
            else:
                parts.append(self._read(body, len(batch)))
                continue
            raise clean_error(failure.error, self.config.api_key)
        return self._finish(parts)

    async def aembed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        items = check_embed_input(texts)
        if not items:
            if self._dims is None:
                await self.aembed([PROBE_TEXT])
            return np.zeros((0, self.dims), dtype=np.float32)
        client = self._clients.for_running_loop()
        gate = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

        async def one(batch: list[str]) -> FloatArray:
            async with gate:
                try:
                    raw = await client.embeddings.with_raw_response.create(**self._arguments(batch))
                    body = raw.content
                except Exception as exc:
                    failure = self._failure(exc)
                else:
                    return self._read(body, len(batch))
            raise clean_error(failure.error, self.config.api_key)

        parts = await gather_all(one(batch) for batch in self._batches(items))
        return self._finish(parts)

    def close(self) -> None:
        """Close the SDK clients; a later call opens new ones."""
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    # ------------------------------------------------------------------ requests

    def _prepare(self, text: str) -> str:
        limit = self.config.max_input_tokens
        if not text:
            return " "
        if limit is not None and len(text) * 4 > limit:
            raw = text.encode("utf-8", "surrogatepass")
            if len(raw) > limit:
                text = raw[:limit].decode("utf-8", "ignore") or " "
        return text

    def _batches(self, items: list[str]) -> list[list[str]]:
        """The inputs, prepared, in order, in batches within the request limits."""
        size, budget = self.config.batch_size, self.config.max_request_tokens
        out: list[list[str]] = []
        batch: list[str] = []
        total = 0
        for text in map(self._prepare, items):
            cost = len(text.encode("utf-8", "surrogatepass"))
            if batch and (len(batch) >= size or total + cost > budget):
                out.append(batch)
                batch, total = [], 0
            batch.append(text)
            total += cost
        if batch:
            out.append(batch)
        return out

    def _arguments(self, batch: list[str]) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.config.model, "input": batch}
        dimensions = self.config.request_dimensions()
        if dimensions is not None:
            args["dimensions"] = dimensions
        # base64 is four times smaller than JSON numbers; other servers may not know it.
        fmt = self.config.encoding_format
        if fmt is None:
            fmt = "base64" if is_openai_url(self.config.base_url) else "float"
        args["encoding_format"] = fmt
        return args

    def _failure(self, exc: BaseException) -> Failure:
        return translate(exc, self.config)

    # ------------------------------------------------------------------ answers

    def _read(self, body: bytes, count: int) -> FloatArray:
        """The ``count`` vectors of a response body, in input order."""
        problem: str | None = None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data, problem = None, "malformed response: the body is not JSON"
        if problem is None:
            rows = data.get("data") if isinstance(data, dict) else None
            vectors, problem = _vectors(rows, count)
            if problem is None:
                return vectors
        raise self._error(problem or "malformed response")

    def _finish(self, parts: list[FloatArray]) -> FloatArray:
        vectors = np.vstack(parts) if len(parts) > 1 else parts[0]
        dims = vectors.shape[1]
        with self._lock:
            if self._dims is None:
                self._dims = dims
            expected = self._dims
        if dims != expected:
            raise self._error(
                f"the server returned {dims}-dimensional vectors, expected {expected} "
                f"(model {self.config.model!r}; check `dimensions` / `embedding_model_dims`, "
                "and that the server honours `dimensions`)"
            )
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise self._error("malformed response: a vector is zero or not finite")
        out: FloatArray = np.ascontiguousarray((vectors / norms).astype(np.float32))
        return out

    def _error(self, message: str) -> ProviderError:
        return clean_error(ProviderError(PROVIDER, message), self.config.api_key)


def _vectors(rows: Any, count: int) -> tuple[FloatArray, str | None]:
    """The vectors of an answer's ``data`` list, by ``index``; or the problem with it."""
    empty = np.zeros((0, 0), dtype=np.float32)
    if not isinstance(rows, list):
        return empty, "malformed response: the answer has no list of embeddings"
    found: list[np.ndarray | None] = [None] * count
    for position, row in enumerate(rows):
        index = row.get("index", position) if isinstance(row, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            return empty, f"malformed response: embedding index {index!r} is out of range"
        if found[index] is not None:
            return empty, f"malformed response: input {index} was embedded twice"
        vector = _vector(row.get("embedding"))
        if vector is None:
            return empty, f"malformed response: the embedding of input {index} is not a vector"
        found[index] = vector
    missing = [i for i, v in enumerate(found) if v is None]
    if missing:
        return empty, f"malformed response: {len(missing)} of {count} inputs got no embedding"
    sizes = {v.shape[0] for v in found if v is not None}
    if len(sizes) != 1:
        return empty, f"the server returned vectors of several dimensions: {sorted(sizes)}"
    return np.vstack([v for v in found if v is not None]).astype(np.float32), None


def _vector(value: Any) -> np.ndarray | None:
    if isinstance(value, str):  # encoding_format "base64": little-endian float32
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not raw or len(raw) % 4:
            return None
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return None
    return np.asarray(value, dtype=np.float64).astype(np.float32)
