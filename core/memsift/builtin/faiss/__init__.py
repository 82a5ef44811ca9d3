"""The built-in vector store ``faiss``: SQLite is the source of truth, FAISS the derived index.

SQLite (WAL) holds every memory: id, text, hash, metadata (JSON), scope ids, timestamps and
the vector. A FAISS index over the vectors is derived from it, saved beside it on close, and
rebuilt from SQLite whenever the two disagree.

Every vector lives in one *slot* of the index (its position). Filters give the set of
allowed slots -- scope-only filters from in-memory scope columns, others from SQL -- and the
search is exact over exactly those slots: a gathered brute-force product when the set is
small, FAISS with a bitmap selector otherwise. Deletes and updates never rebuild the index:
they leave a tombstone (an update writes the new vector to a new slot), and tombstones are
compacted away once they pass a quarter of the index.

**What SQLite records about the index.** The ``meta`` table holds an *epoch* (a random token,
new whenever slot numbers change: at compaction and at reset), a *generation* (bumped by
every write), ``next_slot`` (the high-water mark of slots; slots are never reused within an
epoch, so the vector in a slot never changes within an epoch) and a ``slot_log`` table
naming the slots each generation deleted or re-scoped. Saving the index file records its
stamp -- epoch, generation, slot count, live count, byte size and SHA-256 of the file -- in
``meta`` (the authority) and in the sidecar ``<name>.faiss.json``. At open the file is used
only when the sidecar equals the stamp in ``meta``, the bytes hash to the recorded SHA-256,
and the epoch is the current one; the slots added since it was saved are then read from
SQLite. Anything else (a damaged, foreign, missing or half-written file or sidecar) rebuilds
the index from SQLite with a logged warning; a file of an older epoch is rebuilt quietly.

**Several processes on one store** (web workers, a CLI next to a server) are supported:

- Every call sees the writes other processes have committed before it. SQLite is the
  truth; each process keeps an in-memory index and catches it up from SQLite's change
  counter (``PRAGMA data_version``): a search re-reads nothing when no other connection
  committed, reads only the slots added since (and the slots ``slot_log`` names) when the
  epoch is unchanged, and reloads fully after another process compacted or reset the store.
  Reads by id and listings go to SQLite directly.
- Writes serialise on SQLite's write lock (``BEGIN IMMEDIATE``, busy timeout
  :data:`~memsift.builtin.faiss.schema.BUSY_TIMEOUT_S` s): a write first catches up, then
  takes its slots from ``next_slot`` inside the transaction, so no two processes ever claim
  one slot. A writer that waits longer than the timeout gets a
  :class:`~memsift.errors.StoreError`.
- Compaction renumbers slots under the write lock and starts a new epoch; the other
  processes notice the new epoch on their next call and reload (reading the index file if
  one of this epoch was saved, else rebuilding from SQLite).
- Saving the index file happens under the write lock and never replaces a file that
  reflects a newer state of the same epoch, nor writes one of an outdated epoch; and a
  process loads a file only when its stamp matches SQLite, so a stale save can never be
  taken for the current state.

Every :mod:`sqlite3` error (a full disk, a lock held past the timeout, a malformed file)
surfaces as :class:`~memsift.errors.StoreError` naming the file, carrying SQLite's message
and saying what to do. A write is applied to the in-memory index only after SQLite
committed it, so a failed write changes nothing.

**Modules** (bottom up): :mod:`~memsift.builtin.faiss.config` (the options),
:mod:`~memsift.builtin.faiss.schema` (SQLite: schema, migration, meta, errors),
:mod:`~memsift.builtin.faiss.columns` (the in-memory scope columns),
:mod:`~memsift.builtin.faiss.index` (the FAISS index and its verified file),
:mod:`~memsift.builtin.faiss.search` (the filtered search), :mod:`~memsift.builtin.faiss.sync`
(transactions, loading, catching up with other processes) and
:mod:`~memsift.builtin.faiss.store` (:class:`FaissStore`: the vector store operations).
"""

from memsift.builtin.faiss.config import FaissStoreConfig
from memsift.builtin.faiss.store import FaissStore, register_vector_stores

__all__ = ["FaissStore", "FaissStoreConfig", "register_vector_stores"]
