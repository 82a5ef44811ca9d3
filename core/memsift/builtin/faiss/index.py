"""The FAISS side of the ``faiss`` store: creating the index, filling it from SQLite,
compacting it, and its file -- saved with a checksummed stamp, loaded only once verified.

``faiss`` is imported when an index is first built (see :func:`memsift.builtin.lazy_module`),
never when plugins load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from memsift.builtin import lazy_module
from memsift.builtin.faiss.columns import Int64Array
from memsift.builtin.faiss.config import FaissStoreConfig
from memsift.builtin.faiss.schema import State, read_stamp, read_state, set_meta
from memsift.errors import StoreError
from memsift.records import FloatArray

log = logging.getLogger(__name__)
faiss: Any = lazy_module("faiss")  # imported when an index is first built; untyped SWIG

#: Compact tombstones once they exceed this share of the index (and COMPACT_MIN slots).
COMPACT_SHARE = 0.25
COMPACT_MIN = 1024
#: Format of the index stamp recorded in meta and in the sidecar.
STAMP_FORMAT = 1


# --------------------------------------------------------------------------- the index


def new_index(config: FaissStoreConfig, dims: int) -> Any:
    """An empty index of the configured kind and metric."""
    metric = (
        faiss.METRIC_L2 if config.distance_strategy == "euclidean" else faiss.METRIC_INNER_PRODUCT
    )
    if config.index == "hnsw":
        index = faiss.IndexHNSWFlat(dims, config.hnsw_m, metric)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.hnsw.efSearch = config.hnsw_ef_search
        return index
    return faiss.IndexFlat(dims, metric)


def stored_vectors(index: Any, dims: int, config: FaissStoreConfig) -> FloatArray:
    """A zero-copy view of the index's stored vectors (valid until the next add)."""
    n = int(index.ntotal)
    if n == 0:
        return np.zeros((0, dims), dtype=np.float32)
    flat = faiss.downcast_index(index.storage) if config.index == "hnsw" else index
    view = faiss.rev_swig_ptr(flat.get_xb(), n * dims)
    return np.asarray(view).reshape(n, dims)


def append_vectors(
    conn: sqlite3.Connection, index: Any, dims: int, start: int, stop: int
) -> list[tuple[Any, ...]]:
    """Add the vectors of slots ``start..stop-1`` from SQLite (zeros where no row is).

    Returns the ``(slot, user_id, agent_id, run_id)`` of the rows found.
    """
    vectors = np.zeros((stop - start, dims), dtype=np.float32)
    scopes: list[tuple[Any, ...]] = []
    cursor = conn.execute(
        "SELECT slot, user_id, agent_id, run_id, vector FROM memories WHERE slot >= ? AND slot < ?",
        (start, stop),
    )
    while True:
        chunk = cursor.fetchmany(4096)
        if not chunk:
            break
        slots = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
        blob = b"".join(r[4] for r in chunk)
        vectors[slots - start] = np.frombuffer(blob, dtype=np.float32).reshape(-1, dims)
        scopes.extend(tuple(r[:4]) for r in chunk)
    if stop > start:
        index.add(vectors)
    return scopes


def build_index(conn: sqlite3.Connection, config: FaissStoreConfig, dims: int, size: int) -> Any:
    """The FAISS index of the vectors in SQLite (slots without a row stay 0)."""
    index = new_index(config, dims)
    append_vectors(conn, index, dims, 0, size)
    return index


def needs_compaction(size: int, live: int) -> bool:
    dead = size - live
    return dead >= COMPACT_MIN and dead >= COMPACT_SHARE * size


def compacted_index(index: Any, config: FaissStoreConfig, dims: int, order: Int64Array) -> Any:
    """A new index of the vectors in the slots ``order``, renumbered 0..len(order)-1."""
    vectors = np.ascontiguousarray(stored_vectors(index, dims, config)[order])
    compact = new_index(config, dims)
    if len(order):
        compact.add(vectors)
    return compact


# --------------------------------------------------------------------------- the index file


