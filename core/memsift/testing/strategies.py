"""Hypothesis strategies for metadata and filters, shared by the conformance suites."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

KEYS = ("color", "size", "tags", "flag")
WORDS = ("red", "Red", "blue", "BLUE", "grün", "ÄRGER", "a'b", 'x"y', "")

scalar_values = st.one_of(
    st.sampled_from(WORDS),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([0.5, 1.0, -2.5, 2.0]),
    st.booleans(),
    st.none(),
)
json_values = st.one_of(scalar_values, st.lists(scalar_values, max_size=3))

metadata = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
scope_values = st.sampled_from(["u1", "u2", "u3"])

_ops_any = st.sampled_from(["eq", "ne", "contains"])
_ops_order = st.sampled_from(["gt", "gte", "lt", "lte"])


def _condition(key: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        scalar_values,  # equality
        st.just("*"),  # exists
        st.lists(scalar_values, min_size=1, max_size=3),  # membership
        st.builds(lambda op, v: {op: v}, _ops_any, scalar_values),
        st.builds(
            lambda op, v: {op: v},
            _ops_order,
            st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -2.5]), st.sampled_from(WORDS)),
        ),
        st.builds(lambda v: {"icontains": v}, st.sampled_from(WORDS)),
        st.builds(
            lambda op, v: {op: v},
            st.sampled_from(["in", "nin"]),
            st.lists(scalar_values, min_size=1, max_size=3),
        ),
    )


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    metadata_leaf = st.sampled_from(KEYS).flatmap(lambda k: _condition(k).map(lambda c: {k: c}))
    scope_leaf = st.builds(
        lambda op, v: {"user_id": v if op == "eq" else {op: v}},
        st.sampled_from(["eq", "ne"]),
        scope_values,
    )
    return st.one_of(metadata_leaf, metadata_leaf, scope_leaf)


filters: st.SearchStrategy[dict[str, Any]] = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"AND": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"OR": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"NOT": xs}, st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=6,
)
