"""One client at a time in a local-mode folder.

qdrant-client's local mode is single-process: ``QdrantClient(path=...)`` reads the folder's
``meta.json`` (writing an empty one when there is none) and opens every collection's SQLite
file, and only then takes its exclusive lock (``.lock``), raising ``RuntimeError`` when
another client holds it. A second process opening a folder therefore touches it before being
refused, and two processes starting on a fresh folder race on ``meta.json``.

memsift takes a lock of its own first (:data:`LOCK_NAME`, an exclusive non-blocking
``flock``, held until the store closes and released by the system when the process dies),
so a second client -- another process, or another ``Memory`` of this one -- is refused with a
:class:`memsift.StoreError` that names the folder, before qdrant-client reads or writes
anything there. (On Windows, where ``flock`` does not exist, qdrant-client's own lock is the
only one.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

from memsift.errors import StoreError

#: The lock file memsift keeps in a local-mode folder.
LOCK_NAME: Final = "memsift.lock"

#: What to do when the folder is taken.
ADVICE: Final = (
    "the local mode allows one client per folder: close the other Memory (or process) using "
    "it, or run a Qdrant server for several processes"
)


class FolderLock:
    """The exclusive lock of a local-mode folder, held by this store until :meth:`release`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot open the Qdrant local-mode folder {folder}: {exc}; check that it can "
                "be created and written"
            ) from None
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StoreError(
                    f"the Qdrant local-mode folder {folder} is in use by another process (or "
                    f"another Memory of this one); {ADVICE}"
                ) from None
        self._fd = fd

    def release(self) -> None:
        """Release the lock (closing the file releases it). Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


__all__ = ["ADVICE", "LOCK_NAME", "FolderLock"]