def read_index_file(
    conn: sqlite3.Connection,
    config: FaissStoreConfig,
    dims: int,
    state: State,
    *,
    live: int,
    db_path: Path,
    index_path: Path,
    stamp_path: Path,
) -> tuple[Any, int] | None:
    """The saved index and the generation it was saved at, if the file is verifiably derived
    from this SQLite state, else None."""
    path = index_path
    raw = read_stamp(conn)
    if raw is None:
        if path.exists():
            log.warning(
                "index file %s is not recorded in %s; rebuilding the index from SQLite",
                path,
                db_path,
            )
        return None
    try:
        stamp = json.loads(raw)
    except ValueError:
        stamp = None
    if not isinstance(stamp, dict):
        log.warning("the index stamp in %s is unreadable; rebuilding the index", db_path)
        return None
    expected = {
        "format": STAMP_FORMAT,
        "epoch": state.epoch,
        "dims": dims,
        "index": config.index,
        "distance_strategy": config.distance_strategy,
    }
    if any(stamp.get(k) != v for k, v in expected.items()):
        log.info("index file %s is of an older layout; rebuilding it from SQLite", path)
        return None
    ntotal, generation = stamp.get("ntotal"), stamp.get("generation")
    if (
        not isinstance(ntotal, int)
        or not isinstance(generation, int)
        or ntotal > state.next_slot
        or generation > state.generation
        or (generation == state.generation and stamp.get("live") != live)
    ):
        log.warning("the index stamp in %s disagrees with its rows; rebuilding the index", db_path)
        return None
    sidecar = read_sidecar(stamp_path)
    if sidecar != stamp:
        if saved_later(sidecar, stamp):
            log.info("index file %s was replaced while being read; rebuilding it", path)
        else:
            log.warning(
                "index sidecar %s is missing or disagrees with %s; rebuilding the index",
                stamp_path,
                db_path,
            )
        return None
    try:
        # One open file for both passes: a file another process swaps in meanwhile is a
        # new inode, so the bytes parsed are the bytes hashed.
        with path.open("rb") as handle:
            nbytes, hexdigest = digest(handle)
            if nbytes != stamp.get("bytes") or hexdigest != stamp.get("sha256"):
                if saved_later(read_sidecar(stamp_path), stamp):
                    log.info("index file %s was replaced while being read; rebuilding", path)
                else:
                    log.warning(
                        "index file %s does not match the checksum recorded in %s "
                        "(damaged, or another store's); rebuilding the index from SQLite",
                        path,
                        db_path,
                    )
                return None
            handle.seek(0)
            index = faiss.read_index(faiss.PyCallbackIOReader(handle.read, 1 << 20))
    except (OSError, RuntimeError) as exc:
        log.warning("index file %s is unreadable (%s); rebuilding the index", path, exc)
        return None
    if int(index.ntotal) != ntotal or int(index.d) != dims:
        log.warning("index file %s has the wrong size; rebuilding the index", path)
        return None
    if config.index == "hnsw":
        index.hnsw.efSearch = config.hnsw_ef_search
    return index, generation


def read_sidecar(stamp_path: Path) -> Any:
    try:
        return json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return None


def temp_index_file(index_path: Path) -> Path:
    """A new empty file beside ``index_path`` to write the index into."""
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{index_path.name}.", suffix=".tmp", dir=index_path.parent
    )
    os.close(fd)
    return Path(tmp_name)


def write_index_file(index: Any, tmp: Path, *, index_path: Path) -> tuple[int, str]:
    """Write ``index`` to ``tmp``; return the size and SHA-256 of what was written."""
    try:
        faiss.write_index(index, str(tmp))
        with tmp.open("rb") as handle:
            return digest(handle)
    except (RuntimeError, OSError) as exc:
        raise StoreError(f"cannot write the index file {index_path}: {exc}") from exc


def may_replace(
    conn: sqlite3.Connection, db_path: Path, epoch: str, generation: int, ntotal: int
) -> bool:
    """Whether a file of this state may replace the current one (under the write lock)."""
    if read_state(conn).epoch != epoch:
        log.info("not saving the index of %s: it was compacted or reset since", db_path)
        return False
    raw = read_stamp(conn)
    try:
        current = json.loads(raw) if raw else None
    except ValueError:
        current = None
    if isinstance(current, dict) and current.get("epoch") == epoch:
        theirs = (current.get("ntotal"), current.get("generation"))
        if all(isinstance(v, int) for v in theirs) and theirs > (ntotal, generation):
            log.info("not saving the index of %s: a newer one is saved", db_path)
            return False
    return True


def install(
    conn: sqlite3.Connection,
    tmp: Path,
    stamp: dict[str, Any],
    *,
    index_path: Path,
    stamp_path: Path,
) -> None:
    """Move the written file into place, then the sidecar, then record the stamp."""
    text = json.dumps(stamp, sort_keys=True)
    sidecar_tmp = tmp.with_suffix(".json.tmp")
    try:
        os.replace(tmp, index_path)
        sidecar_tmp.write_text(text)
        os.replace(sidecar_tmp, stamp_path)
    except OSError as exc:
        sidecar_tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write the index file {index_path}: {exc}") from exc
    set_meta(conn, {"index_stamp": text})


def saved_later(sidecar: Any, stamp: dict[str, Any]) -> bool:
    """Whether ``sidecar`` describes a file of the same epoch saved after ``stamp``'s (another
    process saved while this one read, from a snapshot taken before that save)."""
    return (
        isinstance(sidecar, dict)
        and sidecar.get("epoch") == stamp.get("epoch")
        and isinstance(sidecar.get("generation"), int)
        and sidecar["generation"] > stamp["generation"]
    )


def digest(handle: BinaryIO) -> tuple[int, str]:
    """The size and SHA-256 of what is left to read in ``handle``."""
    sha = hashlib.sha256()
    size = 0
    while block := handle.read(1 << 20):
        sha.update(block)
        size += len(block)
    return size, sha.hexdigest()
