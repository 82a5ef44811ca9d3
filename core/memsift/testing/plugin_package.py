"""``PluginPackageConformance``: a plugin distribution as a whole, as it is installed.

It checks what no provider suite can: that the installed distribution declares its entry
point in the ``memsift`` group, that loading that entry point registers the providers the
package promises (under those names, nothing more), that registering them imports no heavy
library, and that ``memsift plugins --json`` lists the distribution and its providers.

Assumptions, kept few on purpose (the plugin host may change inside them):

- the distribution is installed in the environment that runs the tests (``pip install -e``
  is enough) and its ``memsift`` entry points name objects holding ``@memsift.hookimpl``
  functions named after the hooks of :mod:`memsift.hookspecs`;
- ``memsift.registry.get_provider(kind, name)`` finds a registered provider, and
  ``MEMSIFT_LOAD_PLUGINS`` restricts which external plugins load;
- ``python -m memsift plugins --json`` prints a JSON list with one object per plugin
  distribution (or per entry point, named ``"<distribution>:<entry point>"``), with at
  least ``name`` and ``providers`` (a list of ``{"kind", "name", ...}``); ``loaded``,
  ``error`` and ``version`` are checked when present.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import Distribution, EntryPoint, PackageNotFoundError, distribution
from typing import Any, ClassVar

import pytest

from memsift import hookspecs
from memsift.interfaces import PROVIDER_KINDS
from memsift.plugins import ENTRY_POINT_GROUP, LOAD_PLUGINS_ENV, normalize_dist_name
from memsift.registry import ProviderRegistrar, ProviderSpec
from memsift.testing.embedder import child_environment

#: The registration hook of each provider kind.
HOOKS: dict[str, str] = {
    "embedder": "register_embedders",
    "reranker": "register_rerankers",
    "vector_store": "register_vector_stores",
    "llm": "register_llms",
}
_IMPL_MARK = f"{hookspecs.PROJECT_NAME}_impl"

_CHILD = r"""
import json, sys
request = json.loads(sys.stdin.read())
heavy = request["heavy"]

def loaded():
    return sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))

report = {}
import memsift.registry
from memsift.registry import ProviderRegistrar
report["memsift"] = loaded()
from importlib.metadata import distribution
dist = distribution(request["distribution"])
registered = []
for ep in dist.entry_points:
    if ep.group != request["group"]:
        continue
    plugin = ep.load()
    report.setdefault("import", loaded())
    for kind, hook in request["hooks"].items():
        impl = getattr(plugin, hook, None)
        if callable(impl) and getattr(impl, request["mark"], None) is not None:
            impl(registry=ProviderRegistrar(kind, dist.metadata["Name"], registered.append))
report["import"] = report.get("import", loaded())
report["registration"] = loaded()
found = {}
for kind, names in request["providers"].items():
    for name in names:
        spec = memsift.registry.get_provider(kind, name)
        found[kind + "/" + name] = spec.factory.__module__ + ":" + spec.factory.__qualname__
