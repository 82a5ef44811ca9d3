"""The filter language: dicts parsed to a small immutable AST, evaluated in Python, run as SQL.

A filter is a dict. Its keys are field names or the logical operators ``AND``, ``OR`` and
``NOT``; several keys in one dict are an implicit AND. ``None`` and ``{}`` match everything.

Fields:

- ``user_id``, ``agent_id``, ``run_id`` (the scope fields): strings, absent when ``None``.
  Their operands must be strings (non-empty for ``eq``/``ne``/``in``/``nin``).
- ``created_at``, ``updated_at``: timestamps stored in the canonical form of
  :func:`canonical_timestamp` (UTC, microseconds), so comparing the strings compares the times.
  Operands are ``datetime`` objects or ISO-8601 strings (naive means UTC); an empty stored value
  counts as absent. Operators: ``eq ne gt gte lt lte in nin exists``.
- any other key names a metadata key (see :func:`check_metadata_key`). Metadata values are any
  JSON value.

A field's value is a literal (``eq``), a list (``in``), the string ``"*"`` (``exists``: the
field is present, with any value; write ``{"eq": "*"}`` to match the string itself) or an
operator dict ``{op: operand, ...}`` (several operators are an AND). Literals are strings,
integers (signed 64-bit), finite floats, booleans and ``None`` (present and JSON null).
``AND``, ``OR`` and ``NOT`` each take a non-empty list of filter dicts; ``NOT`` of a list
negates the AND of its items.

Semantics (the Python evaluator and the SQL agree exactly):

- Types are strict. A boolean equals only a boolean (``True != 1``); integers and floats compare
  numerically with each other; strings only with strings (by code point); ``None`` only with
  JSON null. A type mismatch makes a comparison false, never an error.
- A missing field makes ``eq gt gte lt lte in contains icontains`` and ``exists: true`` false.
  ``ne`` is exactly ``NOT eq`` and ``nin`` exactly ``NOT in``, so both are true on a missing
  field. ``NOT`` is plain negation.
- ``gt gte lt lte``: a number operand needs a number (not a boolean) in the field; a string
  operand needs a string, compared by code point.
- ``contains x``: the field is a string containing the string ``x`` (case-sensitive), or an
  array with an element equal to ``x`` under the strict equality above.
- ``icontains x``: the field is a string and ``x.lower() in field.lower()`` (Python's
  ``str.lower``, also in SQL through a registered function).
- ``exists``: ``true`` means present (JSON null counts as present), ``false`` means absent.

Scope: :func:`scope_ids` collects the ``eq`` conditions on scope fields that stand at the top
level or inside a top-level AND (nested ANDs included, since a conjunction of conjunctions is
one conjunction). Only a plain ``eq`` with a string scopes; ``ne``, ``in``, ``OR`` and ``NOT``
never do, even with a single branch. :func:`scope_pins` lists the scope keys of a filter dict in
those same positions; the memory API (``Memory.search``, ``get_all``, ``delete_all``) requires
each of them to be one exact id, so ``"*"``, a list or an operator dict there is a
:class:`ScopeError` (``{"eq": id}`` is allowed). Under ``OR`` and ``NOT``, and in filters given
to a store directly, scope fields take the whole language, ``"*"`` included.

Invalid Unicode: a string literal (or metadata key or value) holding a lone surrogate is a
:class:`FilterError` naming the place, the code point and its position.

SQL: :func:`compile_sql` returns a WHERE fragment and its parameters for a table whose scope
and timestamp columns are TEXT and whose metadata column holds a JSON object. Values and JSON
paths travel only as parameters. Every compiled condition evaluates to exactly 0 or 1, never
NULL, so negation is safe. Call :func:`register_sql_functions` on every connection that runs
the SQL. Store metadata with ``json.dumps`` after :func:`check_metadata`: SQLite cuts JSON
strings at a NUL character and reads integers beyond 64 bits as floats, so both are refused.

Modules: :mod:`~memsift.filters.values` (fields, operators and the checks of keys, values and
timestamps), :mod:`~memsift.filters.ast` (the nodes), :mod:`~memsift.filters.parse` (dicts to
nodes), :mod:`~memsift.filters.scope` (scope pins and the scope rule),
:mod:`~memsift.filters.evaluator` (the reference evaluator) and
:mod:`~memsift.filters.sqlite` (the SQL compiler). A store plugin needs only the nodes and
:func:`evaluate`; every public name is importable from ``memsift.filters``.
"""

from memsift.filters.ast import And, Cond, Filter, MatchAll, Not, Or
from memsift.filters.evaluator import evaluate
from memsift.filters.parse import parse_filter
from memsift.filters.scope import require_scope, scope_ids, scope_pins
from memsift.filters.sqlite import ICONTAINS_SQL_FUNCTION, compile_sql, register_sql_functions
from memsift.filters.values import (
    LOGICAL_OPERATORS,
    MAX_DEPTH,
    MAX_NODES,
    METADATA_KEY_MAX_LENGTH,
    OPERATORS,
    RESERVED_NAMES,
    SCOPE_FIELDS,
    TIMESTAMP_FIELDS,
    TIMESTAMP_OPERATORS,
    canonical_timestamp,
    check_metadata,
    check_metadata_key,
    find_lone_surrogate,
    lone_surrogate_problem,
)

__all__ = [
    "ICONTAINS_SQL_FUNCTION",
    "LOGICAL_OPERATORS",
    "MAX_DEPTH",
    "MAX_NODES",
    "METADATA_KEY_MAX_LENGTH",
    "OPERATORS",
    "RESERVED_NAMES",
    "SCOPE_FIELDS",
    "TIMESTAMP_FIELDS",
    "TIMESTAMP_OPERATORS",
    "And",
    "Cond",
    "Filter",
    "MatchAll",
    "Not",
    "Or",
    "canonical_timestamp",
    "check_metadata",
    "check_metadata_key",
    "compile_sql",
    "evaluate",
    "find_lone_surrogate",
    "lone_surrogate_problem",
    "parse_filter",
    "register_sql_functions",
    "require_scope",
    "scope_ids",
    "scope_pins",
]
