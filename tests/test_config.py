"""Configuration: ``MemoryConfig.from_dict`` and ``Memory.from_config`` refuse every
mistake loudly (unknown keys with their path and the valid keys, unknown providers with
what is installed and what to install, wrong types, missing secrets) and never print a
secret.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

import memsift
from memsift import plugins, registry
from memsift.builtin.bm25 import BM25Config
from memsift.builtin.faiss import FaissStoreConfig
from memsift.builtin.minilm import MiniLMConfig
from memsift.config import MemoryConfig, ProviderSection
from memsift.errors import ConfigError, ProviderNotFoundError
from memsift.interfaces import PROVIDER_KINDS, ProviderKind, Reranker, check_rerank_input
from memsift.registry import KIND_LABEL, KNOWN_DISTRIBUTIONS, ProviderRegistrar

SECRET_ENV = "MEMSIFT_TEST_KEY"
SECRET = "sk-test-9f8e7d6c5b4a-do-not-print"


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.delenv("MEMSIFT_TESTPLUGIN_FAIL_IMPORT", raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


def error_of(config: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        MemoryConfig.from_dict(config)
    return caught.value


def valid_keys_part(message: str) -> list[str]:
    """The keys listed after ``valid keys:`` on the message's (single) problem line."""
    tail = message.split("valid keys: ", 1)[1].splitlines()[0]
    return [k.strip() for k in tail.split(",")]


# --------------------------------------------------------------------------- a keyed provider


class RetryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tries: int = Field(default=3, ge=1)
    backoff: float = Field(default=0.5, ge=0)


class KeyedConfig(memsift.RerankerConfig):
    """A hosted-style reranker config: the key comes from the config or MEMSIFT_TEST_KEY."""

    model: str = "keyed-v1"
    api_key: SecretStr | None = Field(default_factory=memsift.env_secret(SECRET_ENV))
    retry: RetryOptions = Field(default_factory=RetryOptions)

    @field_validator("api_key")
    @classmethod
    def _key_is_required(cls, value: SecretStr | None) -> SecretStr:
        key = memsift.require_secret(value, "api_key", (SECRET_ENV,))
        if key.get_secret_value() != key.get_secret_value().strip():
            raise ValueError("api_key has leading or trailing whitespace")
        return key


class KeyedReranker(Reranker):
    config: KeyedConfig

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return [0.5] * len(check_rerank_input(query, documents))


class KeyedPlugin:
    @memsift.hookimpl
    def register_rerankers(self, registry: ProviderRegistrar) -> None:
        registry.register("keyed", KeyedReranker, KeyedConfig, description="needs a key")


@pytest.fixture
def keyed() -> None:
    """Install the ``keyed`` reranker for one test (the autouse fixture drops it after)."""
    plugins.get_plugin_host().manager.register(KeyedPlugin(), name="memsift-keyed")
    registry.forget()


def keyed_config(**config: Any) -> dict[str, Any]:
    return {"reranker": {"provider": "keyed", "config": config}}


def assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert SECRET[:12] not in text


# --------------------------------------------------------------------------- defaults & round trip


@pytest.mark.parametrize("empty", [{}, None], ids=["empty-dict", "none"])
def test_empty_config_gives_the_embedded_default(empty: dict[str, Any] | None) -> None:
    cfg = MemoryConfig.from_dict(empty)
    assert cfg.vector_store.provider == "faiss"
    assert isinstance(cfg.vector_store.config, FaissStoreConfig)
    assert cfg.embedder.provider == "minilm"
    assert isinstance(cfg.embedder.config, MiniLMConfig)
    assert cfg.llm is None
    assert cfg.reranker is None
    assert cfg.history_db_path is None
    assert cfg.spec("vector_store") == registry.get_vector_store("faiss")
    assert cfg.spec("reranker") is None


