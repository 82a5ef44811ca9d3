"""Meta-tests that keep the core's layout readable: no import cycles, the package root only as
the facade, no provider package imported by name, small modules, and ``AsyncMemory`` a twin of
``Memory``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memsift.async_memory import AsyncMemory
from memsift.memory import Memory

CORE = Path(__file__).resolve().parent.parent / "core"
PACKAGE = CORE / "memsift"
MAX_LINES = 500

#: Modules allowed over MAX_LINES, each with its reason. Keep it short.
LONG_MODULES: dict[str, str] = {
    "memsift.testing.vector_store": "one concern: the VectorStoreConformance class, the store "
    "contract that plugins subclass whole (its data and reference live in store_*.py)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


@dataclass(frozen=True)
class Import:
    """One import statement of a core module: what it names, and where."""

    target: str  # the module imported (a core module, or any other module's dotted name)
    line: int
    root: bool  # binds the package root ``memsift`` itself (``import memsift``, ...)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(
    tree: ast.AST, *, include_type_checking: bool
) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, module- or function-level; the bodies of ``if TYPE_CHECKING:``
    blocks only when ``include_type_checking``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _type_checking(node.test) and not include_type_checking:
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, *, include_type_checking: bool = False) -> list[Import]:
    """The imports of the core module ``name``, resolved to modules.

    ``from memsift.x import y`` names the module ``memsift.x.y`` when that is a module, else
    ``memsift.x``; relative imports are resolved against ``name``.
    """
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []
    for node in _statements(tree, include_type_checking=include_type_checking):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name, node.lineno, alias.name == "memsift"))
            continue
        if node.level:
            base = name.split(".") if is_package(name) else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            if sub in MODULES:
                found.append(Import(sub, node.lineno, False))
            else:
                found.append(Import(source, node.lineno, source == "memsift"))
    return found


def import_graph() -> dict[str, set[str]]:
    return {
        name: {i.target for i in imports_of(name) if i.target in MODULES and i.target != name}
        for name in MODULES
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe_cycle(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return f"{', '.join(component)}: " + "; ".join(edges)


# --------------------------------------------------------------------------- the checks


def test_the_layout_scan_sees_the_core() -> None:
    assert {"memsift", "memsift.memory", "memsift.filters", "memsift.cli"} <= set(MODULES)
    assert "memsift.filters.parse" in import_graph()["memsift.filters"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_core_imports_form_a_dag() -> None:
    """Module- and function-level imports among core modules (not ``if TYPE_CHECKING:``
    ones) have no cycle, so every module can be read from the bottom up."""
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles among core modules:\n" + "\n".join(
        describe_cycle(graph, c) for c in found
    )


def test_submodules_never_import_the_package_root() -> None:
    """``memsift/__init__.py`` is the facade for users; inside the core, import the module
    that defines a name (``from memsift.errors import ...``), never ``memsift`` itself."""
    offenders = [
        f"{MODULES[name].relative_to(CORE)}:{i.line}"
        for name in MODULES
        if name != "memsift"
        for i in imports_of(name, include_type_checking=True)
        if i.root
    ]
    assert not offenders, f"these import the package root memsift: {', '.join(offenders)}"


_PLUGIN_MODULE = re.compile(r"memsift_[a-z0-9_]+\.[a-z0-9_.]+")


def test_the_core_imports_no_provider_package() -> None:
    """The core knows no ``memsift_*`` package by name: not imported, not named for import
    (plugin benchmarks come through the ``memsift.benchmarks`` entry-point group)."""
    offenders = []
    for name, path in MODULES.items():
        for i in imports_of(name, include_type_checking=True):
            if i.target.split(".")[0].startswith("memsift_"):
                offenders.append(f"{path.relative_to(CORE)}:{i.line} imports {i.target}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _PLUGIN_MODULE.fullmatch(node.value)
            ):
                offenders.append(f"{path.relative_to(CORE)}:{node.lineno} names {node.value}")
    assert not offenders, "\n".join(offenders)


def test_modules_are_small() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()
    }
    long = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in LONG_MODULES}
    assert not long, (
        f"modules over {MAX_LINES} lines (split them, or list them in LONG_MODULES with a "
        f"reason): {long}"
    )
    stale = sorted(name for name in LONG_MODULES if sizes.get(name, 0) <= MAX_LINES)
    assert not stale, f"LONG_MODULES lists modules that are short now (or gone): {stale}"


# --------------------------------------------------------------------------- Memory's async twin

#: AsyncMemory's lifecycle beyond Memory's: ``close`` is shared, ``aclose`` also closes the
#: reranker's async clients on the running loop.
ASYNC_ONLY = {"aclose"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(getattr(cls, name))
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value)
    }


def test_async_memory_has_the_methods_of_memory() -> None:
    sync, other = public_methods(Memory), public_methods(AsyncMemory)
    assert set(other) - ASYNC_ONLY == set(sync)
    assert set(other) >= ASYNC_ONLY


@pytest.mark.parametrize("name", sorted(public_methods(Memory)))
def test_async_memory_methods_take_what_memory_takes(name: str) -> None:
    def shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    sync = inspect.signature(getattr(Memory, name))
    other = inspect.signature(getattr(AsyncMemory, name))
    assert shape(other) == shape(sync)
    assert str(other.parameters) == str(sync.parameters)  # the annotations too


@pytest.mark.parametrize("name", sorted(public_methods(AsyncMemory)))
def test_async_memory_methods_are_documented(name: str) -> None:
    assert inspect.getdoc(getattr(AsyncMemory, name)), f"AsyncMemory.{name} has no docstring"


# --------------------------------------------------------------------------- moved names

#: Names that moved to another module in the layout split and stay importable where they
#: were: (old module, name, the module that defines it now).
MOVED = [
    *[("memsift.registry", n, "memsift.registrar") for n in ("KINDS", "KIND_LABEL", "KindSpec")],
    *[("memsift.registry", n, "memsift.registrar") for n in ("ProviderRegistrar", "ProviderSpec")],
    ("memsift.registry", "ProviderConflictError", "memsift.errors"),
    *[
        ("memsift.interfaces", n, "memsift.records")
        for n in ("Candidate", "EmbedderIdentity", "FloatArray", "MemoryRecord", "VectorHit")
    ],
    *[
        ("memsift.search", n, "memsift.inputs")
        for n in ("MAX_ID_CHARS", "MAX_QUERY_CHARS", "MAX_TOP_K", "check_query", "scoped_filter")
    ],
    *[
        ("memsift.memory", n, "memsift.inputs")
        for n in ("MAX_MEMORY_CHARS", "check_text", "normalize_messages", "reject_unknown")
    ],
    *[
        ("memsift.memory", n, "memsift.extraction")
        for n in ("EXTRACTION_PROMPT", "extraction_messages", "parse_facts")
    ],
    *[("memsift.memory", n, "memsift.changes") for n in ("memory_hash", "now_timestamp")],
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_moved_names_stay_importable_where_they_were(old: str, name: str, new: str) -> None:
    before, now = importlib.import_module(old), importlib.import_module(new)
    assert getattr(before, name) is getattr(now, name)
    assert name in before.__all__


def test_the_filter_package_exports_what_the_filter_module_did() -> None:
    filters = importlib.import_module("memsift.filters")
    assert set(filters.__all__) >= {
        *("And", "Cond", "Filter", "MatchAll", "Not", "Or", "evaluate", "parse_filter"),
        *("canonical_timestamp", "check_metadata", "check_metadata_key", "compile_sql"),
        *("find_lone_surrogate", "lone_surrogate_problem", "register_sql_functions"),
        *("require_scope", "scope_ids", "scope_pins", "ICONTAINS_SQL_FUNCTION", "MAX_DEPTH"),
        *("LOGICAL_OPERATORS", "MAX_NODES", "OPERATORS", "RESERVED_NAMES", "SCOPE_FIELDS"),
        *("TIMESTAMP_FIELDS", "TIMESTAMP_OPERATORS"),
    }
    assert all(hasattr(filters, name) for name in filters.__all__)
