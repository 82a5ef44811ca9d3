"""Fixtures: a private MEMSIFT_HOME, and no real key or URL in the environment."""

from __future__ import annotations

import pytest

from memsift.testing.fixtures import memsift_home  # noqa: F401  (autouse)


@pytest.fixture(scope="session")
def isolated_env() -> tuple[str, ...]:
    """What the plugin reads from the environment; unset in every test."""
    return ("ZEROENTROPY_API_KEY", "ZERO_ENTROPY_API_KEY", "ZEROENTROPY_BASE_URL")
