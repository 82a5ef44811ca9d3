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


def test_building_the_reranker_loads_the_sdk_clients_not_the_first_search() -> None:
    """``import cohere`` is lazy; the clients' module takes about half a second to load, which
    the first search would otherwise pay inside its timeout. Loading the plugin loads none."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        import memsift_cohere
        from memsift_cohere import CohereConfig, CohereReranker
        assert "cohere.client_v2" not in sys.modules, "the plugin's import loaded the SDK"
        CohereReranker(CohereConfig(api_key="k", base_url="http://127.0.0.1:9"))
        print("cohere.client_v2" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
