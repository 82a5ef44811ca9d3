"""A benchmark figure: one measured value, its unit, and the target it is held to.

``memsift bench`` prints a table of them; a plugin's benchmark (a ``run(quick: bool)``
callable named by an entry point of the ``memsift.benchmarks`` group) returns a list of them.
Plugin authors import it from :mod:`memsift.testing.benchkit`. It lives here, outside
``memsift.testing``, so that ``memsift bench`` runs without the test dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Figure:
    """One row of ``memsift bench``: ``ok`` says whether ``value`` meets ``target`` (None: no
    target)."""

    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


__all__ = ["Figure"]