report["lookup"] = loaded()
report["found"] = found
sys.stdout.write("\n@@memsift-report@@" + json.dumps(report) + "\n")
"""
_MARK = "@@memsift-report@@"


def _path(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


class PluginPackageConformance:
    """The contract of a plugin distribution, as installed.

    Subclass it and set class attributes (no fixture is needed)::

        class TestPackage(PluginPackageConformance):
            distribution = "memsift-cohere"
            providers = {"reranker": ["cohere"]}
            heavy_modules = ("cohere", "httpx")

    ``distribution``
        the distribution's name as installed (``pip show`` spelling).
    ``providers``
        provider kind (``"embedder"``, ``"reranker"``, ``"vector_store"``, ``"llm"``) ->
        the names the package registers. Exactly these must be registered.
    ``heavy_modules``
        top-level modules that must not be imported by importing the plugin, by its
        registration hooks or by a registry lookup (the SDK, torch, transformers, ...);
        they belong in the provider's constructor.

    What is checked: the entry point in the ``memsift`` group is in the installed
    distribution's metadata; loading it and calling its hooks with a recording registrar
    registers exactly the declared providers, with no misspelt hook; in a fresh process,
    registration and ``memsift.registry.get_provider`` import none of ``heavy_modules`` and
    find the same classes; ``python -m memsift plugins --json`` lists the distribution as
    loaded, without error, with its version and its providers.
    """

    distribution: ClassVar[str] = ""
    providers: ClassVar[Mapping[str, Sequence[str]]] = {}
    heavy_modules: ClassVar[Sequence[str]] = ()
    subprocess_timeout: ClassVar[float] = 180

    # ------------------------------------------------------------------ helpers

    def _dist(self) -> Distribution:
        if not self.distribution:
            pytest.fail("set `distribution` on your PluginPackageConformance subclass")
        try:
            return distribution(self.distribution)
        except PackageNotFoundError:
            pytest.fail(
                f"the distribution {self.distribution!r} is not installed in this environment "
                "(pip install -e your plugin before running its tests)",
                pytrace=False,
            )

    def _entry_points(self) -> list[EntryPoint]:
        return [ep for ep in self._dist().entry_points if ep.group == ENTRY_POINT_GROUP]

    def _declared(self) -> set[tuple[str, str]]:
        declared = {(kind, name) for kind, names in self.providers.items() for name in names}
        unknown = {kind for kind, _ in declared} - set(PROVIDER_KINDS)
        assert not unknown, f"unknown provider kinds in `providers`: {sorted(unknown)}"
        return declared

    def _register(self) -> dict[tuple[str, str], ProviderSpec]:
        specs: list[ProviderSpec] = []
        for ep in self._entry_points():
            plugin = ep.load()
            for kind, hook in HOOKS.items():
                impl = getattr(plugin, hook, None)
                if not callable(impl) or getattr(impl, _IMPL_MARK, None) is None:
                    continue
                registrar = ProviderRegistrar(kind, self.distribution, specs.append)  # type: ignore[arg-type]
                if "registry" in inspect.signature(impl).parameters:
                    impl(registry=registrar)
                else:
                    impl()
        found: dict[tuple[str, str], ProviderSpec] = {}
        for spec in specs:
            key = (spec.kind, spec.name)
            assert key not in found, f"{spec.kind} {spec.name!r} is registered twice"
            found[key] = spec
        return found

    def _child(self, code: str, *args: str, stdin: str = "", **env: str) -> str:
        child_env = child_environment()
        child_env.update(env)
        done = subprocess.run(
            [sys.executable, *(["-c", code] if code else []), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.subprocess_timeout,
            env=child_env,
            check=False,
        )
        assert done.returncode == 0, (
            f"the child process failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
        return done.stdout

    # ------------------------------------------------------------------ tests

    def test_the_entry_point_is_in_the_installed_metadata(self) -> None:
        eps = self._entry_points()
        assert eps, (
            f"{self.distribution} declares no entry point in the {ENTRY_POINT_GROUP!r} group: "
            f'add [project.entry-points.{ENTRY_POINT_GROUP}] name = "your_module" to '
            "pyproject.toml and reinstall"
        )
        for ep in eps:
            assert ep.value, f"the entry point {ep.name!r} names nothing"

    def test_the_entry_point_registers_the_declared_providers(self) -> None:
        declared = self._declared()
        assert declared, "declare the package's providers in `providers`"
        found = self._register()
        missing = declared - set(found)
        extra = set(found) - declared
        assert not missing, (
            f"loading the entry point of {self.distribution} does not register "
            f"{sorted(missing)} (a misspelt hook name, or another provider name?); it "
            f"registers {sorted(found)}"
        )
        assert not extra, f"undeclared providers registered: {sorted(extra)}"

    def test_no_misspelt_hooks(self) -> None:
        known = {
            name
            for name, obj in vars(hookspecs).items()
            if callable(obj) and getattr(obj, f"{hookspecs.PROJECT_NAME}_spec", None) is not None
        }
        for ep in self._entry_points():
            plugin = ep.load()
            marked = {
                name
                for name in dir(plugin)
                if getattr(getattr(plugin, name, None), _IMPL_MARK, None) is not None
            }
            unknown = marked - known
            assert not unknown, (
                f"{ep.value} marks {sorted(unknown)} with @memsift.hookimpl, but memsift has no "
                f"such hook (it has {sorted(known)}): it would never be called"
            )

    def test_registration_imports_no_heavy_module(self) -> None:
        """In a fresh process (only this plugin allowed to load): importing the plugin,
        calling its hooks and looking its providers up import none of ``heavy_modules``,
        and the registry finds the classes the entry point registers."""
        declared = self._declared()
        expected = {f"{k}/{n}": _path(spec.factory) for (k, n), spec in self._register().items()}
        request = {
            "distribution": self.distribution,
            "group": ENTRY_POINT_GROUP,
            "hooks": HOOKS,
            "mark": _IMPL_MARK,
            "heavy": list(self.heavy_modules),
            "providers": {k: list(v) for k, v in self.providers.items()},
        }
        out = self._child(
            _CHILD, stdin=json.dumps(request), **{LOAD_PLUGINS_ENV: self.distribution}
        )
        assert _MARK in out, out[-2000:]
        report = json.loads(out.rsplit(_MARK, 1)[1])
        assert not report["memsift"], (
            f"memsift itself imports {report['memsift']}: remove them from heavy_modules"
        )
        for stage in ("import", "registration", "lookup"):
            assert not report[stage], (
                f"{self.distribution} imports {report[stage]} at {stage} time: import heavy "
                "libraries inside the provider (its __init__ or first use), not at module level"
            )
        found = report["found"]
        assert set(found) == {f"{k}/{n}" for k, n in declared}
        assert found == {k: v for k, v in expected.items() if k in found}, (
            f"the registry finds other classes than the entry point registers: {found}"
        )

    def test_memsift_plugins_lists_the_distribution(self) -> None:
        declared = self._declared()
        out = self._child(
            "", "-m", "memsift", "plugins", "--json", **{LOAD_PLUGINS_ENV: self.distribution}
        )
        rows = json.loads(out)
        assert isinstance(rows, list), f"`memsift plugins --json` printed {type(rows).__name__}"
        me = normalize_dist_name(self.distribution)
        mine = [
            r
            for r in rows
            if isinstance(r, dict)
            and normalize_dist_name(str(r.get("name", "")).split(":", 1)[0]) == me
        ]
        assert mine, f"`memsift plugins --json` does not list {self.distribution}: {rows}"
        listed: set[tuple[str, str]] = set()
        for row in mine:
            if "loaded" in row:
                assert row["loaded"] is True, f"{self.distribution} is not loaded: {row}"
            assert not row.get("error"), f"{self.distribution} failed to load: {row['error']}"
            if row.get("version") is not None:
                assert row["version"] == self._dist().version
            listed |= {(p["kind"], p["name"]) for p in row.get("providers", [])}
        assert listed == declared, (
            f"`memsift plugins --json` lists {sorted(listed)} for {self.distribution}, "
            f"expected {sorted(declared)}"
        )
