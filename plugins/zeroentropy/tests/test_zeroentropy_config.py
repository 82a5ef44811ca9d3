"""The ``zero_entropy`` config: defaults, its keys and models, the base URL, validation (the
key's handling is checked by the hosted suite in test_zeroentropy.py)."""

from __future__ import annotations

import pytest
from fake_zeroentropy_api import API_KEY

from memsift import ConfigError, MemoryConfig
from memsift.kit.hosted import HostedRerankerConfig
from memsift_zeroentropy import ZeroEntropyConfig


def _section(**config: object) -> MemoryConfig:
    return MemoryConfig.from_dict({"reranker": {"provider": "zero_entropy", "config": config}})


def test_defaults() -> None:
    cfg = ZeroEntropyConfig(api_key=API_KEY)
    assert isinstance(cfg, HostedRerankerConfig)  # the pipeline options, retries, cache
    assert (cfg.model, cfg.base_url, cfg.latency) == ("zerank-2", None, None)


def test_the_apis_keys_are_accepted() -> None:
    section = _section(
        model="zerank-1-small",
        api_key=API_KEY,
        base_url="https://proxy.example.com/v1/",
        latency="fast",
    ).reranker
    assert section is not None
    c = section.config
    assert (c.model, c.base_url, c.latency) == (
        "zerank-1-small",
        "https://proxy.example.com/v1",
        "fast",
    )


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


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROENTROPY_BASE_URL", "http://127.0.0.1:1234/v1/")
    assert ZeroEntropyConfig(api_key=API_KEY).base_url == "http://127.0.0.1:1234/v1"
    explicit = ZeroEntropyConfig(api_key=API_KEY, base_url="https://x.example/v1")
    assert explicit.base_url == "https://x.example/v1"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"base_url": "api.zeroentropy.dev"}, "http:// or https://"),
        ({"latency": "medium"}, "latency"),
    ],
)
def test_bad_values_are_config_errors(options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _section(api_key=API_KEY, **options)