def test_provider_configs_are_validated_into_their_models() -> None:
    cfg = MemoryConfig.from_dict(
        {"reranker": {"provider": "bm25", "config": {"weight": 0.6, "top_k": 30}}}
    )
    assert cfg.reranker is not None
    assert isinstance(cfg.reranker.config, BM25Config)
    assert cfg.reranker.config.weight == 0.6
    assert cfg.reranker.config.top_k == 30
    # a section without "config" gets the model's defaults
    bare = MemoryConfig.from_dict({"reranker": {"provider": "bm25"}})
    assert bare.reranker is not None and bare.reranker.config == BM25Config()


def test_round_trip_through_to_dict(tmp_path: Path) -> None:
    cfg = MemoryConfig.from_dict(
        {
            "vector_store": {
                "provider": "faiss",
                "config": {"path": str(tmp_path / "s"), "index": "hnsw", "hnsw_m": 16},
            },
            "embedder": {"provider": "minilm", "config": {"max_length": 128}},
            "llm": {"provider": "echo"},
            "reranker": {"provider": "bm25", "config": {"weight": 0.4, "on_error": "raise"}},
            "history_db_path": str(tmp_path / "history.db"),
        }
    )
    data = cfg.to_dict()
    json.dumps(data)  # plain data
    again = MemoryConfig.from_dict(data)
    assert again == cfg
    assert again.to_dict() == data
    assert data["reranker"]["config"]["weight"] == 0.4
    assert data["history_db_path"] == str(tmp_path / "history.db")


def test_from_dict_accepts_a_config_object() -> None:
    cfg = MemoryConfig.from_dict({"reranker": {"provider": "bm25"}})
    assert MemoryConfig.from_dict(cfg) == cfg
    built = MemoryConfig(reranker=ProviderSection(provider="bm25", config={"weight": 0.2}))
    resolved = MemoryConfig.from_dict(built)
    assert resolved.reranker is not None
    assert isinstance(resolved.reranker.config, BM25Config)
    assert resolved.reranker.config.weight == 0.2


def test_configs_are_immutable() -> None:
    cfg = MemoryConfig.from_dict({"reranker": {"provider": "bm25"}})
    with pytest.raises(ValueError):
        cfg.history_db_path = "elsewhere.db"
    assert cfg.reranker is not None
    with pytest.raises(ValueError):
        cfg.reranker.config.weight = 0.9


# --------------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key() -> None:
    message = str(error_of({"rerankr": {"provider": "bm25"}}))
    assert "unknown key 'rerankr' in config" in message
    assert valid_keys_part(message) == sorted(MemoryConfig.model_fields)


def test_unknown_section_key() -> None:
    message = str(error_of({"reranker": {"provider": "bm25", "confg": {"weight": 0.3}}}))
    assert "unknown key 'confg' in reranker" in message
    assert valid_keys_part(message) == ["config", "provider"]


@pytest.mark.parametrize(
    ("kind", "provider", "bad_key"),
    [
        ("reranker", "bm25", "wieght"),
        ("vector_store", "faiss", "pth"),
        ("embedder", "minilm", "modeldir"),
        ("llm", "echo", "temperature"),
    ],
)
def test_unknown_provider_config_key(kind: ProviderKind, provider: str, bad_key: str) -> None:
    message = str(error_of({kind: {"provider": provider, "config": {bad_key: 0.3}}}))
    assert f"unknown key {bad_key!r} in {kind}.config" in message
    assert repr(provider) in message
    model = registry.get_provider(kind, provider).config_model
    assert valid_keys_part(message) == sorted(model.model_fields)


def test_unknown_key_in_a_nested_provider_model(keyed: None) -> None:
    message = str(error_of(keyed_config(api_key=SECRET, retry={"tries": 2, "bakcoff": 1})))
    assert "unknown key 'bakcoff' in reranker.config.retry" in message
    assert valid_keys_part(message) == ["backoff", "tries"]


