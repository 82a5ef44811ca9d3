"""Fake plugin distributions written into a folder on ``sys.path`` (a ``*.dist-info``
folder with an ``entry_points.txt`` is all ``importlib.metadata`` needs), one correct and
several that each break one rule of a plugin package."""

from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "memsift-fakepkg"
MODULE = "memsift_fakepkg"
HEAVY = "fake_heavy_sdk"

_GOOD = """
import memsift


@memsift.hookimpl
def register_rerankers(registry):
    from broken_providers.rerankers import OverlapConfig, OverlapReranker

    registry.register("pkg_overlap", OverlapReranker, OverlapConfig, description="overlap")
"""

#: breakage id -> (module source, whether the dist declares its entry point)
SOURCES: dict[str, tuple[str, bool]] = {
    "reference": (_GOOD, True),
    "heavy-sdk-imported-at-import": ("import fake_heavy_sdk\n" + _GOOD, True),
    "heavy-sdk-imported-at-registration": (
        _GOOD.replace(
            "    from broken_providers", "    import fake_heavy_sdk\n    from broken_providers"
        ),
        True,
    ),
    "misspelt-hook-name": (_GOOD.replace("def register_rerankers", "def register_reranker"), True),
    "registers-another-name": (_GOOD.replace('"pkg_overlap"', '"overlap"'), True),
    "no-entry-point": (_GOOD, False),
    "fails-to-import": ("raise ImportError('a missing dependency')\n" + _GOOD, True),
}
BROKEN = [k for k in SOURCES if k != "reference"]


def install(folder: Path, variant: str) -> None:
    """Write the fake distribution ``variant`` (and a stand-in heavy SDK) into ``folder``."""
    source, with_entry_point = SOURCES[variant]
    (folder / f"{MODULE}.py").write_text(source)
    (folder / f"{HEAVY}.py").write_text("LOADED = True\n")
    info = folder / f"{MODULE}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 0.1.0\n")
    if with_entry_point:
        (info / "entry_points.txt").write_text(f"[memsift]\nfakepkg = {MODULE}\n")
