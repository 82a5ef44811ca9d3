"""Fixtures: no hub access, a private MEMSIFT_HOME, and tiny models built once per session."""

from __future__ import annotations

from memsift.testing.fixtures import keep_hub_offline

keep_hub_offline()  # before anything imports huggingface_hub or transformers

import pytest  # noqa: E402

from memsift.testing.fixtures import (  # noqa: E402, F401
    cross_encoder_dir,
    embedder_dir,
    memsift_home,
    two_label_dir,
)


@pytest.fixture(scope="session")
def isolated_env() -> tuple[str, ...]:
    return ("HF_TOKEN",)
