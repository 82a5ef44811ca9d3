"""The ``zero_entropy`` config: defaults, environment variables, validation, secrets."""

from __future__ import annotations

import pytest
from fake_zeroentropy_api import API_KEY, FakeZeroEntropyAPI

from memsift import ConfigError, MemoryConfig, RerankerConfig
from memsift_zeroentropy import ZeroEntropyConfig, ZeroEntropyReranker


def _section(**config: object) -> MemoryConfig:
    return MemoryConfig.from_dict({"reranker": {"provider": "zero_entropy", "config": config}})


def test_defaults() -> None:
    cfg = ZeroEntropyConfig(api_key=API_KEY)
    assert isinstance(cfg, RerankerConfig)
    assert cfg.model == "zerank-2"
    assert cfg.top_k is None
    assert cfg.timeout is None
    assert cfg.on_error == "fallback"
    assert cfg.cache_size == 1024
    assert cfg.base_url is None
    assert cfg.latency is None
    assert cfg.max_retries == 2


def test_every_key_is_accepted() -> None:
    section = _section(
        model="zerank-1-small",
        api_key=API_KEY,
        top_k=30,
        base_url="https://proxy.example.com/v1/",
        latency="fast",
        timeout=5,
        max_retries=4,
        on_error="raise",
        cache_size=0,
    ).reranker
    assert section is not None
    c = section.config
    assert (c.model, c.top_k, c.timeout, c.max_retries) == ("zerank-1-small", 30, 5, 4)
    assert c.base_url == "https://proxy.example.com/v1"
    assert (c.latency, c.on_error, c.cache_size) == ("fast", "raise", 0)


@pytest.mark.parametrize("model", ["zerank-2", "zerank-1", "zerank-1-small"])
def test_the_known_models_are_valid(model: str) -> None:
    assert ZeroEntropyConfig(api_key=API_KEY, model=model).model == model


def test_an_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        _section(api_key=API_KEY, model="rerank-v3.5")
    text = str(info.value)
    assert "model" in text
    for model in ("zerank-2", "zerank-1", "zerank-1-small"):
        assert model in text


@pytest.mark.parametrize("name", ["ZEROENTROPY_API_KEY", "ZERO_ENTROPY_API_KEY"])
def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "from-env")
    cfg = ZeroEntropyConfig()
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "from-env"


def test_zeroentropy_api_key_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERO_ENTROPY_API_KEY", "second")
    monkeypatch.setenv("ZEROENTROPY_API_KEY", "first")
    cfg = ZeroEntropyConfig()
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "first"


def test_a_missing_key_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        _section()
    text = str(info.value)
    assert "api_key" in text and "ZEROENTROPY_API_KEY" in text and "ZERO_ENTROPY_API_KEY" in text


def test_a_masked_key_is_refused() -> None:
    # a key copied from a printed config ("**********") must not be sent as a key
    with pytest.raises(ConfigError, match="masked"):
        _section(api_key="**********")


def test_a_dumped_config_loads_again_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dumped = _section(api_key=API_KEY, top_k=7).to_dict()
    assert API_KEY not in str(dumped)
    monkeypatch.setenv("ZEROENTROPY_API_KEY", API_KEY)
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


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROENTROPY_BASE_URL", "http://127.0.0.1:1234/v1/")
    assert ZeroEntropyConfig(api_key=API_KEY).base_url == "http://127.0.0.1:1234/v1"
    explicit = ZeroEntropyConfig(api_key=API_KEY, base_url="https://x.example/v1")
    assert explicit.base_url == "https://x.example/v1"


def test_the_base_url_from_the_environment_is_used(
    fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEROENTROPY_BASE_URL", fake_api.base_url)
    reranker = ZeroEntropyReranker(ZeroEntropyConfig(api_key=API_KEY))
    try:
        assert reranker.rerank("query", ["a document"])
    finally:
        reranker.close()
    assert len(fake_api.requests) == 1


def test_the_key_from_the_second_variable_is_used(
    fake_api: FakeZeroEntropyAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the SDK itself knows only ZEROENTROPY_API_KEY; memsift passes the key explicitly
    monkeypatch.setenv("ZERO_ENTROPY_API_KEY", API_KEY)
    reranker = ZeroEntropyReranker(ZeroEntropyConfig(base_url=fake_api.base_url))
    try:
        reranker.rerank("query", ["a document"])
    finally:
        reranker.close()
    assert fake_api.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"base_url": "api.zeroentropy.dev"}, "http:// or https://"),
        ({"latency": "medium"}, "latency"),
        ({"max_retries": -1}, "max_retries"),
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
    for key in ("latency", "base_url", "max_retries", "model"):
        assert key in str(info.value)
