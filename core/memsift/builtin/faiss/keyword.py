"""The keyword index of the ``faiss`` store: an SQLite FTS5 table over the memories' terms,
kept in the same transaction as every write, ranked by BM25 with the term statistics of the
scope searched (see :func:`top_matches`).

**Layout.** Each memory's text is analysed in Python by the store's
:class:`~memsift.lexical.Analyzer` (case folding, numbers and dates kept whole, stop words,
a Snowball stemmer) into ``memories.terms``, its terms joined by spaces. The FTS5 table
``memories_fts`` is an *external-content* index over that column and the scope ids, whose
rowid is the memory's slot (``content='memories', content_rowid='slot'``): the terms are
stored once, and FTS5's own tokenizer (``ascii`` with the characters numbers and dates keep
as token characters) only splits them on the spaces. Queries are analysed by the same
analyzer, so the index and the query always agree. The scope ids are indexed as a
pre-filter (see :func:`match_expression`). The analyzer's signature is
recorded in ``meta`` as ``keyword_analyzer`` (absent: no keyword index).

**Keeping it in step.** Every write transaction reads that signature, and when an index
exists, maintains it in the same transaction: an insert adds the rows, a delete removes them
(FTS5's ``'delete'`` command with the stored terms), an update that moves a memory to a new
slot or changes its text does both, a reset clears it (``'delete-all'``), and a compaction,
which renumbers the slots, rebuilds it from ``memories.terms`` (``'rebuild'``, in C). Other
processes need no catching up: the index lives in SQLite.

**Building it.** Opening a store whose index is missing (a store of an older schema, one
opened before with ``keyword_index: false``) or was built by another analyzer (a new
language, say) analyses every memory again and rebuilds the index, in one write
transaction; opening with ``keyword_index: false`` drops it, so writes do not pay for it.

**Searching.** The query's distinct terms become an FTS5 ``OR`` of quoted terms; the filter
compiler's SQL restricts the match (joined to ``memories`` by slot), so the keyword stage
answers exactly the filtered set, like the vector stage. FTS5 finds the scope's memories that
hold a query term (the scope ids are indexed as a pre-filter); BM25 is computed over them in
Python from their stored terms, with the scope's statistics (its size and average length
from FTS5's table of document sizes), so the cost grows with the scope's size and with how
common the query's terms are in it, not with the whole store.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memsift.builtin.faiss.schema import chunks
from memsift.filters import Filter, MatchAll, compile_sql, scope_ids
from memsift.lexical import Analyzer, bm25_term_sum, count_terms, parse_signature

log = logging.getLogger(__name__)

FTS_TABLE = "memories_fts"
#: FTS5 only splits the stored terms: every character a term may hold beyond letters and
#: digits (numbers and dates keep ``. : / -``) is a token character.
FTS_TOKENIZE = "ascii tokenchars '_.:/-'"
#: What FTS5's ``ascii`` tokenizer keeps as a token character (everything else splits).
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_.:/\-]|[^\x00-\x7f]")
#: The indexed columns: the terms, and the scope ids (a pre-filter, see match_expression).
COLUMNS = ("terms", "user_id", "agent_id", "run_id")
_COLS = ", ".join(COLUMNS)
_CREATE = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({_COLS}, content='memories', "
    f"content_rowid='slot', tokenize=\"{FTS_TOKENIZE}\")"
)
_ANALYZERS: dict[str, Analyzer] = {}


def analyzer_of(signature: str) -> Analyzer:
    """The analyzer a recorded signature names (cached)."""
    found = _ANALYZERS.get(signature)
    if found is None:
        found = _ANALYZERS[signature] = parse_signature(signature)
    return found


def has_table(conn: sqlite3.Connection) -> bool:
    """Whether the FTS5 table exists with this module's layout."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (FTS_TABLE,)
    ).fetchone()
    return row is not None and row[0] == _CREATE


def recorded(conn: sqlite3.Connection) -> str | None:
    """The signature of the analyzer of the store's keyword index; None: no usable index."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'keyword_analyzer'").fetchone()
    if row is None or not has_table(conn):
        return None
    return str(row[0])


def build(conn: sqlite3.Connection, analyzer: Analyzer, *, db_path: Any) -> None:
    """(Re)build the keyword index from every memory's text (inside a write transaction)."""
    conn.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    count = int(conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0])
    if count:
        log.info("building the keyword index of %s (%d memories)", db_path, count)
    cursor = conn.execute("SELECT slot, memory FROM memories")
    while True:
        rows = cursor.fetchmany(2048)
        if not rows:
            break
        conn.executemany(
            "UPDATE memories SET terms = ? WHERE slot = ?",
            [(analyzer.joined(text), slot) for slot, text in rows],
        )
    conn.execute(_CREATE)
    conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES('rebuild')")
    conn.execute(
        "INSERT INTO meta(key, value) VALUES('keyword_analyzer', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (analyzer.signature,),
    )


