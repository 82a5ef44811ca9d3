"""An error body cut to a readable length keeps no piece of the key: the key is scrubbed
before the cut (it used to be cut first, leaving the start of a key that straddled the
cut, which the scrub of the whole key did not find)."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from memsift import RerankError
from memsift.drills.secret_scan import exception_leaks, find_secret
from memsift_huggingface import HuggingFaceReranker, HuggingFaceRerankerConfig

KEY = "hf_cut_Q8w7E6r5T4y3U2i1O0pAsDfGhJkL"


@pytest.mark.parametrize("offset", [200, 270, 280])
def test_a_key_cut_by_the_excerpt_does_not_show(tei: HTTPServer, offset: int) -> None:
    body = "x" * offset + f" {KEY} " + "y" * 400  # a text body, the key at the cut
    tei.expect_request("/rerank").respond_with_data(body, status=500)
    reranker = HuggingFaceReranker(
        HuggingFaceRerankerConfig(endpoint_url=tei.url_for("/"), api_key=KEY, max_retries=0)
    )
    try:
        with pytest.raises(RerankError) as info:
            reranker.rerank("query", ["a document"])
    finally:
        reranker.close()
    assert info.value.status == 500 and "xxxx" in str(info.value)
    assert find_secret(str(info.value), KEY) is None, str(info.value)
    assert exception_leaks(info.value, KEY) == []
