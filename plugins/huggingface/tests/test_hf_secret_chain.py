"""What the hosted suite (in test_hf_remote.py) cannot check of the ``huggingface``
reranker's secrets: the remote mode's ``api_key`` when the server cannot be reached, and the
local mode's ``token``, which must appear nowhere in a raised error's chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import memsift
from memsift import ConfigError, ModelNotFoundError, RerankError
from memsift.testing import assert_secret_absent
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

KEY = "hf_chain_7c6b5a4d3e2f1a0b"
QUERY = "where does alice live"
DOCS = ["alice moved to lisbon in march", "the quarterly report is due on friday"]


def test_an_unreachable_server_keeps_the_key_out_of_the_chain() -> None:
    reranker = HuggingFaceReranker(
        HuggingFaceRerankerConfig(endpoint_url="http://127.0.0.1:9", api_key=KEY, max_retries=0)
    )
    try:
        with pytest.raises(RerankError, match="cannot reach") as info:
            reranker.rerank(QUERY, DOCS)
    finally:
        reranker.close()
    assert_secret_absent(info.value, KEY)


@pytest.mark.parametrize("wrong", [[KEY], {"key": KEY}, 918273645546372819])
def test_a_wrong_typed_token_stays_out_of_the_chain(wrong: Any) -> None:
    with pytest.raises(ConfigError) as info:
        memsift.MemoryConfig.from_dict(
            {"reranker": {"provider": "huggingface", "config": {"token": wrong}}}
        )
    assert "token" in str(info.value)
    assert_secret_absent(info.value, KEY, "918273645546372819")


def test_a_model_that_cannot_load_keeps_the_token_out_of_the_chain(tmp_path: Path) -> None:
    config = HuggingFaceRerankerConfig(
        model=str(tmp_path / "no-such-model"), token=KEY, local_files_only=True, device="cpu"
    )
    with pytest.raises(ModelNotFoundError) as info:
        HuggingFaceReranker(config)
    assert_secret_absent(info.value, KEY)