def test_several_problems_are_reported_one_per_line() -> None:
    message = str(
        error_of({"vector_store": {"provider": "faiss", "config": {"pth": "x", "index": "ivf"}}})
    )
    lines = message.splitlines()
    assert len(lines) == 3  # the heading and one line per problem
    assert any("unknown key 'pth' in vector_store.config" in ln for ln in lines)
    assert any(ln.strip().startswith("vector_store.config.index:") for ln in lines)


# --------------------------------------------------------------------------- unknown providers


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_unknown_provider_lists_the_installed_ones(kind: ProviderKind) -> None:
    with pytest.raises(ProviderNotFoundError) as caught:
        MemoryConfig.from_dict({kind: {"provider": "qqq_unheard_of"}})
    message = str(caught.value)
    label = KIND_LABEL[kind]
    assert f"{label} 'qqq_unheard_of' is not installed" in message
    installed = [spec.name for spec in registry.list_providers(kind)]
    assert installed, f"no {label} installed at all?"
    assert f"installed {label}s: {', '.join(installed)}" in message
    listed = message.split(f"installed {label}s: ", 1)[1].split(", ")
    assert listed == installed  # only this kind's providers
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(("kind", "name"), sorted(KNOWN_DISTRIBUTIONS), ids=lambda v: str(v))
def test_known_provider_not_installed_says_what_to_install(kind: ProviderKind, name: str) -> None:
    if name in {spec.name for spec in registry.list_providers(kind)}:
        pytest.skip(f"{KNOWN_DISTRIBUTIONS[kind, name]} is installed here")
    with pytest.raises(ProviderNotFoundError) as caught:
        MemoryConfig.from_dict({kind: {"provider": name}})
    message = str(caught.value)
    assert f"{KIND_LABEL[kind]} {name!r} is not installed: " in message
    assert f"pip install {KNOWN_DISTRIBUTIONS[kind, name]}" in message


def test_cohere_not_installed_says_pip_install_memsift_cohere() -> None:
    if "cohere" in {spec.name for spec in registry.list_providers("reranker")}:
        pytest.skip("memsift-cohere is installed here")
    message = str(error_of({"reranker": {"provider": "cohere", "config": {}}}))
    assert "reranker 'cohere' is not installed: pip install memsift-cohere" in message


@pytest.mark.parametrize(
    ("kind", "typo", "meant"),
    [
        ("reranker", "bm52", "bm25"),
        ("reranker", "scriptd", "scripted"),
        ("vector_store", "fiass", "faiss"),
        ("embedder", "minlm", "minilm"),
    ],
)
def test_provider_typo_gets_a_suggestion(kind: ProviderKind, typo: str, meant: str) -> None:
    with pytest.raises(ProviderNotFoundError, match=f"did you mean {meant!r}"):
        MemoryConfig.from_dict({kind: {"provider": typo}})


def test_no_suggestion_for_a_name_unlike_any_provider() -> None:
    message = str(error_of({"reranker": {"provider": "qqq_unheard_of"}}))
    assert "did you mean" not in message


# --------------------------------------------------------------------------- wrong shapes & types


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
@pytest.mark.parametrize("section", ["bm25", ["bm25"], 5, True], ids=repr)
def test_section_that_is_not_a_dict(kind: ProviderKind, section: Any) -> None:
    message = str(error_of({kind: section}))
    assert f"config[{kind!r}] must be a dict" in message
    assert type(section).__name__ in message


@pytest.mark.parametrize("config", ["weight=0.3", [0.3], 0.3], ids=repr)
def test_provider_config_that_is_not_a_dict(config: Any) -> None:
    message = str(error_of({"reranker": {"provider": "bm25", "config": config}}))
    assert "reranker.config must be a dict" in message
    assert type(config).__name__ in message


@pytest.mark.parametrize("config", [[], "faiss", 3], ids=repr)
def test_whole_config_that_is_not_a_dict(config: Any) -> None:
    assert "the config must be a dict" in str(error_of(config))


