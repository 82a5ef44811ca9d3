"""The config: exactly one way to connect, mem0's keys, secrets kept out of messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

import memsift
from memsift import ConfigError, EmbedderIdentity, EmbedderMismatchError, StoreError
from memsift_qdrant import QdrantStore, QdrantStoreConfig

IDENTITY = EmbedderIdentity(provider="test", model="unit", dims=4)


def _config(**section: object) -> memsift.MemoryConfig:
    return memsift.MemoryConfig.from_dict(
        {"vector_store": {"provider": "qdrant", "config": section}}
    )


def test_the_full_stack_setup_of_mem0_users_is_accepted() -> None:
    config = _config(host="localhost", port=6333)
    cfg = config.vector_store.config
    assert isinstance(cfg, QdrantStoreConfig)
    assert cfg.connection == "host" and cfg.server_options() == {"host": "localhost", "port": 6333}
    assert memsift.registry.get_provider("vector_store", "qdrant").factory is QdrantStore


@pytest.mark.parametrize(
    "section",
    [
        {"url": "http://localhost:6333", "host": "localhost"},
        {"host": "localhost", "path": "/tmp/q"},
        {"url": "http://localhost:6333", "path": ":memory:"},
    ],
)
def test_two_ways_to_connect_are_an_error_naming_the_choices(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**section)
    text = str(info.value)
    assert "give exactly one of" in text
    for choice in ("url", "host", "path", "client"):
        assert choice in text


def test_no_way_to_connect_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"say how to reach Qdrant.*url.*host.*path.*client"):
        _config(collection_name="memories")


def test_server_keys_are_refused_in_the_local_mode() -> None:
    with pytest.raises(ConfigError, match="only apply to a Qdrant server"):
        _config(path=":memory:", api_key="k", prefer_grpc=True)


def test_unknown_keys_and_bad_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'hots'.*valid keys: .*host"):
        _config(hots="localhost")
    with pytest.raises(ConfigError, match="collection_name"):
        _config(path=":memory:", collection_name="a/b")
    with pytest.raises(ConfigError, match="port"):
        _config(host="h", port=70000)
    with pytest.raises(ConfigError, match="client must be a qdrant_client"):
        _config(client=object())


def test_the_api_key_comes_from_the_environment_and_stays_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret-key")
    config = _config(url="https://qdrant.example:6333")
    cfg = config.vector_store.config
    assert isinstance(cfg, QdrantStoreConfig)
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "s3cret-key"
    assert "s3cret-key" not in repr(config) and "s3cret-key" not in str(config.to_dict())
    assert cfg.server_options()["api_key"] == "s3cret-key"
    # read from the environment, the key does not trouble the local mode
    assert _config(path=":memory:").vector_store.config.path == ":memory:"


def test_a_ready_client_is_used_and_left_open(tmp_path: Path) -> None:
    client = QdrantClient(location=":memory:")
    config = _config(client=client, collection_name="given")
    assert "client" not in config.to_dict()["vector_store"]["config"]
    store = QdrantStore(config.vector_store.config)
    store.open(IDENTITY)
    store.close()
    assert client.collection_exists("given")  # still open, still there
    client.close()


def test_embedding_model_dims_must_match_the_embedder() -> None:
    store = QdrantStore(QdrantStoreConfig(path=":memory:", embedding_model_dims=8))
    with pytest.raises(ConfigError, match="embedding_model_dims is 8"):
        store.open(IDENTITY)
    store.close()


def test_a_collection_of_another_dimension_is_refused() -> None:
    client = QdrantClient(location=":memory:")
    client.create_collection(
        "memsift", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    store = QdrantStore(QdrantStoreConfig(client=client))
    with pytest.raises(EmbedderMismatchError, match="8-dimensional"):
        store.open(IDENTITY)
    store.close()


def test_a_collection_of_another_recorded_embedder_is_refused(tmp_path: Path) -> None:
    folder = str(tmp_path / "q")
    store = QdrantStore(QdrantStoreConfig(path=folder))
    store.open(IDENTITY)
    store.close()
    again = QdrantStore(QdrantStoreConfig(path=folder))
    with pytest.raises(EmbedderMismatchError, match="test/unit"):
        again.open(EmbedderIdentity(provider="other", model="model", dims=4))
    again.open(IDENTITY)  # the right one still opens it
    again.close()


def test_a_foreign_collection_is_adopted_only_when_empty() -> None:
    client = QdrantClient(location=":memory:")
    params = models.VectorParams(size=4, distance=models.Distance.COSINE)
    client.create_collection("empty", vectors_config=params)
    store = QdrantStore(QdrantStoreConfig(client=client, collection_name="empty"))
    store.open(IDENTITY)  # recorded now
    meta = client.get_collection("empty").config.metadata or {}
    assert meta["memsift"]["embedder_model"] == "unit"
    client.create_collection("theirs", vectors_config=params)
    client.upsert("theirs", [models.PointStruct(id=1, vector=[1, 0, 0, 0], payload={"a": 1})])
    other = QdrantStore(QdrantStoreConfig(client=client, collection_name="theirs"))
    with pytest.raises(StoreError, match="1 points that memsift did not write"):
        other.open(IDENTITY)
    client.create_collection(
        "euclid", vectors_config=models.VectorParams(size=4, distance="Euclid")
    )
    third = QdrantStore(QdrantStoreConfig(client=client, collection_name="euclid"))
    with pytest.raises(StoreError, match="cosine"):
        third.open(IDENTITY)


def test_one_folder_one_client_is_a_clear_store_error(tmp_path: Path) -> None:
    folder = str(tmp_path / "q")
    first = QdrantStore(QdrantStoreConfig(path=folder))
    try:
        with pytest.raises(StoreError, match="one client per folder"):
            QdrantStore(QdrantStoreConfig(path=folder))
    finally:
        first.close()


def test_an_unreachable_server_is_a_store_error_that_says_where() -> None:
    store = QdrantStore(QdrantStoreConfig(url="http://127.0.0.1:9", timeout=2))
    try:
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:9.*running and reachable") as info:
            store.open(IDENTITY)
        assert info.value.__cause__ is None and info.value.__context__ is None
    finally:
        store.close()


def test_closed_and_unopened_stores_say_so() -> None:
    store = QdrantStore(QdrantStoreConfig(path=":memory:"))
    with pytest.raises(StoreError, match="call open"):
        store.get("x")
    store.open(IDENTITY)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.search(np.ones(4, dtype=np.float32), filters=memsift.filters.MatchAll(), limit=1)


def test_data_directory_is_the_local_folder(tmp_path: Path) -> None:
    assert QdrantStoreConfig(path=str(tmp_path)).local_folder() == tmp_path
    store = QdrantStore(QdrantStoreConfig(path=":memory:"))
    assert store.data_directory is None
    store.close()
    server = QdrantStore(QdrantStoreConfig(host="localhost"))
    assert server.data_directory is None
    server.close()
