"""The config: the seed-shaped flat keys, the nested llm that overrides them, every key
checked (here and in the llm provider's config), prompts validated, no secret shown."""

from __future__ import annotations

from typing import Any

import pytest
from llm_fakes import API_KEY
from memsift_llm import LLMReranker, LLMRerankerConfig

from memsift import ConfigError, MemoryConfig
from memsift.testing import assert_secret_absent

SEED = {"provider": "openai", "model": "gpt-5-mini", "api_key": API_KEY, "top_k": 5}


def config(**options: Any) -> LLMRerankerConfig:
    built = MemoryConfig.from_dict({"reranker": {"provider": "llm_reranker", "config": options}})
    assert built.reranker is not None
    cfg = built.reranker.config
    assert isinstance(cfg, LLMRerankerConfig)
    return cfg


def test_the_seed_config_and_its_defaults() -> None:
    cfg = config(**SEED)
    assert (cfg.top_k, cfg.temperature, cfg.max_tokens, cfg.mode) == (5, 0.0, None, "pointwise")
    assert (cfg.max_concurrency, cfg.window_size, cfg.step) == (8, 20, 10)
    assert cfg.cache_size == 1024, "every candidate costs a request: the cache is on"
    llm = cfg.llm_section()
    assert llm.provider == "openai"
    assert llm.config.model == "gpt-5-mini"
    assert llm.config.api_key.get_secret_value() == API_KEY
    reranker = LLMReranker(cfg)
    assert reranker.model_name == "gpt-5-mini"
    assert cfg.call_temperature() == 0.0


def test_the_nested_llm_overrides_the_flat_keys() -> None:
    nested = {
        "provider": "openai",
        "config": {"model": "other", "base_url": "http://127.0.0.1:9/v1"},
    }
    cfg = config(**SEED, llm=nested, temperature=0.3, max_tokens=5)
    llm = cfg.llm_section().config
    assert llm.model == "other" and llm.base_url == "http://127.0.0.1:9/v1"
    assert llm.api_key.get_secret_value() == API_KEY
    assert (cfg.call_temperature(), cfg.call_max_tokens()) == (0.3, 5)
    cfg = config(
        **SEED, llm={"provider": "openai", "config": {"temperature": 0.7, "max_tokens": 9}}
    )
    assert (cfg.call_temperature(), cfg.call_max_tokens()) == (None, None), (
        "the nested config's own temperature and max_tokens win"
    )


def test_an_unknown_key_is_an_error_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        config(**SEED, windows=3)
    text = str(info.value)
    assert "unknown key 'windows'" in text
    for key in ("mode", "max_concurrency", "window_size", "step", "max_document_chars", "llm"):
        assert key in text


def test_an_unknown_key_in_the_nested_llm_config_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'base_uri' in llm\.config"):
        config(**SEED, llm={"provider": "openai", "config": {"base_uri": "http://x"}})
    with pytest.raises(ConfigError, match="unknown key 'extra'"):
        config(**SEED, llm={"provider": "openai", "config": {}, "extra": 1})


def test_an_llm_provider_that_is_not_installed_is_named() -> None:
    with pytest.raises(ConfigError, match="no_such_llm"):
        config(provider="no_such_llm")


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("Rate {doc} for {query}", "unknown placeholder {doc}"),
        ("Rate {document} for {query} in {language}", "unknown placeholder {language}"),
        ("Rate {} for {query} {document}", "unknown placeholder {}"),
        ("Rate {document}", "must contain {query}"),
        ("Rate {document:>10} for {query}", "without a format"),
        ("Rate {document} for {query", "not a valid template"),
    ],
)
def test_a_custom_prompt_with_unknown_placeholders_is_a_config_error(
    prompt: str, words: str
) -> None:
    with pytest.raises(ConfigError, match="scoring_prompt") as info:
        config(**SEED, scoring_prompt=prompt)
    assert words in str(info.value)


def test_a_valid_custom_prompt_is_kept() -> None:
    prompt = "Does {document} answer {query}? JSON like {{}} is fine."
    assert config(**SEED, scoring_prompt=prompt).scoring_prompt == prompt


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"mode": "pairwise"}, "mode"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"window_size": 10, "step": 10}, "must be smaller than window_size"),
        ({"temperature": 3}, "temperature"),
        ({"max_document_chars": 1}, "max_document_chars"),
        ({"mode": "listwise", "scoring_prompt": "{query} {document}"}, "pointwise prompt"),
    ],
)
def test_bad_values_are_config_errors(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        config(**SEED, **options)


def test_no_secret_in_reprs_dumps_or_errors() -> None:
    nested = {
        "provider": "openai",
        "config": {"api_key": API_KEY, "base_url": "http://127.0.0.1:9/v1"},
    }
    for options in ({**SEED}, {**SEED, "api_key": None, "llm": nested}):
        options = {k: v for k, v in options.items() if v is not None}
        cfg = config(**options)
        for text in (repr(cfg), str(cfg), repr(LLMReranker(cfg))):
            assert API_KEY not in text
        dumped = MemoryConfig.from_dict(
            {"reranker": {"provider": "llm_reranker", "config": options}}
        ).to_dict()
        assert API_KEY not in str(dumped)
    with pytest.raises(ConfigError) as info:
        config(**SEED, llm={"provider": "openai", "config": {"api_key": API_KEY, "timeout": -1}})
    assert_secret_absent(info.value, API_KEY)


def test_a_dumped_config_loads_again_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dumped = MemoryConfig.from_dict(
        {"reranker": {"provider": "llm_reranker", "config": {**SEED, "mode": "listwise"}}}
    ).to_dict()
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    again = MemoryConfig.from_dict(dumped).reranker
    assert again is not None and again.config.mode == "listwise"
    llm = again.config.llm_section().config
    assert llm.api_key.get_secret_value() == API_KEY


def test_a_flat_key_the_llm_provider_lacks_is_an_error(fake_llm_provider: str) -> None:
    with pytest.raises(ConfigError, match="takes no 'api_key'"):
        config(provider=fake_llm_provider, api_key=API_KEY)
