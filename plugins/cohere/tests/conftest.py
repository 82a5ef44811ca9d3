"""Fixtures: a private MEMSIFT_HOME, and no real key or URL in the environment."""

from __future__ import annotations

import pytest

from memsift.testing.fixtures import memsift_home  # noqa: F401  (autouse)

#: What the plugin reads from the environment; unset in every test.
ENV_VARS = ("CO_API_KEY", "COHERE_API_KEY", "CO_API_URL")


@pytest.fixture(scope="session")
def isolated_env() -> tuple[str, ...]:
    return ENV_VARS
