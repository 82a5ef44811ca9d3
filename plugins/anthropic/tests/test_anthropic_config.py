"""The config: defaults, bounds, the key and base URL from the environment, in MemoryConfig."""

from __future__ import annotations

import typing

import pytest
from fake_anthropic_api import API_KEY
from pydantic import ValidationError

from memsift import ConfigError, MemoryConfig
from memsift_anthropic import AnthropicConfig
from memsift_anthropic.config import DEFAULT_MAX_TOKENS, DEFAULT_MODEL


def test_defaults() -> None:
    cfg = AnthropicConfig(api_key=API_KEY)
    assert cfg.model == DEFAULT_MODEL
    assert cfg.base_url is None
    assert cfg.timeout == 60.0
    assert cfg.max_retries == 2
    assert cfg.max_retry_wait == 30.0
    assert cfg.max_tokens == DEFAULT_MAX_TOKENS == 1024
    assert cfg.temperature is None
    assert cfg.json_prefill is False and cfg.structured_outputs is False


def test_the_default_model_is_one_the_sdk_names_and_not_deprecated() -> None:
    from anthropic.types import Model

    deprecated = getattr(pytest.importorskip("anthropic._data"), "DEPRECATED_MODELS", {})

    literal = next(a for a in typing.get_args(Model) if typing.get_origin(a) is typing.Literal)
    assert DEFAULT_MODEL in typing.get_args(literal)
    assert DEFAULT_MODEL not in deprecated


def test_the_key_is_required_and_named_with_its_variable() -> None:
    with pytest.raises(ValidationError, match="ANTHROPIC_API_KEY"):
        AnthropicConfig()
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        MemoryConfig.from_dict({"llm": {"provider": "anthropic"}})


def test_the_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8000/")
    cfg = AnthropicConfig()
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == API_KEY
    assert cfg.base_url == "http://127.0.0.1:8000"
    given = AnthropicConfig(api_key="sk-other", base_url="https://example.test")
    assert given.api_key is not None and given.api_key.get_secret_value() == "sk-other"
    assert given.base_url == "https://example.test"


def test_a_masked_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="masked placeholder"):
        AnthropicConfig(api_key="**********")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("base_url", "api.anthropic.com"),
        ("timeout", 0),
        ("timeout", 601),
        ("max_retries", -1),
        ("max_retries", 11),
        ("max_retry_wait", -1),
        ("max_tokens", 0),
        ("temperature", 1.5),
        ("temperature", -0.1),
        ("model", ""),
    ],
)
def test_bounds(key: str, value: object) -> None:
    with pytest.raises(ValidationError):
        AnthropicConfig(api_key=API_KEY, **{key: value})  # type: ignore[arg-type]


def test_an_unknown_key_is_an_error_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        MemoryConfig.from_dict(
            {"llm": {"provider": "anthropic", "config": {"api_key": API_KEY, "top_p": 0.9}}}
        )
    message = str(info.value)
    assert "top_p" in message
    assert "max_tokens" in message and "temperature" in message


def test_in_a_memory_config() -> None:
    config = MemoryConfig.from_dict(
        {
            "llm": {
                "provider": "anthropic",
                "config": {"api_key": API_KEY, "model": "claude-haiku-5-5", "max_tokens": 256},
            }
        }
    )
    assert config.llm is not None
    assert isinstance(config.llm.config, AnthropicConfig)
    assert config.llm.config.model == "claude-haiku-5-5"
    assert config.llm.config.max_tokens == 256
