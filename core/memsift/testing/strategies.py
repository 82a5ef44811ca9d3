"""Seeded generators of records and filters, shared by the conformance suites.

Everything here is deterministic and needs nothing beyond the standard library: a suite
builds a :class:`random.Random` from a fixed seed, draws a corpus with :func:`corpus` and
filters with :class:`FilterGenerator`, and compares a store's answers with the brute-force
reference :func:`memsift.filters.evaluate`.

The records and their value pools live in :mod:`memsift.testing.store_corpus` (which says
why the pools hold what they hold), the filters in :mod:`memsift.testing.store_filters`;
this module gathers them under the name the suites used first.

The hypothesis strategies of earlier versions (``filters``, ``metadata``, ...) are still
available as attributes of this module, built on first access; they need ``hypothesis``,
which nothing else in :mod:`memsift.testing` imports.
"""

from __future__ import annotations

from typing import Any

# The pools outside __all__ stay importable from here too, as before the split.
from memsift.testing.store_corpus import (  # noqa: F401
    FLAGS,
    KEYS,
    MAYBES,
    NUMBERS,
    PIVOT,
    SCOPE_VALUES,
    TAGS,
    TEXTS,
    WORDS,
    corpus,
)
from memsift.testing.store_filters import (  # noqa: F401
    FAMILIES,
    NEEDLES,
    NUMBER_NEAR,
    SCOPE_NEAR,
    TAG_NEEDLES,
    FilterGenerator,
    timestamp_operands,
)

__all__ = [
    "FAMILIES",
    "KEYS",
    "NEEDLES",
    "NUMBERS",
    "SCOPE_VALUES",
    "TEXTS",
    "WORDS",
    "FilterGenerator",
    "corpus",
    "timestamp_operands",
]

# --------------------------------------------------------------------------- hypothesis

_LEGACY = frozenset({"filters", "metadata", "json_values", "scalar_values", "scope_values"})
_legacy_cache: dict[str, Any] = {}


def hypothesis_strategies() -> dict[str, Any]:
    """The hypothesis strategies of earlier versions (``filters``, ``metadata``, ...).

    Imports ``hypothesis`` (install it yourself); nothing else in this module needs it.
    """
    if _legacy_cache:
        return _legacy_cache
    from hypothesis import strategies as st

    words = ("red", "Red", "blue", "BLUE", "grün", "ÄRGER", "a'b", 'x"y', "")
    keys = ("color", "size", "tags", "flag")
    scalar_values = st.one_of(
        st.sampled_from(words),
        st.integers(min_value=-3, max_value=3),
        st.sampled_from([0.5, 1.0, -2.5, 2.0]),
        st.booleans(),
        st.none(),
    )
    json_values = st.one_of(scalar_values, st.lists(scalar_values, max_size=3))
    metadata = st.dictionaries(st.sampled_from(keys), json_values, max_size=4)
    scope_values = st.sampled_from(["u1", "u2", "u3"])
    ops_any = st.sampled_from(["eq", "ne", "contains"])
    ops_order = st.sampled_from(["gt", "gte", "lt", "lte"])

    def condition() -> Any:
        return st.one_of(
            scalar_values,
            st.just("*"),
            st.lists(scalar_values, min_size=1, max_size=3),
            st.builds(lambda op, v: {op: v}, ops_any, scalar_values),
            st.builds(
                lambda op, v: {op: v},
                ops_order,
                st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -2.5]), st.sampled_from(words)),
            ),
            st.builds(lambda v: {"icontains": v}, st.sampled_from(words)),
            st.builds(
                lambda op, v: {op: v},
                st.sampled_from(["in", "nin"]),
                st.lists(scalar_values, min_size=1, max_size=3),
            ),
        )

    metadata_leaf = st.sampled_from(keys).flatmap(lambda k: condition().map(lambda c: {k: c}))
    scope_leaf = st.builds(
        lambda op, v: {"user_id": v if op == "eq" else {op: v}},
        st.sampled_from(["eq", "ne"]),
        scope_values,
    )
    leaf = st.one_of(metadata_leaf, metadata_leaf, scope_leaf)
    filters = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"AND": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"OR": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"NOT": xs}, st.lists(inner, min_size=1, max_size=2)),
        ),
        max_leaves=6,
    )
    _legacy_cache.update(
        filters=filters,
        metadata=metadata,
        json_values=json_values,
        scalar_values=scalar_values,
        scope_values=scope_values,
    )
    return _legacy_cache


def __getattr__(name: str) -> Any:
    if name in _LEGACY:
        return hypothesis_strategies()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
