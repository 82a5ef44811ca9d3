"""Config bases of provider packages.

:class:`HostedRerankerConfig` is what a hosted reranker's config extends: its retries, its
score cache, the check of its ``base_url`` and of its ``api_key``. :func:`env_default` reads
a field's default from the environment when the config is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from memsift.config import require_secret
from memsift.interfaces import RerankerConfig

__all__ = ["HostedRerankerConfig", "env_default"]


def env_default(name: str) -> Callable[[], str | None]:
    """A ``default_factory`` for a config field: ``$name`` when it is set and not empty
    (read when the config is built, not when the module loads), else None."""

    def factory() -> str | None:
        return os.environ.get(name) or None

    return factory


class HostedRerankerConfig(RerankerConfig):
    """Base config of a hosted reranker with a key: ``max_retries``, a score cache on by
    default (1024 entries: a repeated query does not pay twice), a ``base_url`` that must be
    http(s) (its trailing ``/`` cut), and an ``api_key`` that must be given, or set in one
    of ``api_key_env``, and is not a masked placeholder. A subclass declares ``api_key``
    and ``base_url`` (with their defaults from the environment) and sets ``api_key_env``.
    """

    api_key_env: ClassVar[tuple[str, ...]] = ()

    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="retries on 429, 408, 409, 5xx and connection errors, within `timeout` "
        "(a Retry-After is honoured only when it fits in the time left)",
    )
    cache_size: int = Field(default=1024, ge=0, description="entries in the rerank-score cache")

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _require_api_key(self) -> HostedRerankerConfig:
        key = require_secret(getattr(self, "api_key", None), "api_key", self.api_key_env)
        if not key.get_secret_value().strip("*"):
            raise ValueError(
                "api_key is a masked placeholder (as a dumped config shows it); give the real key"
            )
        return self
