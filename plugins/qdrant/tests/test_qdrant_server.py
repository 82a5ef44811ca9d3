"""The same suites against a real Qdrant server, for those who have one.

CI has none: it runs the client's local mode (the other test files). Point these tests at a
server with ``MEMSIFT_QDRANT_URL`` (e.g. ``http://localhost:6333``; ``MEMSIFT_QDRANT_API_KEY``
when it needs a key, ``MEMSIFT_QDRANT_GRPC=1`` to talk gRPC). Each test uses a collection of
its own, named ``memsift-test-<random>``, and deletes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from memsift import Memory
from memsift.testing import VectorStoreConformance
from memsift.testing.vector_store import StoreFactory
from memsift_qdrant import QdrantStore, QdrantStoreConfig

URL = os.environ.get("MEMSIFT_QDRANT_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set MEMSIFT_QDRANT_URL to test a Qdrant server")


def _server_config(collection: str) -> dict[str, Any]:
    config: dict[str, Any] = {"url": URL, "collection_name": collection}
    if os.environ.get("MEMSIFT_QDRANT_API_KEY"):
        config["api_key"] = os.environ["MEMSIFT_QDRANT_API_KEY"]
    if os.environ.get("MEMSIFT_QDRANT_GRPC") == "1":
        config["prefer_grpc"] = True
    return config


@pytest.fixture
def collection() -> Iterator[str]:
    name = f"memsift-test-{uuid.uuid4().hex[:12]}"
    yield name
    from qdrant_client import QdrantClient

    options = QdrantStoreConfig(**_server_config(name)).server_options()
    client = QdrantClient(**options)
    try:
        if client.collection_exists(name):
            client.delete_collection(name)
    finally:
        client.close()


class TestServer(VectorStoreConformance):
    """The store conformance suite on the server (exact search, payload indexes)."""

    @pytest.fixture
    def make_store(self, collection: str) -> StoreFactory:
        return lambda: QdrantStore(QdrantStoreConfig(**_server_config(collection)))


def test_memory_on_the_server(collection: str) -> None:
    config = {"vector_store": {"provider": "qdrant", "config": _server_config(collection)}}
    with Memory.from_config(config) as m:
        added = m.add(["on a real server"], user_id="server-test", infer=False)["results"]
        hits = m.search("on a real server", user_id="server-test", top_k=3)["results"]
        assert [h["id"] for h in hits] == [added[0]["id"]]
        store = m.vector_store
        assert isinstance(store, QdrantStore) and not store.local
        from qdrant_client import QdrantClient

        client = QdrantClient(**QdrantStoreConfig(**_server_config(collection)).server_options())
        try:
            schema = client.get_collection(collection).payload_schema
        finally:
            client.close()
        assert {"user_id", "agent_id", "run_id", "created_at", "updated_at", "hash"} <= set(schema)