def drop(conn: sqlite3.Connection) -> None:
    """Remove the keyword index (inside a write transaction); the terms column stays."""
    conn.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    conn.execute("DELETE FROM meta WHERE key = 'keyword_analyzer'")


# --------------------------------------------------------------------------- writes


def add(conn: sqlite3.Connection, slots: Sequence[int]) -> None:
    """Index the memories in ``slots``, as written to ``memories``."""
    for chunk in chunks(list(slots), 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(
            f"INSERT INTO {FTS_TABLE}(rowid, {_COLS}) "
            f"SELECT slot, {_COLS} FROM memories WHERE slot IN ({marks})",
            chunk,
        )


def remove(conn: sqlite3.Connection, slots: Sequence[int]) -> None:
    """Unindex the memories in ``slots`` (before their rows change or go)."""
    for chunk in chunks(list(slots), 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_COLS}) "
            f"SELECT 'delete', slot, {_COLS} FROM memories WHERE slot IN ({marks})",
            chunk,
        )


def clear(conn: sqlite3.Connection) -> None:
    conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES('delete-all')")


def rebuild(conn: sqlite3.Connection) -> None:
    """Rebuild from ``memories.terms`` (after a compaction renumbered the slots)."""
    conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES('rebuild')")


def check(conn: sqlite3.Connection) -> None:
    """FTS5's integrity check of the index against ``memories.terms``; raises on a
    mismatch (``sqlite3.DatabaseError``)."""
    conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES('integrity-check', 1)")


# --------------------------------------------------------------------------- queries


def match_expression(analyzer: Analyzer, query: str, filters: Filter) -> str | None:
    """The FTS5 query of ``query``'s distinct terms (any of them), or None if it has none.

    The scope ids ``filters`` pins (:func:`~memsift.filters.scope_ids`) are added as phrases
    on their columns, so FTS5 ranks only the scope's memories instead of every match in the
    collection. FTS5 splits and case-folds an id, so the phrase matches a superset of the
    scope (``Alice`` and ``alice smith`` both match ``alice``); the exact filter, applied in
    SQL after the match, decides. An id with no token character pre-filters nothing.
    """
    terms = analyzer.query_terms(query)
    if not terms:
        return None
    parts = ["{terms} : (" + " OR ".join(f'"{t}"' for t in terms) + ")"]
    for name, value in scope_ids(filters).items():
        if _TOKEN_CHAR.search(value):
            quoted = value.replace('"', '""')
            parts.append(f'{{{name}}} : "{quoted}"')
    return " AND ".join(parts)


#: BM25's parameters (those of FTS5's own ``bm25()`` and of most engines).
K1 = 1.2
B = 0.75
_JOIN = f"FROM {FTS_TABLE} JOIN memories AS m ON m.slot = {FTS_TABLE}.rowid"


def split_expression(expression: str) -> tuple[list[str], str]:
    """The query terms of a :func:`match_expression`, and its scope part (``""``: none).

    The terms part comes first and ends at the first ``)`` (terms hold no quote or
    parenthesis: the analyzer makes them of letters, digits and ``_.:/-``)."""
    end = expression.index(")") + 1
    head, scope = expression[:end], expression[end:].removeprefix(" AND ")
    inner = head[head.index("(") + 1 : -1]
    return [t.strip().strip('"') for t in inner.split(" OR ")], scope


def _scope_statistics(conn: sqlite3.Connection, scope: str) -> tuple[int, float]:
    """How many memories the scope part of an expression selects, and their average number
    of terms (the whole collection when there is no scope part).

    The lengths are FTS5's own (its ``docsize`` table: each row's column sizes, in tokens,
    as varints; the terms column first), which spares reading the memories' rows. This reads
    one row per memory of the scope: :class:`ScopeStatistics` keeps the answer until the
    database changes."""
    if scope:
        rows = conn.execute(
            f"SELECT d.sz FROM {FTS_TABLE} JOIN {FTS_TABLE}_docsize AS d "
            f"ON d.id = {FTS_TABLE}.rowid WHERE {FTS_TABLE} MATCH ?",
            (scope,),
        ).fetchall()
    else:
        rows = conn.execute(f"SELECT sz FROM {FTS_TABLE}_docsize").fetchall()
    if not rows:
        return 0, 0.0
    return len(rows), sum(_first_varint(r[0]) for r in rows) / len(rows)


class ScopeStatistics:
    """The scope statistics of :func:`_scope_statistics`, kept per scope until the database
    changes: a write on the connection (``total_changes``) or a commit by any other
    connection (``PRAGMA data_version``), or another connection object. A store keeps one,
    so repeated searches of a scope do not read its memories' lengths again."""

    #: How many scopes it remembers (the oldest is forgotten first).
    SIZE = 256

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._version: tuple[int, int] = (-1, -1)
        self._known: dict[str, tuple[int, float]] = {}

    def of(self, conn: sqlite3.Connection, scope: str) -> tuple[int, float]:
        version = (conn.total_changes, int(conn.execute("PRAGMA data_version").fetchone()[0]))
        if conn is not self._conn or version != self._version:
            self._conn, self._version = conn, version
            self._known.clear()
        found = self._known.get(scope)
        if found is None:
            found = _scope_statistics(conn, scope)
            if len(self._known) >= self.SIZE:
                del self._known[next(iter(self._known))]
            self._known[scope] = found
        return found


