"""The store conformance suite on qdrant-client's local mode: in memory and in a folder,
through the sync client and through the async one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient

from memsift.testing import PluginPackageConformance, VectorStoreConformance
from memsift.testing.vector_store import StoreFactory
from memsift_qdrant import QdrantStore, QdrantStoreConfig


class TestLocalFolder(VectorStoreConformance):
    """``{"path": FOLDER}``: the config CI runs, the local mode on disk (sync client)."""

    @pytest.fixture
    def make_store(self, local_folder: Path) -> StoreFactory:
        folder = str(local_folder)
        return lambda: QdrantStore(QdrantStoreConfig(path=folder))


class TestLocalMemory(VectorStoreConformance):
    """``{"path": ":memory:"}``: each store object has its own data (the same code as the
    shared in-memory client below, so fewer generated filters)."""

    persistent = False
    filter_cases = 15

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        return lambda: QdrantStore(QdrantStoreConfig(path=":memory:"))


class TestSharedClientInMemory(VectorStoreConformance):
    """A ready ``QdrantClient(":memory:")`` shared by every store object (so data persists
    across store objects, and the reopen checks run)."""

    filter_cases = 30

    @pytest.fixture
    def make_store(self) -> Iterator[StoreFactory]:
        client = QdrantClient(location=":memory:")
        yield lambda: QdrantStore(QdrantStoreConfig(client=client))
        client.close()


class TestAsyncClientInMemory(VectorStoreConformance):
    """A ready ``AsyncQdrantClient(":memory:")``: the async twins await it natively, the sync
    methods run it on the store's own event loop."""

    filter_cases = 40

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        client = AsyncQdrantClient(location=":memory:")
        return lambda: QdrantStore(QdrantStoreConfig(client=client))


class TestAsyncClientInFolder(VectorStoreConformance):
    """The async client on the local mode in a folder, owned by the store (built from a
    ready client per store object, closed after each)."""

    filter_cases = 15

    @pytest.fixture
    def make_store(self, local_folder: Path) -> StoreFactory:
        folder = str(local_folder)
        return lambda: _AsyncFolderStore(folder)


class _AsyncFolderStore(QdrantStore):
    """A store over its own AsyncQdrantClient(path=...), closed with the store (the local
    mode lets one client at a time open a folder)."""

    def __init__(self, folder: str) -> None:
        self._own = AsyncQdrantClient(path=folder)
        super().__init__(QdrantStoreConfig(client=self._own))

    def close(self) -> None:
        was_closed = self._closed
        super().close()
        if not was_closed:
            import asyncio

            asyncio.run(self._own.close())


class TestPackage(PluginPackageConformance):
    distribution = "memsift-qdrant"
    providers = {"vector_store": ["qdrant"]}
    heavy_modules = ("qdrant_client", "grpc", "httpx")
