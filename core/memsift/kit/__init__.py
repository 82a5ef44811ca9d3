"""What provider packages share, so that each stays small.

- :mod:`memsift.kit.hosted`: :class:`~memsift.kit.hosted.HostedReranker`, the base of a
  reranker on a hosted API (client lifecycle per event loop, batching, retries within the
  time budget, error mapping, secret scrubbing), and the helpers it is built from;
- :mod:`memsift.kit.local`: :class:`~memsift.kit.local.LocalRuntime` and
  :class:`~memsift.kit.local.LocalReranker`, for models run in this process (device, model
  cache, batched scoring, the sigmoid mapping);
- :mod:`memsift.kit.retry`, :mod:`memsift.kit.messages` and :mod:`memsift.kit.config`,
  which ``hosted`` re-exports: the :class:`~memsift.kit.retry.Retrier`, safe error
  messages, and :class:`~memsift.kit.config.HostedRerankerConfig`;
- :func:`distribution_version`, a plugin's ``__version__`` from its metadata.

Nothing here imports an SDK or torch at module level.
"""

from __future__ import annotations

from importlib import metadata as _metadata

__all__ = ["distribution_version"]


def distribution_version(name: str) -> str:
    """The installed version of the distribution ``name``: a plugin's ``__version__``, written
    once, in its pyproject.toml (``"0+unknown"`` in a source tree that is not installed)."""
    try:
        return _metadata.version(name)
    except _metadata.PackageNotFoundError:  # pragma: no cover - an uninstalled source tree
        return "0+unknown"
