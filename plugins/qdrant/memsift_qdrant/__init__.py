"""memsift-qdrant: the vector store ``qdrant``, on the official ``qdrant-client``.

A Qdrant server (``url`` or ``host``) or qdrant-client's local mode (``path``: a folder, or
``":memory:"``), or a ready ``client``. Registering the store imports nothing of
``qdrant_client``; building one does.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from memsift import ProviderRegistrar, VectorStore, hookimpl
from memsift_qdrant.config import QdrantStoreConfig
from memsift_qdrant.store import QdrantStore

try:
    __version__ = _metadata.version("memsift-qdrant")
except _metadata.PackageNotFoundError:  # pragma: no cover - an uninstalled tree
    __version__ = "0+unknown"


@hookimpl
def register_vector_stores(registry: ProviderRegistrar[VectorStore]) -> None:
    registry.register(
        "qdrant",
        QdrantStore,
        QdrantStoreConfig,
        description="Qdrant: a server (url, host) or the client's local mode (path); exact "
        "filtered search",
    )


__all__ = ["QdrantStore", "QdrantStoreConfig", "__version__", "register_vector_stores"]
