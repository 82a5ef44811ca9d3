"""The configs: keys, defaults from the environment, the key rule, dimension rules, secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import memsift
from memsift import ConfigError
from memsift_openai import Capabilities, OpenAIEmbedderConfig, OpenAILLMConfig

KEY = "sk-config-test-secret-42"


def test_defaults() -> None:
    cfg = OpenAILLMConfig(api_key=KEY)
    assert cfg.model == "gpt-5-mini"
    assert cfg.base_url is None and cfg.timeout == 120.0 and cfg.max_retries == 2
    assert cfg.temperature is None and cfg.max_tokens is None
    assert cfg.capabilities == Capabilities()
    emb = OpenAIEmbedderConfig(api_key=KEY)
    assert emb.model == "text-embedding-3-small" and emb.batch_size == 2048
    assert emb.max_input_tokens == 8191 and emb.max_request_tokens == 300_000


def test_the_environment_fills_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    for cfg in (OpenAILLMConfig(), OpenAIEmbedderConfig()):
        assert cfg.api_key is not None and cfg.api_key.get_secret_value() == KEY
        assert cfg.base_url == "http://127.0.0.1:8080/v1"
        assert (cfg.organization, cfg.project) == ("org-1", "proj-1")


def test_openai_needs_a_key() -> None:
    with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
        OpenAILLMConfig()
    with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
        OpenAIEmbedderConfig(base_url="https://api.openai.com/v1")


def test_another_server_needs_none() -> None:
    cfg = OpenAILLMConfig(base_url="http://localhost:11434/v1")
    assert cfg.api_key is None


def test_a_masked_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="masked placeholder"):
        OpenAILLMConfig(api_key="**********")


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://host/v1", "http://"])
def test_a_bad_base_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        OpenAILLMConfig(api_key=KEY, base_url=url)


def test_mem0s_openai_base_url_is_accepted() -> None:
    cfg = OpenAILLMConfig.model_validate({"openai_base_url": "http://127.0.0.1:1/v1"})
    assert cfg.base_url == "http://127.0.0.1:1/v1"


def test_unknown_keys_are_errors_also_in_capabilities() -> None:
    with pytest.raises(ValidationError, match="temprature"):
        OpenAILLMConfig(api_key=KEY, temprature=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="json_mode"):
        OpenAILLMConfig(api_key=KEY, capabilities={"json_mode": True})


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"model": "text-embedding-ada-002", "dimensions": 256}, "does not take `dimensions`"),
        ({"model": "text-embedding-3-small", "dimensions": 2000}, "at most 1536"),
        ({"dimensions": 256, "embedding_model_dims": 512}, "disagree"),
        ({"model": "my-embedder", "dimensions": 128}, "only the text-embedding-3 models"),
    ],
)
def test_dimension_rules(options: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        OpenAIEmbedderConfig(api_key=KEY, **options)  # type: ignore[arg-type]


def test_dimensions_of_an_unknown_model_on_another_server() -> None:
    """vLLM serves matryoshka models that take ``dimensions``: the server decides."""
    cfg = OpenAIEmbedderConfig(model="my-embedder", dimensions=128, base_url="http://h:1/v1")
    assert cfg.request_dimensions() == 128 and cfg.expected_dims() == 128


def test_the_key_stays_out_of_reprs_and_dumps() -> None:
    cfg = OpenAILLMConfig(api_key=KEY)
    assert KEY not in repr(cfg) and KEY not in str(cfg)
    config = memsift.MemoryConfig.from_dict(
        {"llm": {"provider": "openai", "config": {"api_key": KEY}}}
    )
    assert KEY not in repr(config) and KEY not in str(config.to_dict())


def test_memory_config_sections() -> None:
    config = memsift.MemoryConfig.from_dict(
        {
            "llm": {"provider": "openai", "config": {"api_key": KEY, "temperature": 0}},
            "embedder": {"provider": "openai", "config": {"api_key": KEY, "dimensions": 256}},
        }
    )
    assert config.llm is not None and isinstance(config.llm.config, OpenAILLMConfig)
    assert config.embedder is not None and config.embedder.config.dimensions == 256
    with pytest.raises(ConfigError, match="max_token"):
        memsift.MemoryConfig.from_dict(
            {"llm": {"provider": "openai", "config": {"api_key": KEY, "max_token": 5}}}
        )
