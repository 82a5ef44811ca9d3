"""The config of the ``qdrant`` store: mem0's keys, and exactly one way to connect.

Importing this module imports nothing of ``qdrant_client``: a ready ``client`` is checked
against the classes of ``qdrant_client`` only when that module is already imported (it must
be, for such a client to exist).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

import memsift

#: Where ``api_key`` comes from when the config does not give it.
API_KEY_ENV = ("QDRANT_API_KEY",)
#: ``path`` of the local mode that keeps everything in this process's memory.
MEMORY_PATH = ":memory:"
#: The ways to connect; a config gives exactly one of them.
CONNECTIONS = ("url", "host", "path", "client")
#: Keys that only mean something for a connection to a server (``url`` or ``host``).
SERVER_KEYS = ("port", "api_key", "https", "prefer_grpc", "timeout")

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,254}$")
_CHOICES = (
    "url (a Qdrant server, e.g. 'http://localhost:6333'), host (a server's host name, with "
    "port, default 6333), path (the local mode in this process: a folder, or ':memory:'), "
    "or client (a ready qdrant_client.QdrantClient or AsyncQdrantClient)"
)


class QdrantStoreConfig(memsift.VectorStoreConfig):
    """Config of the ``qdrant`` store (the keys of mem0's Qdrant config, and a few more)."""

    collection_name: str = Field(default="memsift", description="the Qdrant collection")
    embedding_model_dims: int | None = Field(
        default=None, ge=1, le=65536, description="vector dimension; must match the embedder"
    )
    url: str | None = Field(default=None, description="URL of a Qdrant server")
    host: str | None = Field(default=None, description="host name of a Qdrant server")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="REST port of the server (default 6333)"
    )
    api_key: SecretStr | None = Field(
        default_factory=memsift.env_secret(*API_KEY_ENV),
        description="API key of the server (default: $QDRANT_API_KEY)",
    )
    https: bool | None = Field(default=None, description="use HTTPS to reach the server")
    prefer_grpc: bool = Field(default=False, description="talk to the server over gRPC")
    timeout: float | None = Field(
        default=None, gt=0, description="seconds a request to the server may take"
    )
    path: str | None = Field(
        default=None, description="local mode: the folder of the data, or ':memory:'"
    )
    on_disk: bool = Field(
        default=False, description="keep the vectors on disk (memory-mapped) on the server"
    )
    exact: bool = Field(
        default=True,
        description="exact search over the filtered points; false: Qdrant's HNSW (approximate)",
    )
    client: Any = Field(
        default=None,
        exclude=True,
        description="a ready QdrantClient or AsyncQdrantClient (memsift does not close it)",
    )

    @field_validator("collection_name")
    @classmethod
    def _check_collection(cls, value: str) -> str:
        if not _COLLECTION_RE.match(value):
            raise ValueError(
                "collection_name must be 1-255 letters, digits, '_', '-' or '.', starting "
                "with a letter, a digit or '_'"
            )
        return value

    @field_validator("url", "host", "path")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave the key out instead)")
        return value

    @field_validator("client")
    @classmethod
    def _check_client(cls, value: Any) -> Any:
        if value is None:
            return None
        if client_kind(value) is None:
            raise ValueError(
                "client must be a qdrant_client.QdrantClient or qdrant_client.AsyncQdrantClient, "
                f"got {type(value).__module__}.{type(value).__qualname__}"
            )
        return value

    @model_validator(mode="after")
    def _one_connection(self) -> QdrantStoreConfig:
        given = [name for name in CONNECTIONS if getattr(self, name) is not None]
        if not given:
            raise ValueError(f"say how to reach Qdrant: give exactly one of {_CHOICES}")
        if len(given) > 1:
            raise ValueError(
                f"{' and '.join(given)} are each a way to connect to Qdrant; give exactly one "
                f"of {_CHOICES}"
            )
        if given[0] in ("path", "client"):
            # api_key read from $QDRANT_API_KEY is simply not used without a server
            stray = [k for k in SERVER_KEYS if k in self.model_fields_set and _is_set(self, k)]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} only apply to a Qdrant server (url or host), not to "
                    f"{given[0]}; leave {'them' if len(stray) > 1 else 'it'} out"
                )
        return self

    # ------------------------------------------------------------------ helpers

    @property
    def connection(self) -> str:
        """Which way to connect this config gives: ``url``, ``host``, ``path`` or ``client``."""
        return next(name for name in CONNECTIONS if getattr(self, name) is not None)

    @property
    def in_memory(self) -> bool:
        """Whether this is the local mode that keeps its data in this process's memory."""
        return self.path == MEMORY_PATH

    def local_folder(self) -> Path | None:
        """The folder of the local mode's data, or None (in memory, a server, a client)."""
        if self.path is None or self.in_memory:
            return None
        return Path(self.path).expanduser()

    def server_options(self) -> dict[str, Any]:
        """The keyword arguments of ``QdrantClient`` / ``AsyncQdrantClient`` for this config."""
        if self.path is not None:
            return {"location": MEMORY_PATH} if self.in_memory else {"path": self.path}
        options: dict[str, Any] = {"url": self.url} if self.url is not None else {}
        if self.host is not None:
            options["host"] = self.host
        if self.port is not None:
            options["port"] = self.port
        if self.api_key is not None and self.api_key.get_secret_value():
            options["api_key"] = self.api_key.get_secret_value()
        if self.https is not None:
            options["https"] = self.https
        if self.prefer_grpc:
            options["prefer_grpc"] = True
        if self.timeout is not None:
            # the clients take whole seconds; never round a short timeout down to none
            options["timeout"] = max(1, round(self.timeout))
        return options

    def where(self) -> str:
        """The server or folder this config reaches, for messages (never the API key)."""
        if self.url is not None:
            return self.url
        if self.host is not None:
            return f"{self.host}:{self.port or 6333}"
        if self.path is not None:
            return "local mode in memory" if self.in_memory else f"local mode in {self.path}"
        return "the given client"


def _is_set(config: QdrantStoreConfig, key: str) -> bool:
    value = getattr(config, key)
    return value is not None and value is not False


def client_kind(client: Any) -> str | None:
    """``"sync"`` for a ``QdrantClient``, ``"async"`` for an ``AsyncQdrantClient``, else None."""
    module = sys.modules.get("qdrant_client")
    if module is None:
        return None
    if isinstance(client, module.QdrantClient):
        return "sync"
    if isinstance(client, module.AsyncQdrantClient):
        return "async"
    return None


__all__ = ["API_KEY_ENV", "CONNECTIONS", "MEMORY_PATH", "QdrantStoreConfig", "client_kind"]
