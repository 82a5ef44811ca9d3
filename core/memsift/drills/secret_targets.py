"""What the secrets drill (:mod:`memsift.drills.secrets`) drives: a :class:`Target` (a
hosted provider whose fake of its API runs on 127.0.0.1, :class:`Served`), the faults it
scripts on the fake (:func:`script_fault`, :func:`closed_url`), and where the key comes from
(:func:`key_source`, :func:`key_options`).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import string
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

#: The failures each target is driven through (see :func:`script_fault`).
FAULTS = ("401-echo", "401-text", "500-echo", "timeout", "refused")
#: The timeout the drill configures for the faults (seconds; a hang lasts :data:`HANG` times
#: as long), and for the calls that must succeed (the first builds the SDK's client).
TIMEOUT = 0.5
HANG = 4
SUCCESS_TIMEOUT = 10.0
USER = "drill-user"
TEXTS = ["alice moved to lisbon in march", "the quarterly report is due on friday"]
QUERY = "where does alice live"
MESSAGE = "My name is Alice. I moved to Lisbon in March."


class Served(Protocol):
    """A target's fake, running (see ``tests/reliability/providers.py``)."""

    @property
    def base_url(self) -> str: ...

    @property
    def request_count(self) -> int: ...

    def reset(self) -> None: ...

    def fail(
        self, status: int, *, body: Any = None, delay: float = 0.0, always: bool = False
    ) -> None: ...


class Target(Protocol):
    """A hosted provider to drill: its name, kind (``reranker``, ``llm`` or ``embedder``),
    the environment variables of its key, its fake, and a Memory config that uses it
    (optionally ``key_options`` too: see :func:`key_options`)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def key_envs(self) -> tuple[str, ...]: ...

    def serve(self, api_key: str) -> AbstractContextManager[Served]: ...

    def memory_config(
        self, tmp_path: Path, base_url: str, api_key: str | None, **options: Any
    ) -> dict[str, Any]: ...


def key_options(target: Target) -> Mapping[str, Callable[[str], dict[str, Any]]]:
    """More places a target takes its key: the optional attribute ``key_options``, a mapping
    of a name (e.g. ``"nested llm config"``) to the ``memory_config`` options that give it
    a key (the top-level ``api_key`` is then left out and no variable is set)."""
    found: Mapping[str, Callable[[str], dict[str, Any]]] = getattr(target, "key_options", {})
    return found


def echo_body(message: str) -> dict[str, Any]:
    """An error body every API's reader finds ``message`` in (top-level ``message`` and
    ``detail``, OpenAI's and Anthropic's nested ``error``)."""
    return {
        "type": "error",
        "message": message,
        "detail": message,
        "error": {"type": "authentication_error", "message": message, "code": "invalid_key"},
    }


def closed_url(base_url: str) -> str:
    """``base_url`` on a port of 127.0.0.1 where nothing listens (a refused connection)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def script_fault(served: Served, fault: str, secret: str) -> None:
    """Make every later request to ``served`` fail as ``fault`` (not ``refused``, which is
    a URL: :func:`closed_url`)."""
    if fault == "401-echo":
        served.fail(401, body=echo_body(f"invalid api token: got 'Bearer {secret}'"), always=True)
    elif fault == "401-text":
        served.fail(401, body=f"unauthorized: the key {secret} is not valid", always=True)
    elif fault == "500-echo":
        served.fail(500, body=echo_body(f"internal error while serving {secret}"), always=True)
    elif fault == "timeout":
        served.fail(200, delay=TIMEOUT * HANG, always=True)
    else:
        raise ValueError(f"unknown fault {fault!r}")


@contextlib.contextmanager
def key_source(target: Target, source: str, secret: str) -> Iterator[str | None]:
    """Yield the ``api_key`` to put in the config for ``source`` (``"config"``: the secret;
    an environment variable's name: None, with only that variable set to the secret; a
    name of :func:`key_options`: None, with no variable set)."""
    values = {name: secret if name == source else None for name in target.key_envs}
    with environment(values):
        yield secret if source == "config" else None


@contextlib.contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (a str) or unset (None) these environment variables for the block, then put
    back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def new_secret() -> str:
    """A key no text could hold by chance (32 random letters and digits after ``sk-drill-``:
    any :data:`~memsift.drills.secret_scan.PART` characters of it in a row are telling)."""
    alphabet = string.ascii_letters + string.digits
    return "sk-drill-" + "".join(random.SystemRandom().choices(alphabet, k=32))


def slug(text: str) -> str:
    return "-".join(part for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def wrap_secret(value: Any, secret: str) -> Any:
    """``value`` with each string equal to ``secret`` replaced by ``[secret]``."""
    if value == secret:
        return [secret]
    if isinstance(value, dict):
        return {k: wrap_secret(v, secret) for k, v in value.items()}
    return value


__all__ = [
    "FAULTS",
    "HANG",
    "SUCCESS_TIMEOUT",
    "TIMEOUT",
    "Served",
    "Target",
    "closed_url",
    "echo_body",
    "key_options",
    "key_source",
    "new_secret",
    "script_fault",
    "slug",
    "wrap_secret",
]
