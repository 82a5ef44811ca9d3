"""The ``cohere`` config: defaults, its keys, the base URL, validation (the key's handling is
checked by the hosted suite in test_cohere.py)."""

from __future__ import annotations

import pytest
from fake_cohere_api import API_KEY

from memsift import ConfigError, MemoryConfig
from memsift.kit.hosted import HostedRerankerConfig
from memsift_cohere import CohereConfig


def _section(**config: object) -> MemoryConfig:
    return MemoryConfig.from_dict({"reranker": {"provider": "cohere", "config": config}})


def test_defaults() -> None:
    cfg = CohereConfig(api_key=API_KEY)
    assert isinstance(cfg, HostedRerankerConfig)  # the pipeline options, retries, cache
    assert (cfg.model, cfg.base_url) == ("rerank-v3.5", None)
    assert (cfg.max_tokens_per_doc, cfg.return_documents) == (None, None)


def test_the_apis_keys_are_accepted() -> None:
    section = _section(
        model="rerank-multilingual-v3.0",
        api_key=API_KEY,
        base_url="https://proxy.example.com/",
        max_tokens_per_doc=1024,
        return_documents=False,
    ).reranker
    assert section is not None
    c = section.config
    assert (c.model, c.base_url) == ("rerank-multilingual-v3.0", "https://proxy.example.com")
    assert (c.max_tokens_per_doc, c.return_documents) == (1024, False)


def test_base_url_comes_from_co_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_URL", "http://127.0.0.1:1234/")
    assert CohereConfig(api_key=API_KEY).base_url == "http://127.0.0.1:1234"
    assert (
        CohereConfig(api_key=API_KEY, base_url="https://x.example").base_url == "https://x.example"
    )


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"base_url": "ftp://example.com"}, "http:// or https://"),
        ({"model": ""}, "model"),
        ({"max_tokens_per_doc": 0}, "max_tokens_per_doc"),
    ],
)
def test_bad_values_are_config_errors(options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _section(api_key=API_KEY, **options)
