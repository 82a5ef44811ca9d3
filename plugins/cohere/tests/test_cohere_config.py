"""The ``cohere`` config: defaults, environment variables, validation, secrets."""

from __future__ import annotations

import pytest
from fake_cohere_api import API_KEY, FakeCohereAPI

from memsift import ConfigError, MemoryConfig, RerankerConfig
from memsift_cohere import CohereConfig, CohereReranker


def _section(**config: object) -> MemoryConfig:
    return MemoryConfig.from_dict({"reranker": {"provider": "cohere", "config": config}})


def test_defaults() -> None:
    cfg = CohereConfig(api_key=API_KEY)
    assert isinstance(cfg, RerankerConfig)
    assert cfg.model == "rerank-v3.5"
    assert cfg.top_k is None
    assert cfg.timeout is None
    assert cfg.on_error == "fallback"
    assert cfg.cache_size == 1024
    assert cfg.base_url is None
    assert cfg.max_retries == 2
    assert cfg.max_tokens_per_doc is None
    assert cfg.return_documents is None


def test_every_key_is_accepted() -> None:
    cfg = _section(
        model="rerank-multilingual-v3.0",
        api_key=API_KEY,
        top_k=30,
        base_url="https://proxy.example.com/",
        timeout=5,
        max_retries=4,
        max_tokens_per_doc=1024,
        return_documents=False,
        on_error="raise",
        cache_size=0,
    ).reranker
    assert cfg is not None
    c = cfg.config
    assert (c.model, c.top_k, c.timeout, c.max_retries) == ("rerank-multilingual-v3.0", 30, 5, 4)
    assert c.base_url == "https://proxy.example.com"
    assert (c.max_tokens_per_doc, c.on_error, c.cache_size) == (1024, "raise", 0)


@pytest.mark.parametrize("name", ["CO_API_KEY", "COHERE_API_KEY"])
def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "from-env")
    cfg = CohereConfig()
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "from-env"


def test_co_api_key_wins_over_cohere_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "second")
    monkeypatch.setenv("CO_API_KEY", "first")
    cfg = CohereConfig()
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "first"


def test_a_missing_key_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        _section()
    text = str(info.value)
    assert "api_key" in text and "CO_API_KEY" in text and "COHERE_API_KEY" in text


def test_a_masked_key_is_refused() -> None:
    # a key copied from a printed config ("**********") must not be sent as a key
    with pytest.raises(ConfigError, match="masked"):
        _section(api_key="**********")


def test_a_dumped_config_loads_again_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dumped = _section(api_key=API_KEY, top_k=7).to_dict()
    assert API_KEY not in str(dumped)
    monkeypatch.setenv("CO_API_KEY", API_KEY)
    again = MemoryConfig.from_dict(dumped).reranker
    assert again is not None and again.config.top_k == 7
    assert again.config.api_key.get_secret_value() == API_KEY


def test_the_key_never_shows() -> None:
    cfg = _section(api_key=API_KEY)
    assert API_KEY not in repr(cfg)
    assert API_KEY not in str(cfg.to_dict())
    assert cfg.reranker is not None
    assert API_KEY not in repr(cfg.reranker.config)
    with pytest.raises(ConfigError) as info:
        _section(api_key=API_KEY, max_retries=-1)
    assert API_KEY not in str(info.value)


def test_base_url_comes_from_co_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_URL", "http://127.0.0.1:1234/")
    assert CohereConfig(api_key=API_KEY).base_url == "http://127.0.0.1:1234"
    assert (
        CohereConfig(api_key=API_KEY, base_url="https://x.example").base_url == "https://x.example"
    )


def test_co_api_url_set_after_the_sdk_loaded_is_honoured(
    fake_api: FakeCohereAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cohere  # the SDK reads CO_API_URL once, when it loads; memsift reads it later

    assert cohere is not None
    monkeypatch.setenv("CO_API_URL", fake_api.base_url)
    reranker = CohereReranker(CohereConfig(api_key=API_KEY))
    try:
        assert reranker.rerank("query", ["a document"])
    finally:
        reranker.close()
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"base_url": "ftp://example.com"}, "http:// or https://"),
        ({"model": ""}, "model"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_tokens_per_doc": 0}, "max_tokens_per_doc"),
        ({"top_k": 0}, "top_k"),
        ({"timeout": 0}, "timeout"),
        ({"on_error": "ignore"}, "on_error"),
    ],
)
def test_bad_values_are_config_errors(options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _section(api_key=API_KEY, **options)


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        _section(api_key=API_KEY, top_n=5)
    for key in ("max_tokens_per_doc", "return_documents", "base_url", "max_retries"):
        assert key in str(info.value)
