"""Options and helpers the ``memsift`` commands share: the config file, the scope options,
JSON arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

CONFIG_ENV = "MEMSIFT_CONFIG"


def load_config(path: str | None, reranker: str | None = None) -> dict[str, Any]:
    """The config dict of a ``--config`` file (empty without one), with ``--reranker``'s
    section when given."""
    data: dict[str, Any] = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise click.BadParameter(f"config {path} must hold a JSON object")
    if reranker:
        data = {**data, "reranker": {"provider": reranker, "config": {}}}
    return data


def json_option(value: str | None, what: str) -> Any:
    """An option's JSON value (None when not given); a usage error names ``what``."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be JSON: {exc}") from None


config_option = click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    type=click.Path(dir_okay=False),
    help=f"JSON config file (or ${CONFIG_ENV}); default: the embedded store in ~/.memsift",
)
scope_options = [
    click.option("--user-id", help="scope: user id"),
    click.option("--agent-id", help="scope: agent id"),
    click.option("--run-id", help="scope: run id"),
]


def with_scope(fn: Any) -> Any:
    """Add ``--user-id``, ``--agent-id`` and ``--run-id`` to a command."""
    for option in reversed(scope_options):
        fn = option(fn)
    return fn