def test_section_without_provider() -> None:
    message = str(error_of({"reranker": {"config": {"weight": 0.3}}}))
    assert "missing required key 'reranker.provider'" in message


def _bm25(**config: Any) -> dict[str, Any]:
    return {"reranker": {"provider": "bm25", "config": config}}


@pytest.mark.parametrize(
    ("config", "path", "hint"),
    [
        pytest.param(_bm25(weight="heavy"), "reranker.config.weight", "number", id="str-for-float"),
        pytest.param(
            _bm25(weight=3), "reranker.config.weight", "less than or equal to 1", id="max"
        ),
        pytest.param(
            _bm25(top_k=0), "reranker.config.top_k", "greater than or equal to 1", id="min"
        ),
        pytest.param(
            _bm25(on_error="explode"),
            "reranker.config.on_error",
            "'fallback' or 'raise'",
            id="enum",
        ),
        pytest.param({"reranker": {"provider": 25}}, "reranker.provider", "string", id="provider"),
        pytest.param(
            {"embedder": {"provider": "minilm", "config": {"max_length": 4096}}},
            "embedder.config.max_length",
            "512",
            id="embedder",
        ),
        pytest.param(
            {"vector_store": {"provider": "faiss", "config": {"collection_name": "../etc"}}},
            "vector_store.config.collection_name",
            "collection_name must be",
            id="validator",
        ),
        pytest.param({"history_db_path": 5}, "history_db_path", "string", id="int-path"),
    ],
)
def test_wrong_types_name_the_path(config: dict[str, Any], path: str, hint: str) -> None:
    message = str(error_of(config))
    assert f"{path}: " in message
    assert hint in message


def test_bad_values_are_not_echoed() -> None:
    message = str(error_of({"reranker": {"provider": "bm25", "config": {"weight": "zebra-42"}}}))
    assert "zebra-42" not in message


# --------------------------------------------------------------------------- Memory.from_config


@pytest.mark.parametrize(
    ("config", "error", "expected"),
    [
        ({"rerankr": {}}, ConfigError, "unknown key 'rerankr'"),
        ({"reranker": {"provider": "bm25", "config": {"wieght": 0.3}}}, ConfigError, "'wieght'"),
        ({"reranker": {"provider": "nope_nope"}}, ProviderNotFoundError, "installed rerankers"),
        ({"vector_store": "faiss"}, ConfigError, "must be a dict"),
    ],
    ids=["top-level", "provider-config", "unknown-provider", "not-a-dict"],
)
@pytest.mark.parametrize("cls_name", ["Memory", "AsyncMemory"])
def test_memory_from_config_rejects_bad_configs_before_touching_disk(
    tmp_path: Path,
    _isolated_home: Path,
    config: dict[str, Any],
    error: type[Exception],
    expected: str,
    cls_name: str,
) -> None:
    cls = getattr(memsift, cls_name)
    store = tmp_path / "store"
    full = {"vector_store": {"provider": "faiss", "config": {"path": str(store)}}, **config}
    with pytest.raises(error, match=expected):
        cls.from_config(full)
    assert not store.exists()
    assert not _isolated_home.exists()


# --------------------------------------------------------------------------- secrets


def test_missing_secret_names_the_environment_variable(keyed: None) -> None:
    message = str(error_of(keyed_config()))
    assert "reranker.config.api_key" in message
    assert "missing secret 'api_key'" in message
    assert SECRET_ENV in message


def test_empty_secret_counts_as_missing(keyed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "")
    assert SECRET_ENV in str(error_of(keyed_config()))
    assert SECRET_ENV in str(error_of(keyed_config(api_key="")))


