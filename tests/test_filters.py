"""Tests of the filter language: parsing, validation, scope, Python evaluation and SQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsift.errors import FilterError, ScopeError
from memsift.filters import (
    MAX_DEPTH,
    MAX_NODES,
    SCOPE_FIELDS,
    And,
    Cond,
    Filter,
    MatchAll,
    Not,
    Or,
    canonical_timestamp,
    check_metadata,
    check_metadata_key,
    compile_sql,
    evaluate,
    parse_filter,
    register_sql_functions,
    require_scope,
    scope_ids,
)
from memsift.interfaces import MemoryRecord

T1 = "2026-01-01T00:00:00.000000+00:00"
T2 = "2026-06-15T12:30:00.250000+00:00"
T3 = "2026-11-25T20:30:02.123456+00:00"

# --------------------------------------------------------------------------- helpers


def make_db(records: Sequence[MemoryRecord], *, ensure_ascii: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    register_sql_functions(conn)
    conn.execute(
        "CREATE TABLE memories(id TEXT, user_id TEXT, agent_id TEXT, run_id TEXT, "
        "created_at TEXT, updated_at TEXT, metadata TEXT)"
    )
    conn.executemany(
        "INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.id,
                r.user_id,
                r.agent_id,
                r.run_id,
                r.created_at,
                r.updated_at,
                json.dumps(check_metadata(r.metadata), ensure_ascii=ensure_ascii),
            )
            for r in records
        ],
    )
    return conn


def sql_ids(conn: sqlite3.Connection, f: Filter, **kwargs: str) -> set[str]:
    where, params = compile_sql(f, **kwargs)
    table = "memories AS m" if kwargs.get("column_prefix") else "memories"
    return {row[0] for row in conn.execute(f"SELECT id FROM {table} WHERE {where}", params)}


def sql_truth(conn: sqlite3.Connection, f: Filter) -> dict[str, Any]:
    """The value of the compiled expression on every row (must be exactly 0 or 1)."""
    where, params = compile_sql(f)
    return dict(conn.execute(f"SELECT id, ({where}) FROM memories", params).fetchall())


def py_ids(records: Sequence[MemoryRecord], f: Filter) -> set[str]:
    return {r.id for r in records if evaluate(f, r)}


def rec(rid: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> MemoryRecord:
    return MemoryRecord(
        id=rid, memory=f"memory {rid}", hash=f"h{rid}", metadata=metadata or {}, **kwargs
    )


RECORDS = [
    rec(
        "r1",
        {
            "tag": "work",
            "priority": 3,
            "score": 0.5,
            "done": False,
            "tags": ["a", "b", 1, True],
            "note": None,
            "name": "Alice Smith",
        },
        user_id="u1",
        agent_id="a1",
        created_at=T1,
        updated_at=T2,
    ),
    rec(
        "r2",
        {"tag": "home", "priority": 1.0, "done": True, "tags": ["b", None], "name": "bob"},
        user_id="u1",
        created_at=T2,
        updated_at=T2,
    ),
    rec(
        "r3",
        {"tag": "Work", "priority": "3", "done": 1, "tags": "a,b", "name": "ÉCOLE straße"},
        user_id="u2",
        run_id="r1",
        created_at=T3,
        updated_at=T3,
    ),
    rec(
        "r4",
        {"priority": True, "tags": [], "obj": {"a": 1}, "note": "x", "c-d": [[1], {"a": 1}]},
        agent_id="a2",
        created_at=T1,
        updated_at=T3,
    ),
    rec("r5", {}, user_id="u2"),
    rec(
        "r6",
        {"priority": 10, "score": -1, "tags": [1.0, "A"], "name": "İstanbul"},
        user_id="U1",
        created_at=T3,
        updated_at=T3,
    ),
]
ALL = {r.id for r in RECORDS}


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = make_db(RECORDS)
    yield conn
    conn.close()


def check(conn: sqlite3.Connection, spec: Mapping[str, Any] | None, expected: set[str]) -> None:
    f = parse_filter(spec)
    assert py_ids(RECORDS, f) == expected, "python evaluator"
    assert sql_ids(conn, f) == expected, "sql"
    truth = sql_truth(conn, f)
    assert set(truth.values()) <= {0, 1}
    negated = Not(f)
    assert py_ids(RECORDS, negated) == ALL - expected
    assert sql_ids(conn, negated) == ALL - expected


# --------------------------------------------------------------------------- operators

CASES: list[tuple[Mapping[str, Any] | None, set[str]]] = [
    # empty
    (None, ALL),
    ({}, ALL),
    # eq, by literal and operator, strict types
    ({"tag": "work"}, {"r1"}),
    ({"tag": {"eq": "work"}}, {"r1"}),
    ({"priority": 3}, {"r1"}),
    ({"priority": 3.0}, {"r1"}),
    ({"priority": 1}, {"r2"}),
    ({"priority": "3"}, {"r3"}),
    ({"priority": True}, {"r4"}),
    ({"done": True}, {"r2"}),
    ({"done": False}, {"r1"}),
    ({"done": 1}, {"r3"}),
    ({"note": None}, {"r1"}),
    ({"tags": {"eq": "a,b"}}, {"r3"}),
    ({"obj": {"eq": '{"a":1}'}}, set()),
    ({"missing": "x"}, set()),
    # ne: exactly NOT eq, true on missing
    ({"tag": {"ne": "work"}}, ALL - {"r1"}),
    ({"done": {"ne": True}}, ALL - {"r2"}),
    ({"note": {"ne": None}}, ALL - {"r1"}),
    ({"priority": {"ne": 3}}, ALL - {"r1"}),
    # comparisons
    ({"priority": {"gt": 1}}, {"r1", "r6"}),
    ({"priority": {"gte": 1}}, {"r1", "r2", "r6"}),
    ({"priority": {"lt": 3}}, {"r2"}),
    ({"priority": {"lte": 3.0}}, {"r1", "r2"}),
    ({"priority": {"gt": 0.5, "lt": 10}}, {"r1", "r2"}),
    ({"score": {"lt": 0}}, {"r6"}),
    ({"priority": {"gte": "3"}}, {"r3"}),
    ({"priority": {"lt": "3"}}, set()),
    ({"tag": {"gt": "Work"}}, {"r1", "r2"}),
    ({"tag": {"lt": "home"}}, {"r3"}),
    ({"name": {"gte": "a"}}, {"r2", "r3", "r6"}),  # by code point: "É" and "İ" sort after "a"
    ({"name": {"lt": "b"}}, {"r1"}),
    ({"done": {"gte": 0}}, {"r3"}),
    # in / nin
    ({"tag": ["work", "home"]}, {"r1", "r2"}),
    ({"tag": {"in": ["work", "Work"]}}, {"r1", "r3"}),
    ({"priority": [3, True]}, {"r1", "r4"}),
    ({"priority": [1.0, "3"]}, {"r2", "r3"}),
    ({"note": [None, "x"]}, {"r1", "r4"}),
    ({"done": [False, 1]}, {"r1", "r3"}),
    ({"tag": {"nin": ["work", "home"]}}, {"r3", "r4", "r5", "r6"}),
    ({"done": {"nin": [True, False]}}, {"r3", "r4", "r5", "r6"}),
    # contains: substring of a string, or element of an array
    ({"name": {"contains": "li"}}, {"r1"}),
    ({"name": {"contains": "LI"}}, set()),
    ({"name": {"contains": ""}}, {"r1", "r2", "r3", "r6"}),
    ({"tags": {"contains": "a"}}, {"r1", "r3"}),
    ({"tags": {"contains": "b"}}, {"r1", "r2", "r3"}),
    ({"tags": {"contains": 1}}, {"r1", "r6"}),
    ({"tags": {"contains": True}}, {"r1"}),
    ({"tags": {"contains": None}}, {"r2"}),
    ({"tags": {"contains": "A"}}, {"r6"}),
    ({"obj": {"contains": 1}}, set()),
    ({"c-d": {"contains": 1}}, set()),
    ({"priority": {"contains": 3}}, set()),
    # icontains: str.lower() on both sides
    ({"name": {"icontains": "ALICE"}}, {"r1"}),
    ({"name": {"icontains": "école"}}, {"r3"}),
    ({"name": {"icontains": "STRASSE"}}, set()),
    ({"name": {"icontains": "STRAßE"}}, {"r3"}),
    ({"name": {"icontains": "i̇stanbul"}}, {"r6"}),
    ({"name": {"icontains": "istanbul"}}, set()),
    ({"tags": {"icontains": "a"}}, {"r3"}),
    # exists
    ({"note": "*"}, {"r1", "r4"}),
    ({"note": {"exists": True}}, {"r1", "r4"}),
    ({"note": {"exists": False}}, {"r2", "r3", "r5", "r6"}),
    ({"obj": "*"}, {"r4"}),
    ({"tag": {"eq": "*"}}, set()),
    # scope columns
    ({"user_id": "u1"}, {"r1", "r2"}),
    ({"user_id": {"ne": "u1"}}, {"r3", "r4", "r5", "r6"}),
    ({"user_id": ["u1", "u2"]}, {"r1", "r2", "r3", "r5"}),
    ({"user_id": {"nin": ["u1", "u2"]}}, {"r4", "r6"}),
    ({"user_id": "*"}, ALL - {"r4"}),
    ({"user_id": {"exists": False}}, {"r4"}),
    ({"user_id": {"gt": "u1"}}, {"r3", "r5"}),
    ({"user_id": {"lt": "u"}}, {"r6"}),
    ({"user_id": {"contains": "1"}}, {"r1", "r2", "r6"}),
    ({"user_id": {"icontains": "U1"}}, {"r1", "r2", "r6"}),
    ({"agent_id": "a1"}, {"r1"}),
    ({"agent_id": {"ne": "a1"}}, ALL - {"r1"}),
    ({"run_id": "r1"}, {"r3"}),
    ({"run_id": {"exists": False}}, ALL - {"r3"}),
    # timestamps (r5 has none)
    ({"created_at": T1}, {"r1", "r4"}),
    ({"created_at": {"gt": T1}}, {"r2", "r3", "r6"}),
    ({"created_at": {"lt": T2}}, {"r1", "r4"}),
    ({"created_at": {"lte": "2026-06-15T14:30:00.25+02:00"}}, {"r1", "r2", "r4"}),
    ({"created_at": {"gte": datetime(2026, 6, 15, 12, 30, 0, 250000)}}, {"r2", "r3", "r6"}),
    ({"created_at": {"gte": "2026-06-01", "lt": "2026-12-01T00:00:00Z"}}, {"r2", "r3", "r6"}),
    ({"created_at": [T2, T3]}, {"r2", "r3", "r6"}),
    ({"created_at": {"nin": [T2, T3]}}, {"r1", "r4", "r5"}),
    ({"created_at": {"ne": T1}}, {"r2", "r3", "r5", "r6"}),
    ({"created_at": "*"}, ALL - {"r5"}),
    ({"updated_at": {"exists": False}}, {"r5"}),
    # logical forms
    ({"user_id": "u1", "tag": "work"}, {"r1"}),
    ({"AND": [{"user_id": "u1"}, {"priority": {"lt": 2}}]}, {"r2"}),
    ({"OR": [{"tag": "work"}, {"priority": True}]}, {"r1", "r4"}),
    ({"OR": [{"tag": "work"}]}, {"r1"}),
    ({"NOT": [{"tag": "work"}]}, ALL - {"r1"}),
    ({"NOT": [{"user_id": "u1"}, {"tag": "work"}]}, ALL - {"r1"}),
    ({"NOT": [{"NOT": [{"tag": "home"}]}]}, {"r2"}),
    (
        {
            "user_id": {"in": ["u1", "u2"]},
            "OR": [{"tags": {"contains": "a"}}, {"NOT": [{"tag": "*"}]}],
        },
        {"r1", "r3", "r5"},
    ),
    ({"AND": [{}, {"tag": "home"}]}, {"r2"}),
    ({"OR": [{}, {"tag": "home"}]}, ALL),
    ({"NOT": [{}]}, set()),
    ({"AND": [{"AND": [{"OR": [{"NOT": [{"priority": {"gte": 3}}]}]}]}]}, ALL - {"r1", "r6"}),
]


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_operators(
    db: sqlite3.Connection, spec: Mapping[str, Any] | None, expected: set[str]
) -> None:
    check(db, spec, expected)


def test_column_prefix(db: sqlite3.Connection) -> None:
    f = parse_filter({"user_id": "u1", "tags": {"contains": "a"}, "created_at": {"gte": T1}})
    assert sql_ids(db, f, column_prefix="m.") == {"r1"}
    where, _ = compile_sql(f, column_prefix="m.")
    assert "m.user_id" in where and "m.metadata" in where


def test_other_metadata_column() -> None:
    conn = sqlite3.connect(":memory:")
    register_sql_functions(conn)
    conn.execute("CREATE TABLE t(id TEXT, user_id TEXT, meta TEXT)")
    conn.execute("INSERT INTO t VALUES ('x', 'u', ?)", (json.dumps({"k": [1, 2]}),))
    where, params = compile_sql(parse_filter({"k": {"contains": 2}}), metadata_column="meta")
    assert conn.execute(f"SELECT id FROM t WHERE {where}", params).fetchall() == [("x",)]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"metadata_column": "meta data"}, "metadata_column"),
        ({"metadata_column": "x; DROP TABLE memories"}, "metadata_column"),
        ({"column_prefix": "m"}, "column_prefix"),
        ({"column_prefix": "m.'"}, "column_prefix"),
        ({"metadata_column": "json"}, "json_each"),
    ],
)
def test_compile_sql_rejects_bad_identifiers(kwargs: dict[str, str], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        compile_sql(MatchAll(), **kwargs)


def test_match_all_compiles_to_one() -> None:
    assert compile_sql(parse_filter(None)) == ("1", [])
    assert compile_sql(parse_filter({})) == ("1", [])


def test_unicode_without_ascii_escapes() -> None:
    records = [
        rec("a", {"s": "😀 Ωmega", "l": ["é", "\u2028"]}),
        rec("b", {"s": "ΩMEGA"}),
        rec("c", {"s": "\uff21"}),  # sorts before an astral character by code point
    ]
    for ensure_ascii in (True, False):
        conn = make_db(records, ensure_ascii=ensure_ascii)
        cases: list[tuple[dict[str, Any], set[str]]] = [
            ({"s": "😀 Ωmega"}, {"a"}),
            ({"s": {"icontains": "ωmega"}}, {"a", "b"}),
            ({"s": {"gt": "ΩMEGA"}}, {"a", "c"}),
            ({"s": {"lt": "😀"}}, {"b", "c"}),
            ({"s": {"gt": "\uff21"}}, {"a"}),
            ({"l": {"contains": "\u2028"}}, {"a"}),
        ]
        for spec, expected in cases:
            f = parse_filter(spec)
            assert py_ids(records, f) == expected
            assert sql_ids(conn, f) == expected


def test_numbers_compare_exactly() -> None:
    big = 2**53 + 1
    records = [rec("a", {"n": big}), rec("b", {"n": float(2**53)}), rec("c", {"n": -(2**63)})]
    conn = make_db(records)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"n": big}, {"a"}),
        ({"n": float(2**53)}, {"b"}),
        ({"n": 2**53}, {"b"}),
        ({"n": {"gt": float(2**53)}}, {"a"}),
        ({"n": {"lt": -(2**62)}}, {"c"}),
        ({"n": [big, -(2**63)]}, {"a", "c"}),
    ]
    for spec, expected in cases:
        f = parse_filter(spec)
        assert py_ids(records, f) == expected, spec
        assert sql_ids(conn, f) == expected, spec


def test_wide_filters_stay_within_sqlite_limits(db: sqlite3.Connection) -> None:
    # A flat chain of ~1000 ANDs/ORs would pass SQLite's expression-depth limit (1000).
    branches = [{"priority": i} for i in range(MAX_NODES - 1)]
    for op in ("OR", "AND", "NOT"):
        f = parse_filter({op: branches})
        assert py_ids(RECORDS, f) == sql_ids(db, f)
    assert sql_ids(db, parse_filter({"OR": branches})) == {"r1", "r2", "r6"}
    f = parse_filter({"tag": {"nin": [f"t{i}" for i in range(MAX_NODES - 1)]}})
    assert sql_ids(db, f) == ALL


HEAVY_LEAVES: list[dict[str, Any]] = [
    {"tags": {"contains": 1.5}},
    {"tags": {"nin": [1, "x", None, True]}},
    {"name": {"icontains": "a"}},
    {"user_id": {"gt": "a"}},
]


def _nested(ops: Sequence[str], width: int) -> dict[str, Any]:
    spec: dict[str, Any] = HEAVY_LEAVES[0]
    for level, op in enumerate(ops):
        siblings = [HEAVY_LEAVES[(level + j) % len(HEAVY_LEAVES)] for j in range(width - 1)]
        spec = {op: [*siblings, spec]}  # the deep branch last, the hardest order to parse
    return spec


@pytest.mark.parametrize("pattern", [["AND", "OR"], ["NOT"], ["OR", "NOT"], ["AND", "OR", "NOT"]])
@pytest.mark.parametrize("width", [2, 17, 31])
def test_deepest_filters_stay_within_sqlite_limits(
    db: sqlite3.Connection, pattern: list[str], width: int
) -> None:
    # SQLite's parser stack overflows at about 30 nested "(x AND ..." groups; the compiler
    # keeps the depth of SQL nesting low for every filter the parser accepts.
    ops = [pattern[i % len(pattern)] for i in range(MAX_DEPTH - 1)]
    while True:
        try:
            f = parse_filter(_nested(ops, width))
            break
        except FilterError:  # over the size limit: as deep as the size limit allows
            ops.pop()
    assert len(ops) >= 10
    assert py_ids(RECORDS, f) == sql_ids(db, f)
    assert py_ids(RECORDS, Not(f)) == sql_ids(db, Not(f))


def test_bushy_filters_stay_within_sqlite_limits(db: sqlite3.Connection) -> None:
    def tree(depth: int, index: int) -> dict[str, Any]:
        if depth == 0:
            return HEAVY_LEAVES[index % len(HEAVY_LEAVES)]
        op = ("AND", "OR", "NOT")[depth % 3]
        return {op: [tree(depth - 1, 2 * index), tree(depth - 1, 2 * index + 1)]}

    f = parse_filter(tree(8, 0))
    assert py_ids(RECORDS, f) == sql_ids(db, f)


def test_fragment_embeds_safely(db: sqlite3.Connection) -> None:
    for spec in ({"OR": [{"tag": "work"}, {"tag": "home"}]}, {"tag": {"nin": ["work", "home"]}}):
        where, params = compile_sql(parse_filter(spec))
        sql = f"SELECT id FROM memories WHERE {where} AND user_id IS NULL"
        assert {row[0] for row in db.execute(sql, params)} == (set() if "OR" in spec else {"r4"})


def test_deep_filters_compile(db: sqlite3.Connection) -> None:
    spec: dict[str, Any] = {"tag": "work"}
    for _ in range(MAX_DEPTH - 1):
        spec = {"NOT": [spec]}
    f = parse_filter(spec)
    assert py_ids(RECORDS, f) == sql_ids(db, f) == ALL - {"r1"}


def test_scope_condition_uses_an_index() -> None:
    conn = make_db(RECORDS)
    conn.execute("CREATE INDEX idx_user ON memories(user_id)")
    where, params = compile_sql(parse_filter({"user_id": "u1", "tags": {"contains": "a"}}))
    plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM memories WHERE {where}", params)
    assert "idx_user" in " ".join(str(row) for row in plan)


def test_icontains_needs_registered_function() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE memories(user_id TEXT, metadata TEXT)")
    where, params = compile_sql(parse_filter({"name": {"icontains": "x"}}))
    with pytest.raises(sqlite3.OperationalError, match="memsift_icontains"):
        conn.execute(f"SELECT * FROM memories WHERE {where}", params).fetchall()


# --------------------------------------------------------------------------- injection


def test_quotes_in_values_are_parameters(db: sqlite3.Connection) -> None:
    nasty = "x' OR '1'='1\"); DROP TABLE memories; --"
    for spec in (
        {"tag": nasty},
        {"tag": {"contains": nasty}},
        {"tag": {"icontains": nasty}},
        {"tag": [nasty, "a"]},
        {"tags": {"contains": nasty}},
        {"user_id": nasty},
        {"user_id": {"gt": nasty}},
    ):
        f = parse_filter(spec)
        where, params = compile_sql(f)
        assert nasty not in where
        assert nasty in params
        assert sql_ids(db, f) == py_ids(RECORDS, f)
    assert db.execute("SELECT count(*) FROM memories").fetchone() == (len(RECORDS),)


def test_quoted_value_matches_literally() -> None:
    records = [rec("a", {"k": 'it\'s "quoted"'}), rec("b", {"k": "it"})]
    conn = make_db(records)
    f = parse_filter({"k": 'it\'s "quoted"'})
    assert sql_ids(conn, f) == py_ids(records, f) == {"a"}


@pytest.mark.parametrize(
    "key", ['a"b', "a'b", "a.b", "$", "a b", 'x"] OR 1=1 --', "a[0]", "ü", "-a", "1a", ""]
)
def test_quotes_in_keys_are_rejected(key: str) -> None:
    with pytest.raises(FilterError, match="invalid metadata key"):
        check_metadata_key(key)
    with pytest.raises(FilterError, match="invalid metadata key"):
        parse_filter({key: 1})
    with pytest.raises(FilterError, match="invalid metadata key"):
        Cond(key, "eq", 1)


def test_metadata_path_is_a_parameter() -> None:
    where, params = compile_sql(parse_filter({"my-key": 1}))
    assert "my-key" not in where
    assert '$."my-key"' in params


# --------------------------------------------------------------------------- errors

ERRORS: list[tuple[Any, str]] = [
    ([{"a": 1}], "filters: expected a dict or None, got list"),
    ("user_id", "filters: expected a dict or None, got str"),
    ({"AND": [{"a": 1}, "x"]}, 'filters["AND"][1]: expected a filter dict, got str'),
    (
        {"AND": [{"a": 1}, {"priority": {"gtt": 3}}]},
        'filters["AND"][1]["priority"]: unknown operator \'gtt\'; valid operators: eq, ne,',
    ),
    ({"priority": {"$gt": 3}}, "filters[\"priority\"]: unknown operator '$gt'"),
    ({"priority": {}}, 'filters["priority"]: empty operator dict'),
    (
        {"created_at": {"contains": "2026"}},
        "filters[\"created_at\"]: operator 'contains' is not supported on created_at; "
        "valid operators: eq, ne, gt, gte, lt, lte, in, nin, exists",
    ),
    ({"AND": []}, 'filters["AND"]: AND takes a non-empty list of filter dicts, got an empty list'),
    ({"OR": []}, 'filters["OR"]: OR takes a non-empty list'),
    ({"NOT": {"a": 1}}, 'filters["NOT"]: NOT takes a non-empty list of filter dicts, got dict'),
    ({"OR": "x"}, 'filters["OR"]: OR takes a non-empty list of filter dicts, got str'),
    ({"or": [{"a": 1}, {"b": 2}]}, "filters[\"or\"]: logical operators are upper case: use 'OR'"),
    ({1: "x"}, "filters: filter keys must be strings, got int 1"),
    ({"p": {"gt": [1]}}, 'filters["p"]["gt"]: gt takes a number or a string, got list'),
    ({"p": {"lte": True}}, 'filters["p"]["lte"]: lte takes a number or a string, got boolean'),
    ({"p": {"lt": None}}, 'filters["p"]["lt"]: lt takes a number or a string, got null'),
    ({"p": {"in": []}}, 'filters["p"]["in"]: in takes a non-empty list of values, got an empty'),
    ({"p": {"nin": "abc"}}, 'filters["p"]["nin"]: nin takes a non-empty list of values, got str'),
    ({"p": []}, 'filters["p"]: in takes a non-empty list of values, got an empty list'),
    ({"p": [1, [2]]}, 'filters["p"][1]: expected a string, number, boolean or null, got list'),
    ({"p": {"in": [1, {"a": 1}]}}, 'filters["p"]["in"][1]: expected a string, number, boolean'),
    (
        {"p": {"eq": [1]}},
        'filters["p"]["eq"]: expected a string, number, boolean or null, '
        "got list (use the 'in' operator",
    ),
    ({"p": {"eq": {"a": 1}}}, 'filters["p"]["eq"]: expected a string, number, boolean or null'),
    ({"p": {"contains": [1]}}, 'filters["p"]["contains"]: expected a string, number, boolean'),
    ({"p": {"icontains": 1}}, 'filters["p"]["icontains"]: icontains takes a string, got int'),
    ({"p": {"exists": 1}}, 'filters["p"]["exists"]: exists takes true or false, got int'),
    ({"p": float("nan")}, 'filters["p"]: numbers must be finite, got nan'),
    ({"p": {"gt": float("inf")}}, 'filters["p"]["gt"]: numbers must be finite, got inf'),
    ({"p": [1, float("-inf")]}, 'filters["p"][1]: numbers must be finite, got -inf'),
    ({"p": 2**63}, 'filters["p"]: integers must fit in 64 bits'),
    ({"p": "a\x00b"}, 'filters["p"]: strings must not contain NUL characters'),
    ({"p": "\ud800"}, 'filters["p"]: strings must be valid Unicode'),
    ({"p": b"x"}, 'filters["p"]: expected a string, number, boolean or null, got bytes'),
    ({"p": datetime(2026, 1, 1)}, 'filters["p"]: expected a string, number, boolean or null'),
    ({"user_id": 5}, 'filters["user_id"]: user_id takes string values, got int'),
    ({"user_id": None}, 'filters["user_id"]: user_id takes string values, got null'),
    ({"agent_id": {"in": ["a", 1]}}, 'filters["agent_id"]["in"][1]: agent_id takes string values'),
    ({"run_id": ""}, 'filters["run_id"]: run_id values must be non-empty strings'),
    ({"user_id": {"gt": 1}}, 'filters["user_id"]["gt"]: user_id takes string values, got int'),
    (
        {"created_at": "yesterday"},
        "filters[\"created_at\"]: not an ISO-8601 timestamp: 'yesterday'",
    ),
    ({"created_at": 1700000000}, 'filters["created_at"]: created_at takes datetimes or ISO-8601'),
    ({"updated_at": {"in": [T1, None]}}, 'filters["updated_at"]["in"][1]: updated_at takes'),
    ({"created_at": {"gt": "2026-13-01"}}, 'filters["created_at"]["gt"]: not an ISO-8601'),
    ({"a.b": 1}, "filters[\"a.b\"]: invalid metadata key 'a.b'"),
    ({"x": 1, "id": "abc"}, "filters[\"id\"]: invalid metadata key 'id': 'id' is a reserved name"),
    ({"metadata": {"a": 1}}, "filters[\"metadata\"]: invalid metadata key 'metadata'"),
    ({"k" * 65: 1}, f'filters["{"k" * 65}"]: invalid metadata key'),
    (
        {"OR": [{"a": 1}, {"NOT": [{"b": {"in": [1, float("nan")]}}]}]},
        'filters["OR"][1]["NOT"][0]["b"]["in"][1]: numbers must be finite',
    ),
]


@pytest.mark.parametrize(("spec", "message"), ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors_name_the_place(spec: Any, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(spec)
    assert not isinstance(info.value, ScopeError)
    assert str(info.value).startswith(message), str(info.value)


def test_depth_limit() -> None:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        spec = {"AND": [spec]}
    parse_filter(spec)  # exactly at the limit
    with pytest.raises(FilterError, match="nested too deeply") as info:
        parse_filter({"OR": [spec]})
    assert str(info.value).startswith('filters["OR"][0]["AND"][0]')


def test_size_limit() -> None:
    parse_filter({"a": {"in": list(range(MAX_NODES - 1))}})
    with pytest.raises(FilterError, match="filter too large") as info:
        parse_filter({"b": 1, "a": {"in": list(range(MAX_NODES))}})
    assert str(info.value).startswith('filters["a"]["in"]')
    with pytest.raises(FilterError, match="filter too large"):
        parse_filter({"OR": [{"a": i} for i in range(MAX_NODES)]})


def test_check_metadata_key() -> None:
    for key in ("a", "_x", "A-b_9", "k" * 64, "and", "Id"):
        assert check_metadata_key(key) == key
    for key in ("id", "memory", "hash", "metadata", "AND", "OR", "NOT", *SCOPE_FIELDS):
        with pytest.raises(FilterError, match="reserved"):
            check_metadata_key(key)
    with pytest.raises(FilterError, match="at most 64"):
        check_metadata_key("k" * 65)
    with pytest.raises(FilterError, match="must be strings"):
        check_metadata_key(3)  # type: ignore[arg-type]


def test_check_metadata() -> None:
    assert check_metadata({"a": (1, "x"), "b": {"c": [None, True, 1.5]}}) == {
        "a": [1, "x"],
        "b": {"c": [None, True, 1.5]},
    }
    bad_metadata: list[tuple[dict[Any, Any], str]] = [
        ({"a.b": 1}, "metadata: invalid metadata key 'a.b'"),
        ({"a": [1, float("nan")]}, 'metadata["a"][1]: numbers must be finite'),
        ({"a": {"b": "x\x00"}}, 'metadata["a"]["b"]: strings must not contain NUL'),
        ({"a": {1: 2}}, 'metadata["a"]: keys must be strings'),
        ({"a": 2**64}, 'metadata["a"]: integers must fit in 64 bits'),
        ({"a": {1, 2}}, 'metadata["a"]: expected a string, number, boolean or null, got set'),
    ]
    for bad, message in bad_metadata:
        with pytest.raises(FilterError) as info:
            check_metadata(bad)
        assert str(info.value).startswith(message), str(info.value)
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(FilterError, match="nested too deeply"):
        check_metadata({"a": deep})


# --------------------------------------------------------------------------- timestamps


def test_canonical_timestamp() -> None:
    expected = "2026-11-25T20:30:02.123456+00:00"
    assert canonical_timestamp(expected) == expected
    assert canonical_timestamp("2026-11-25T20:30:02.123456Z") == expected
    assert canonical_timestamp("2026-11-25T21:30:02.123456+01:00") == expected
    assert canonical_timestamp("2026-11-25T20:30:02.123456") == expected
    assert canonical_timestamp(datetime(2026, 11, 25, 20, 30, 2, 123456)) == expected
    tz = timezone(timedelta(hours=-5))
    assert canonical_timestamp(datetime(2026, 11, 25, 15, 30, 2, 123456, tzinfo=tz)) == expected
    assert canonical_timestamp("2026-11-25") == "2026-11-25T00:00:00.000000+00:00"
    for bad in ("", "2026-02-30", "now", "20261125T"):
        with pytest.raises(FilterError, match="not an ISO-8601 timestamp"):
            canonical_timestamp(bad)
    with pytest.raises(FilterError, match="out of range"):
        canonical_timestamp("0001-01-01T00:00:00+01:00")
    with pytest.raises(FilterError):
        canonical_timestamp(3)  # type: ignore[arg-type]


def test_timestamp_operands_are_normalised() -> None:
    f = parse_filter({"created_at": {"gt": "2026-11-25T21:30:02.123456+01:00"}})
    assert f == Cond("created_at", "gt", "2026-11-25T20:30:02.123456+00:00")
    f = parse_filter({"updated_at": [datetime(2026, 1, 1), "2026-01-01T00:00:00Z"]})
    assert isinstance(f, Cond) and f.value == (T1, T1)


# --------------------------------------------------------------------------- AST


def test_ast_shapes() -> None:
    built = Cond("a", "eq", 1)
    assert parse_filter(built) is built
    assert parse_filter({"a": 1}) == Cond("a", "eq", 1)
    assert parse_filter({"a": "*"}) == Cond("a", "exists", True)
    assert parse_filter({"a": [1, "x"]}) == Cond("a", "in", (1, "x"))
    assert parse_filter({"a": 1, "b": 2}) == And((Cond("a", "eq", 1), Cond("b", "eq", 2)))
    assert parse_filter({"a": {"gt": 1, "lt": 5}}) == And((Cond("a", "gt", 1), Cond("a", "lt", 5)))
    assert parse_filter({"NOT": [{"a": 1}]}) == Not(Cond("a", "eq", 1))
    assert parse_filter({"OR": [{"a": 1}]}) == Or((Cond("a", "eq", 1),))
    assert parse_filter({"AND": [{"a": 1}, {"AND": [{"b": 2}, {"c": 3}]}]}) == And(
        (Cond("a", "eq", 1), Cond("b", "eq", 2), Cond("c", "eq", 3))
    )
    assert parse_filter({"OR": [{"a": 1}, {"OR": [{"b": 2}]}]}) == Or(
        (Cond("a", "eq", 1), Cond("b", "eq", 2))
    )


def test_cond_equality_is_type_strict() -> None:
    assert Cond("a", "eq", 1) == Cond("a", "eq", 1.0)
    assert hash(Cond("a", "eq", 1)) == hash(Cond("a", "eq", 1.0))
    assert Cond("a", "eq", 1) != Cond("a", "eq", True)
    assert Cond("a", "in", (0,)) != Cond("a", "in", (False,))
    assert len({Cond("a", "eq", 1), Cond("a", "eq", True), Cond("a", "eq", None)}) == 3


def test_nodes_are_immutable_and_validated() -> None:
    cond = Cond("a", "in", [1, 2])
    assert cond.value == (1, 2)
    with pytest.raises(AttributeError):
        cond.value = 3  # type: ignore[misc]
    with pytest.raises(FilterError, match=r"Cond\('a', 'gtt'\): unknown operator 'gtt'"):
        Cond("a", "gtt", 1)
    with pytest.raises(FilterError, match=r"Cond\('a', 'in'\)\[1\]: numbers must be finite"):
        Cond("a", "in", [1, float("nan")])
    with pytest.raises(FilterError, match="not supported on updated_at"):
        Cond("updated_at", "icontains", "x")
    with pytest.raises(FilterError, match="non-empty"):
        And(())
    with pytest.raises(FilterError, match="Filters"):
        Or(({"a": 1},))  # type: ignore[arg-type]
    with pytest.raises(FilterError):
        Not("x")  # type: ignore[arg-type]


def test_hand_built_ast_evaluates_and_compiles(db: sqlite3.Connection) -> None:
    f = And((Cond("user_id", "eq", "u1"), Or((Cond("tag", "eq", "home"), Not(MatchAll())))))
    assert py_ids(RECORDS, f) == sql_ids(db, f) == {"r2"}


# --------------------------------------------------------------------------- scope


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"user_id": "u1"}, {"user_id": "u1"}),
        ({"user_id": {"eq": "u1"}}, {"user_id": "u1"}),
        ({"agent_id": "a", "tag": "x"}, {"agent_id": "a"}),
        (
            {"run_id": "r", "user_id": "u", "agent_id": "a"},
            {"run_id": "r", "user_id": "u", "agent_id": "a"},
        ),
        ({"AND": [{"tag": "x"}, {"user_id": "u1"}]}, {"user_id": "u1"}),
        ({"tag": "x", "AND": [{"agent_id": "a"}]}, {"agent_id": "a"}),
        ({"AND": [{"AND": [{"run_id": "r"}]}]}, {"run_id": "r"}),
        ({"user_id": {"eq": "u1", "ne": "u2"}}, {"user_id": "u1"}),
        ({"AND": [{"user_id": "a"}, {"user_id": "b"}]}, {"user_id": "a"}),
        ({"user_id": "u1", "OR": [{"agent_id": "a"}, {"tag": 1}]}, {"user_id": "u1"}),
        # not scoping
        (None, {}),
        ({}, {}),
        ({"tag": "x"}, {}),
        ({"user_id": {"ne": "u1"}}, {}),
        ({"user_id": ["u1", "u2"]}, {}),
        ({"user_id": "*"}, {}),
        ({"user_id": {"contains": "u"}}, {}),
        ({"user_id": {"gte": "u"}}, {}),
        ({"OR": [{"user_id": "u1"}, {"user_id": "u2"}]}, {}),
        ({"OR": [{"user_id": "u1"}]}, {}),
        ({"NOT": [{"user_id": "u1"}]}, {}),
        ({"NOT": [{"NOT": [{"user_id": "u1"}]}]}, {}),
        ({"AND": [{"OR": [{"user_id": "u1"}, {"tag": "x"}]}]}, {}),
    ],
)
def test_scope(spec: Mapping[str, Any] | None, expected: dict[str, str]) -> None:
    f = parse_filter(spec)
    assert scope_ids(f) == expected
    if expected:
        require_scope(f)
    else:
        with pytest.raises(ScopeError) as info:
            require_scope(f, "delete_all")
        message = str(info.value)
        assert message.startswith("delete_all must be scoped by user_id, agent_id or run_id")
        assert "top-level AND" in message


def test_scope_error_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="search must be scoped"):
        require_scope(parse_filter({"tag": 1}))


# --------------------------------------------------------------------------- property test

KEYS = ["a", "b", "c-d", "tags"]
POOL_STRINGS = [
    "x",
    "X",
    "xy",
    "Xy",
    "é",
    "É",
    "ß",
    "SS",
    "İ",
    "i̇",
    "ǅ",
    "",
    "1",
    "true",
    "[1]",
    "😀",
    "*",
]
POOL_NUMBERS: list[int | float] = [
    0,
    1,
    -1,
    2,
    1.0,
    2.5,
    -0.0,
    1e16,
    2**53 + 1,
    -(2**63),
    2**63 - 1,
]
TIMES = [T1, T2, T3]

safe_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=5
)
strings = st.one_of(st.sampled_from(POOL_STRINGS), safe_text)
numbers = st.one_of(
    st.sampled_from(POOL_NUMBERS),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
literals = st.one_of(strings, numbers, st.booleans(), st.none())
json_values = st.one_of(
    literals,
    st.lists(literals, max_size=3),
    st.lists(st.lists(literals, max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), literals, max_size=2),
)
metadata_st = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
scope_values = ["u1", "u2", "U1", "ü", "Ü", "u"]
ALL_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "icontains", "exists"]


@st.composite
def records_st(draw: st.DrawFn) -> list[MemoryRecord]:
    count = draw(st.integers(min_value=0, max_value=12))
    return [
        MemoryRecord(
            id=f"m{i}",
            memory="text",
            hash="h",
            metadata=draw(metadata_st),
            user_id=draw(st.sampled_from([None, *scope_values])),
            agent_id=draw(st.sampled_from([None, "a1", "A1"])),
            run_id=draw(st.sampled_from([None, "r1"])),
            created_at=draw(st.sampled_from(["", *TIMES])),
            updated_at=draw(st.sampled_from(["", *TIMES])),
        )
        for i in range(count)
    ]


timestamp_operands = st.one_of(
    st.sampled_from([*TIMES, "2026-06-15T14:30:00.25+02:00", "2026-06-15", "2026-12-31T23:59:59Z"]),
    st.datetimes(min_value=datetime(2025, 12, 31), max_value=datetime(2027, 1, 1)),
)


def record_values(records: Sequence[MemoryRecord]) -> list[Any]:
    """Scalars found in the records' metadata (array items and substrings too), for operands."""
    found: list[Any] = []
    for r in records:
        for value in r.metadata.values():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item is None or isinstance(item, (bool, int, float, str)):
                    found.append(item)
                if isinstance(item, str) and len(item) > 1:
                    found.extend([item[1:], item[:-1].upper()])
    return found