def _first_varint(blob: bytes) -> int:
    """The first of SQLite's varints in ``blob`` (7 bits a byte, high bit: more follow)."""
    value = 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value
    return value


def scored_matches(
    conn: sqlite3.Connection,
    expression: str,
    where: str = "1",
    params: Sequence[Any] = (),
    statistics: ScopeStatistics | None = None,
) -> list[tuple[int, str, float, bool]]:
    """Every memory of the expression's scope that holds a query term: ``(slot, id, bm25,
    whether it satisfies where)``, bm25 with the statistics of that scope (see
    :func:`top_matches`)."""
    terms, scope = split_expression(expression)
    n, avg = (ScopeStatistics() if statistics is None else statistics).of(conn, scope)
    rows = conn.execute(
        f"SELECT {FTS_TABLE}.rowid, m.id, m.terms, ({where}) {_JOIN} WHERE {FTS_TABLE} MATCH ?",
        (*params, expression),
    ).fetchall()
    if not rows:
        return []
    docs = [(text or "").split() for _, _, text, _ in rows]
    counts, df = count_terms(terms, docs)
    # FTS5's idf: ln((N - n + 0.5) / (n + 0.5)), at least 1e-6 (a term in most memories)
    idf = {t: max(1e-6, math.log((n - k + 0.5) / (k + 0.5))) for t, k in df.items()}
    out = []
    for (slot, memory_id, _, ok), doc, tf in zip(rows, docs, counts):
        score = bm25_term_sum(tf, len(doc), idf, k1=K1, b=B, avg_len=avg or 1.0)
        out.append((int(slot), str(memory_id), score, bool(ok)))
    return out


def top_matches(
    conn: sqlite3.Connection,
    expression: str,
    filters: Filter,
    limit: int,
    statistics: ScopeStatistics | None = None,
) -> list[tuple[int, str, float]]:
    """The best ``limit`` ``(slot, id, bm25)`` of the memories that satisfy ``filters``
    (bm25 positive, higher is better; ties by slot).

    BM25 (k1 1.2, b 0.75, FTS5's idf) takes its term statistics -- the number of memories,
    their average length, how many hold each term -- from the **scope**: the memories of the
    scope ids ``filters`` pins (the expression's scope part; the whole collection when it
    pins none). A tenant's own memories say which of its words are informative; a name that
    appears in every one of its memories is not, however rare it is in the whole store. The
    filter's other conditions decide which memories are answered, not the statistics, so a
    memory's score is the same in every search of its scope (and :func:`scores_of` agrees).
    The scope is as the index's pre-filter sees it: an id's phrase (``alice`` also counts
    the memories of ``alice smith``), none for an id without a token character.
    """
    params: list[Any]
    if isinstance(filters, MatchAll):
        where, params = "1", []
    else:
        where, params = compile_sql(filters, column_prefix="m.")
    found = [
        (s, i, score)
        for s, i, score, ok in scored_matches(conn, expression, where, params, statistics)
        if ok
    ]
    found.sort(key=lambda x: (-x[2], x[0]))
    return found[: int(limit)]


#: How many matches of its last keyword search a store remembers the scores of.
REMEMBER = 1000


@dataclass(frozen=True)
class Remembered:
    """The scores of a keyword search's matches (the best :data:`REMEMBER`), so that the
    ``keyword_scores`` of the same search's pool (same query, same filter, no write since)
    needs no second match: one search, one FTS5 scan."""

    key: tuple[str, str, Any]
    scores: dict[str, float]
    complete: bool  # every match is in ``scores``: an id that is not there does not match

    def scores_of(self, key: tuple[str, str, Any], ids: Sequence[str]) -> dict[str, float] | None:
        """The scores of ``ids`` if this answers them, else None."""
        if key != self.key:
            return None
        if not self.complete and any(i not in self.scores for i in ids):
            return None
        return {i: self.scores[i] for i in ids if i in self.scores}


def scores_of(
    conn: sqlite3.Connection,
    expression: str,
    ids: Sequence[str],
    statistics: ScopeStatistics | None = None,
) -> dict[str, float]:
    """The bm25 of each of ``ids`` that matches the expression (the statistics of
    :func:`top_matches`)."""
    wanted = set(ids)
    found = scored_matches(conn, expression, statistics=statistics)
    return {i: score for _, i, score, _ in found if i in wanted}


__all__ = [
    "FTS_TABLE",
    "FTS_TOKENIZE",
    "K1",
    "REMEMBER",
    "B",
    "Remembered",
    "ScopeStatistics",
    "add",
    "analyzer_of",
    "build",
    "check",
    "clear",
    "drop",
    "has_table",
    "match_expression",
    "rebuild",
    "recorded",
    "remove",
    "scored_matches",
    "scores_of",
    "split_expression",
    "top_matches",
]