def test_secret_from_the_environment(keyed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    cfg = MemoryConfig.from_dict(keyed_config())
    assert cfg.reranker is not None
    assert isinstance(cfg.reranker.config, KeyedConfig)
    assert cfg.reranker.config.api_key is not None
    assert cfg.reranker.config.api_key.get_secret_value() == SECRET
    spec = cfg.spec("reranker")
    assert spec is not None
    built = spec.build(cfg.reranker.config)
    assert isinstance(built, KeyedReranker)
    assert built.config.api_key is not None
    assert built.config.api_key.get_secret_value() == SECRET


def test_secret_in_the_config_wins_over_the_environment(
    keyed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "from-the-environment")
    cfg = MemoryConfig.from_dict(keyed_config(api_key=SECRET))
    assert cfg.reranker is not None
    assert cfg.reranker.config.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("source", ["config", "environment"])
def test_secret_never_appears_in_reprs_or_dicts(
    keyed: None, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "environment":
        monkeypatch.setenv(SECRET_ENV, SECRET)
        cfg = MemoryConfig.from_dict(keyed_config())
    else:
        cfg = MemoryConfig.from_dict(keyed_config(api_key=SECRET))
    assert cfg.reranker is not None
    assert cfg.reranker.config.api_key.get_secret_value() == SECRET  # it is there...
    for text in (
        repr(cfg),
        str(cfg),
        repr(cfg.reranker),
        str(cfg.reranker.config),
        repr(cfg.reranker.config),
        f"{cfg}",
        json.dumps(cfg.to_dict()),
        cfg.model_dump_json(),
    ):
        assert_no_secret(text)  # ...and never shown
    assert "api_key" not in cfg.to_dict()["reranker"]["config"]  # left out, not masked


@pytest.mark.parametrize(
    "config",
    [
        {"api_key": SECRET, "modle": "keyed-v2"},
        {"api_key": SECRET, "top_k": -1},
        {"api_key": SECRET, "retry": {"tries": 0}},
        {"api_kye": SECRET},
        {"api_key": SECRET, "retry": "often"},
        {"api_key": f" {SECRET}\n"},
    ],
    ids=[
        "other-unknown-key",
        "other-bad-value",
        "nested-bad-value",
        "secret-under-typo",
        "nested-type",
        "secret-itself-rejected",
    ],
)
def test_secret_never_appears_in_config_errors(keyed: None, config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        MemoryConfig.from_dict({"reranker": {"provider": "keyed", "config": config}})
    assert_no_secret(str(caught.value))
    assert_no_secret(repr(caught.value))
    assert_no_secret("".join(traceback.format_exception(caught.value)))


def test_secret_never_appears_when_memory_from_config_fails(keyed: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        memsift.Memory.from_config(
            {
                "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "s")}},
                "reranker": {"provider": "keyed", "config": {"api_key": SECRET, "top_k": "x"}},
            }
        )
    assert "reranker.config.top_k" in str(caught.value)
    assert_no_secret("".join(traceback.format_exception(caught.value)))


def test_env_secret_reads_the_first_set_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = memsift.env_secret("MEMSIFT_TEST_FIRST", SECRET_ENV)
    monkeypatch.delenv("MEMSIFT_TEST_FIRST", raising=False)
    assert factory() is None
    monkeypatch.setenv(SECRET_ENV, "second")
    value = factory()
    assert isinstance(value, SecretStr) and value.get_secret_value() == "second"
    monkeypatch.setenv("MEMSIFT_TEST_FIRST", "first")
    value = factory()
    assert value is not None and value.get_secret_value() == "first"


def test_require_secret() -> None:
    given = SecretStr(SECRET)
    assert memsift.require_secret(given, "api_key", (SECRET_ENV,)) is given
    with pytest.raises(ValueError, match=f"missing secret 'token'.*{SECRET_ENV}"):
        memsift.require_secret(None, "token", (SECRET_ENV,))
    with pytest.raises(ValueError, match="missing secret 'token'") as caught:
        memsift.require_secret(SecretStr(""), "token", ())
    assert "environment" not in str(caught.value)