def condition_st(pool: Sequence[Any] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """One field condition in any form; metadata operands sometimes come from ``pool``."""
    meta_literals = st.one_of(literals, st.sampled_from(list(pool))) if pool else literals
    pool_strings = [v for v in pool if isinstance(v, str)]
    meta_strings = st.one_of(strings, st.sampled_from(pool_strings)) if pool_strings else strings

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        field = draw(st.sampled_from([*KEYS, *KEYS, *SCOPE_FIELDS, "created_at", "updated_at"]))
        if field in SCOPE_FIELDS:
            value: st.SearchStrategy[Any] = st.sampled_from(scope_values)
            ops = [*ALL_OPS]
        elif field in ("created_at", "updated_at"):
            value = timestamp_operands
            ops = [op for op in ALL_OPS if op not in ("contains", "icontains")]
        else:
            value = meta_literals
            ops = [*ALL_OPS]

        def operand(op: str) -> Any:
            if op == "exists":
                return draw(st.booleans())
            if op in ("in", "nin"):
                return draw(st.lists(value, min_size=1, max_size=4))
            if op in ("gt", "gte", "lt", "lte") and field in KEYS:
                return draw(
                    value.filter(
                        lambda v: isinstance(v, (int, float, str)) and not isinstance(v, bool)
                    )
                )
            if op == "icontains" and field in KEYS:
                return draw(meta_strings)
            return draw(value)

        form = draw(st.sampled_from(["literal", "list", "star", "ops"]))
        if form == "literal":
            return {field: draw(value)}
        if form == "list":
            return {field: draw(st.lists(value, min_size=1, max_size=4))}
        if form == "star":
            return {field: "*"}
        chosen = draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True))
        return {field: {op: operand(op) for op in chosen}}

    return build()


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    lists = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        lists.map(lambda items: {"AND": items}),
        lists.map(lambda items: {"OR": items}),
        lists.map(lambda items: {"NOT": items}),
        lists.map(lambda items: {k: v for item in items for k, v in item.items()}),
    )


def filters_st(pool: Sequence[Any] = ()) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(condition_st(pool), _combine, max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_python_and_sql_agree(data: st.DataObject) -> None:
    records = data.draw(records_st(), label="records")
    spec = data.draw(filters_st(record_values(records)), label="filters")
    f = parse_filter(spec)
    conn = make_db(records)
    try:
        truth = sql_truth(conn, f)
    finally:
        conn.close()
    assert truth == {r.id: int(evaluate(f, r)) for r in records}
