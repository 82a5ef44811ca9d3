"""The plugin system: discovery through the real entry point, the allow-list, broken
plugins, duplicate and invalid registrations, failing hooks, and lazy one-time loading.

The test-only distribution ``memsift-testplugin`` (tests/plugin_fixtures) is installed in
the test environment; it registers the rerankers ``scripted``, ``failing`` and
``bad_scores`` and the llm ``echo`` through the ``memsift`` entry-point group.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import threading
import time
import types
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

import memsift
from memsift import plugins, registry
from memsift.errors import PluginError, ProviderNotFoundError
from memsift.interfaces import (
    Embedder,
    EmbedderConfig,
    FloatArray,
    Reranker,
    RerankerConfig,
    check_rerank_input,
)
from memsift.plugins import PluginInfo, PluginLoadWarning, normalize_dist_name
from memsift.registry import ProviderRegistrar
from memsift.search import SearchEvent

TESTPLUGIN = "memsift-testplugin"
TESTPLUGIN_MODULE = "memsift_testplugin"
FAIL_IMPORT_ENV = "MEMSIFT_TESTPLUGIN_FAIL_IMPORT"
Hook = Literal[
    "register_embedders", "register_rerankers", "register_vector_stores", "register_llms"
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from an unloaded host with the default environment, and leaves
    one behind (the next lookup loads plugins again, from the restored environment)."""
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.delenv(FAIL_IMPORT_ENV, raising=False)
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


def plugin_record() -> PluginInfo:
    """The host's record of the installed test plugin, once the registry has loaded."""
    registry.get_registry()
    found = [
        info
        for info in plugins.get_plugin_host().infos.values()
        if not info.builtin and normalize_dist_name(info.name) == TESTPLUGIN
    ]
    assert len(found) == 1, f"expected one record of {TESTPLUGIN}, got {found}"
    return found[0]


class ConstantReranker(Reranker):
    """A valid reranker: every document scores 0.5."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return [0.5] * len(check_rerank_input(query, documents))


class OtherReranker(ConstantReranker):
    """Another valid reranker class, to tell two registrations apart."""


class TinyEmbedderConfig(EmbedderConfig):
    model: str = "tiny-8"


class TinyEmbedder(Embedder):
    """A deterministic 8-dimensional bag-of-words embedder."""

    config: TinyEmbedderConfig

    @property
    def dims(self) -> int:
        return 8

    def embed(
        self, texts: Sequence[str], *, purpose: Literal["document", "query"] = "document"
    ) -> FloatArray:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.dims] += 1.0
            out[i, 0] += 1e-3
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: FloatArray = out / norms
        return result


def hook_plugin(hook: Hook, body: Callable[[ProviderRegistrar], None]) -> types.ModuleType:
    """A plugin (a module object) implementing one ``register_*`` hook with ``body``."""

    def impl(registry: ProviderRegistrar) -> None:
        body(registry)

    module = types.ModuleType(f"memsift_test_{hook}")
    setattr(module, hook, memsift.hookimpl(impl))
    return module


def add_to_manager(plugin: object, name: str) -> None:
    """Register ``plugin`` with the live host and make the next lookup see it."""
    plugins.get_plugin_host().manager.register(plugin, name=name)
    registry.forget()


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, **modules: types.ModuleType | str) -> None:
    """Add entry points to the ``memsift`` group, one per keyword (distribution name).

    A module value is importable under its ``__name__``; a string value names a module
    that does not exist (so loading the entry point raises).
    """
    real = importlib.metadata.entry_points
    extra = []
    for dist, module in modules.items():
        if isinstance(module, types.ModuleType):
            monkeypatch.setitem(sys.modules, module.__name__, module)
            target = module.__name__
        else:
            target = module
        extra.append(
            importlib.metadata.EntryPoint(name=dist, value=target, group=plugins.ENTRY_POINT_GROUP)
        )

    def patched(**kwargs: Any) -> list[importlib.metadata.EntryPoint]:
        return [*real(**kwargs), *extra]

    monkeypatch.setattr(plugins, "entry_points", patched)


def subprocess_env(**overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(plugins.LOAD_PLUGINS_ENV, None)
    env.pop(FAIL_IMPORT_ENV, None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_memsift(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memsift", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------------- discovery


def test_testplugin_is_installed_under_the_entry_point_group() -> None:
    eps = importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)
    values = {ep.value for ep in eps}
    assert TESTPLUGIN_MODULE in values


def test_testplugin_is_discovered_through_its_entry_point() -> None:
    info = plugin_record()
    assert info.loaded
    assert not info.blocked
    assert info.error is None
    assert info.module == TESTPLUGIN_MODULE
    assert info.version == importlib.metadata.version(TESTPLUGIN)
    assert {
        ("reranker", "scripted"),
        ("reranker", "failing"),
        ("reranker", "bad_scores"),
        ("llm", "echo"),
    } <= set(info.providers)
    assert plugins.get_plugin_manager().get_plugin(info.name) is sys.modules[TESTPLUGIN_MODULE]


def test_registered_provider_is_looked_up_by_name() -> None:
    spec = registry.get_reranker("scripted")
    assert spec.kind == "reranker"
    assert spec.name == "scripted"
    assert spec.plugin == plugin_record().name
    assert spec.factory.__module__ == TESTPLUGIN_MODULE
    assert issubclass(spec.factory, Reranker)
    assert spec.description == "scores from markers"
    reranker = spec.build(spec.config_model())
    assert reranker.rerank("q", ["a [r=0.9]", "b"]) == [0.9, 0.5]
    assert registry.get_llm("echo").plugin == spec.plugin


def test_builtins_are_plugin_modules_registered_through_the_hooks() -> None:
    host = plugins.get_plugin_host()
    for module_name in plugins.DEFAULT_PLUGINS:
        info = host.infos[module_name]
        assert info.builtin and info.loaded and not info.blocked
        assert host.manager.get_plugin(module_name) is sys.modules[module_name]
    assert registry.get_vector_store("faiss").plugin == "memsift.builtin.faiss_store"
    assert registry.get_embedder("minilm").plugin == "memsift.builtin.minilm"
    assert registry.get_reranker("bm25").plugin == "memsift.builtin.bm25"
    assert ("reranker", "bm25") in host.infos["memsift.builtin.bm25"].providers


def test_list_providers_is_sorted_and_by_kind() -> None:
    names = [s.name for s in registry.list_providers("reranker")]
    assert names == sorted(names)
    assert {"bm25", "scripted", "failing", "bad_scores"} <= set(names)
    assert "faiss" not in names
    assert "faiss" in [s.name for s in registry.list_providers("vector_store")]


# --------------------------------------------------------------------------- allow-list


@pytest.mark.parametrize("value", ["", " ", " , ,"], ids=["empty", "blank", "only-commas"])
def test_empty_allow_list_loads_no_external_plugin(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, value)
    plugins.reload_plugins()

    info = plugin_record()
    assert info.blocked
    assert not info.loaded
    assert info.providers == []
    assert plugins.get_plugin_manager().get_plugin(info.name) is None
    with pytest.raises(ProviderNotFoundError) as caught:
        registry.get_reranker("scripted")
    assert "bm25" in str(caught.value)
    # the built-ins are not external plugins: they are always there
    assert registry.get_reranker("bm25").plugin == "memsift.builtin.bm25"
    assert registry.get_vector_store("faiss").name == "faiss"
    assert registry.get_embedder("minilm").name == "minilm"


@pytest.mark.parametrize(
    "value",
    [
        "memsift-testplugin",
        "memsift_testplugin",
        "Memsift-TestPlugin",
        "memsift.testplugin",
        " memsift-testplugin , memsift-something-else",
    ],
)
def test_allow_list_naming_the_plugin_loads_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, value)
    plugins.reload_plugins()

    info = plugin_record()
    assert info.loaded and not info.blocked
    assert registry.get_reranker("scripted").plugin == info.name


def test_allow_list_naming_another_plugin_blocks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "memsift-cohere")
    plugins.reload_plugins()

    assert plugin_record().blocked
    with pytest.raises(ProviderNotFoundError):
        registry.get_llm("echo")


def test_allowed_plugins_parses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plugins.allowed_plugins() is None
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    assert plugins.allowed_plugins() == set()
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "Memsift_Cohere, memsift-qdrant,")
    assert plugins.allowed_plugins() == {"memsift-cohere", "memsift-qdrant"}


def test_blocked_plugin_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The escape hatch: an empty allow-list silences a plugin that breaks on import."""
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    monkeypatch.setenv(FAIL_IMPORT_ENV, "1")
    monkeypatch.delitem(sys.modules, TESTPLUGIN_MODULE, raising=False)
    plugins.reload_plugins()

    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        registry.get_reranker("bm25")
    info = plugin_record()
    assert info.blocked and info.error is None
    assert TESTPLUGIN_MODULE not in sys.modules


# --------------------------------------------------------------------------- broken imports


def test_plugin_failing_to_import_is_reported_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    importlib.import_module(TESTPLUGIN_MODULE)  # make sure there is a module to hide

    monkeypatch.setenv(FAIL_IMPORT_ENV, "1")
    monkeypatch.delitem(sys.modules, TESTPLUGIN_MODULE)  # restored after the test
    plugins.reload_plugins()

    with pytest.warns(PluginLoadWarning) as record:
        spec = registry.get_reranker("bm25")
    messages = [str(w.message) for w in record if issubclass(w.category, PluginLoadWarning)]
    assert len(messages) == 1
    assert f"plugin {TESTPLUGIN!r}" in messages[0]
    assert "ImportError: memsift-testplugin was told to fail on import" in messages[0]

    info = plugin_record()
    assert not info.loaded and not info.blocked
    assert info.error is not None and info.error.startswith("ImportError")
    assert info.providers == []
    # every other provider still works
    assert spec.plugin == "memsift.builtin.bm25"
    memsift.MemoryConfig.from_dict({"reranker": {"provider": "bm25"}})
    with pytest.raises(ProviderNotFoundError):
        registry.get_reranker("scripted")


def test_missing_plugin_module_names_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, **{"memsift-ghost": "memsift_ghost_module_that_is_not_there"})
    plugins.reload_plugins()

    with pytest.warns(PluginLoadWarning, match=r"plugin 'memsift-ghost'.*ModuleNotFoundError"):
        registry.get_reranker("scripted")
    info = plugins.get_plugin_host().infos["memsift-ghost"]
    assert not info.loaded
    assert info.error is not None and "memsift_ghost_module_that_is_not_there" in info.error


def test_import_failure_in_a_real_process_does_not_crash_the_command() -> None:
    result = run_memsift("plugins", "--json", "--all", env=subprocess_env(**{FAIL_IMPORT_ENV: "1"}))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    row = rows[TESTPLUGIN]
    assert row["loaded"] is False
    assert row["blocked"] is False
    assert row["error"].startswith("ImportError")
    assert "told to fail on import" in row["error"]
    assert row["providers"] == []
    assert "PluginLoadWarning" in result.stderr
    assert TESTPLUGIN in result.stderr
    assert "Traceback" not in result.stderr
    # the built-ins are still listed with their providers
    assert {"kind": "reranker", "name": "bm25"}.items() <= rows["memsift.builtin.bm25"][
        "providers"
    ][0].items()


def test_importing_memsift_loads_no_plugin() -> None:
    code = (
        "import sys, memsift\n"
        "from memsift import MemoryConfig, Memory, registry\n"
        f"assert {TESTPLUGIN_MODULE!r} not in sys.modules, 'loaded at import'\n"
        "assert 'memsift.builtin.faiss_store' not in sys.modules, 'built-ins at import'\n"
        "registry.get_reranker('bm25')\n"
        f"assert {TESTPLUGIN_MODULE!r} in sys.modules, 'not loaded on first lookup'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------- duplicates


def test_duplicate_of_a_builtin_names_both_plugins() -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register("bm25", ConstantReranker, RerankerConfig)

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-impostor")

    with pytest.raises(PluginError) as caught:
        registry.get_reranker("bm25")
    message = str(caught.value)
    assert "'bm25'" in message
    assert "'memsift.builtin.bm25'" in message
    assert "'memsift-impostor'" in message
    assert "MEMSIFT_LOAD_PLUGINS" in message
    # the registry as a whole is refused, not only the clashing name
    with pytest.raises(PluginError):
        registry.get_vector_store("faiss")


def test_duplicate_of_an_entry_point_plugin_names_both_plugins() -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register("scripted", OtherReranker, RerankerConfig)

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-copycat")

    with pytest.raises(PluginError, match="registered twice") as caught:
        registry.get_reranker("scripted")
    assert f"{TESTPLUGIN!r}" in str(caught.value)
    assert "'memsift-copycat'" in str(caught.value)


def _reranker_module(module_name: str, provider: str) -> types.ModuleType:
    def body(r: ProviderRegistrar) -> None:
        r.register(provider, ConstantReranker, RerankerConfig)

    module = hook_plugin("register_rerankers", body)
    module.__name__ = module_name
    return module


def test_duplicate_between_two_distributions_and_the_allow_list_remedy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(
        monkeypatch,
        **{
            "memsift-alpha": _reranker_module("memsift_alpha", "shared_name"),
            "memsift-beta": _reranker_module("memsift_beta", "shared_name"),
        },
    )
    plugins.reload_plugins()
    with pytest.raises(PluginError) as caught:
        registry.get_reranker("shared_name")
    assert "'memsift-alpha'" in str(caught.value)
    assert "'memsift-beta'" in str(caught.value)

    # what the message suggests works: allow one of them
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, f"memsift-beta,{TESTPLUGIN}")
    plugins.reload_plugins()
    assert registry.get_reranker("shared_name").plugin == "memsift-beta"
    assert plugins.get_plugin_host().infos["memsift-alpha"].blocked


def test_plugin_registering_one_name_twice_is_an_error() -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register("twice", ConstantReranker, RerankerConfig)
        r.register("twice", OtherReranker, RerankerConfig)

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-stutter")
    with pytest.raises(PluginError, match="'twice' is registered twice"):
        registry.get_registry()


def test_same_name_in_two_kinds_is_not_a_clash() -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register("bm25", TinyEmbedder, TinyEmbedderConfig)

    add_to_manager(hook_plugin("register_embedders", body), "memsift-namesake")
    assert registry.get_embedder("bm25").factory is TinyEmbedder
    assert registry.get_reranker("bm25").plugin == "memsift.builtin.bm25"


# --------------------------------------------------------------------------- bad registrations


class LooseConfig(BaseModel):
    """Pydantic's default: unknown keys silently ignored."""

    x: int = 1


class PermissiveConfig(BaseModel):
    model_config = ConfigDict(extra="allow")


@dataclass
class DataclassConfig:
    x: int = 1


def _not_a_class(query: str, documents: Sequence[str]) -> list[float]:
    return [0.5] * len(documents)


BadCase = tuple[Hook, Any, Any, Any, str]

BAD_REGISTRATIONS: dict[str, BadCase] = {
    # hook, name, provider, config, what the message must say
    "embedder-as-reranker": (
        "register_rerankers",
        "wrong_base",
        TinyEmbedder,
        RerankerConfig,
        "subclass of memsift.Reranker",
    ),
    "reranker-as-embedder": (
        "register_embedders",
        "wrong_base",
        ConstantReranker,
        EmbedderConfig,
        "subclass of memsift.Embedder",
    ),
    "reranker-as-llm": (
        "register_llms",
        "wrong_base",
        ConstantReranker,
        RerankerConfig,
        "subclass of memsift.LLM",
    ),
    "reranker-as-store": (
        "register_vector_stores",
        "wrong_base",
        ConstantReranker,
        RerankerConfig,
        "subclass of memsift.VectorStore",
    ),
    "instance-not-class": (
        "register_rerankers",
        "instance",
        ConstantReranker(RerankerConfig()),
        RerankerConfig,
        "subclass of memsift.Reranker",
    ),
    "function-not-class": (
        "register_rerankers",
        "function",
        _not_a_class,
        RerankerConfig,
        "subclass of memsift.Reranker",
    ),
    "plain-object": (
        "register_rerankers",
        "plain",
        object,
        RerankerConfig,
        "subclass of memsift.Reranker",
    ),
    "config-none": ("register_rerankers", "no_config", ConstantReranker, None, "pydantic model"),
    "config-dict": ("register_rerankers", "dict_config", ConstantReranker, {}, "pydantic model"),
    "config-dataclass": (
        "register_rerankers",
        "dc_config",
        ConstantReranker,
        DataclassConfig,
        "pydantic model",
    ),
    "config-instance": (
        "register_rerankers",
        "inst_config",
        ConstantReranker,
        RerankerConfig(),
        "pydantic model",
    ),
    "config-ignores-extra": (
        "register_rerankers",
        "loose",
        ConstantReranker,
        LooseConfig,
        "LooseConfig must forbid unknown keys",
    ),
    "config-allows-extra": (
        "register_rerankers",
        "permissive",
        ConstantReranker,
        PermissiveConfig,
        "PermissiveConfig must forbid unknown keys",
    ),
    "name-empty": ("register_rerankers", "", ConstantReranker, RerankerConfig, "the name must"),
    "name-uppercase": (
        "register_rerankers",
        "BM25x",
        ConstantReranker,
        RerankerConfig,
        "the name must",
    ),
    "name-space": (
        "register_rerankers",
        "two words",
        ConstantReranker,
        RerankerConfig,
        "the name must",
    ),
    "name-digit-first": (
        "register_rerankers",
        "9lives",
        ConstantReranker,
        RerankerConfig,
        "the name must",
    ),
    "name-dot": ("register_rerankers", "a.b", ConstantReranker, RerankerConfig, "the name must"),
    "name-too-long": (
        "register_rerankers",
        "x" * 65,
        ConstantReranker,
        RerankerConfig,
        "the name must",
    ),
    "name-not-str": ("register_rerankers", 7, ConstantReranker, RerankerConfig, "the name must"),
}


@pytest.mark.parametrize(
    ("hook", "name", "provider", "config", "expected"),
    list(BAD_REGISTRATIONS.values()),
    ids=list(BAD_REGISTRATIONS),
)
def test_invalid_registration_is_a_clear_plugin_error(
    hook: Hook, name: Any, provider: Any, config: Any, expected: str
) -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register(name, provider, config)

    add_to_manager(hook_plugin(hook, body), "memsift-sloppy")

    with pytest.raises(PluginError) as caught:
        registry.get_registry()
    message = str(caught.value)
    assert "plugin 'memsift-sloppy'" in message
    assert repr(name) in message
    assert expected in message


def test_description_must_be_a_string() -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register("described", ConstantReranker, RerankerConfig, description=42)  # type: ignore[arg-type]

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-mute")
    with pytest.raises(PluginError, match="description must be a string"):
        registry.get_registry()


@pytest.mark.parametrize("name", ["a", "zero_entropy", "sentence-transformer", "x" * 64, "r2d2"])
def test_valid_names_are_accepted(name: str) -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register(name, ConstantReranker, RerankerConfig, description="first line\nsecond line")

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-fine")
    spec = registry.get_reranker(name)
    assert spec.factory is ConstantReranker
    assert spec.config_model is RerankerConfig
    assert spec.plugin == "memsift-fine"
    assert spec.description == "first line"


# --------------------------------------------------------------------------- failing hooks


def test_hook_that_raises_is_warned_and_skipped() -> None:
    def body(r: ProviderRegistrar) -> None:
        raise RuntimeError("registration exploded")

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-fragile")

    with pytest.warns(PluginLoadWarning) as record:
        spec = registry.get_reranker("bm25")
    (message,) = [str(w.message) for w in record if issubclass(w.category, PluginLoadWarning)]
    assert "'memsift-fragile'" in message
    assert "register_rerankers" in message
    assert "RuntimeError: registration exploded" in message
    assert spec.name == "bm25"
    assert registry.get_reranker("scripted").plugin == plugin_record().name


def test_entry_point_plugin_whose_hook_raises_records_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def body(r: ProviderRegistrar) -> None:
        raise KeyError("no such model")

    module = hook_plugin("register_llms", body)
    module.__name__ = "memsift_brittle"
    fake_entry_points(monkeypatch, **{"memsift-brittle": module})
    plugins.reload_plugins()

    with pytest.warns(PluginLoadWarning, match="'memsift-brittle' failed in register_llms"):
        registry.get_llm("echo")
    info = plugins.get_plugin_host().infos["memsift-brittle"]
    assert info.error is not None and info.error.startswith("KeyError")
    assert info.providers == []


def test_hook_that_raises_half_way_leaves_nothing_registered() -> None:
    def body(r: ProviderRegistrar) -> None:
        r.register("half_done", ConstantReranker, RerankerConfig)
        raise RuntimeError("second registration failed")

    add_to_manager(hook_plugin("register_rerankers", body), "memsift-halfway")
    with pytest.warns(PluginLoadWarning, match="was skipped"):
        reg = registry.get_registry()
    assert "half_done" not in reg.specs["reranker"]


# --------------------------------------------------------------------------- observer hook


class SearchRecorder:
    """An observer plugin implementing ``memsift_search_completed``."""

    def __init__(self) -> None:
        self.events: list[SearchEvent] = []

    @memsift.hookimpl
    def memsift_search_completed(self, event: SearchEvent) -> None:
        self.events.append(event)


class BrokenObserver:
    @memsift.hookimpl
    def memsift_search_completed(self, event: SearchEvent) -> None:
        raise RuntimeError("metrics backend down")


class TinyEmbedderPlugin:
    @memsift.hookimpl
    def register_embedders(self, registry: ProviderRegistrar) -> None:
        registry.register("tiny", TinyEmbedder, TinyEmbedderConfig)


def _observed_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "tiny"},
        "vector_store": {"provider": "faiss", "config": {"path": str(tmp_path / "store")}},
        "reranker": {"provider": "bm25"},
    }


def test_search_completed_hook_sees_every_search_and_cannot_break_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = SearchRecorder()
    add_to_manager(TinyEmbedderPlugin(), "memsift-tiny")
    add_to_manager(BrokenObserver(), "memsift-broken-observer")
    add_to_manager(recorder, "memsift-recorder")

    with memsift.Memory.from_config(_observed_config(tmp_path)) as m:
        m.add(["I love pizza", "The car is red", "Pizza in Naples"], user_id="alice", infer=False)
        assert recorder.events == []
        with caplog.at_level(logging.ERROR):
            response = m.search("pizza", user_id="alice", top_k=2)

    assert len(response["results"]) == 2
    (event,) = recorder.events
    assert event.query == "pizza"
    assert event.top_k == 2
    assert event.results == 2
    assert event.candidates == 3
    assert event.is_async is False
    assert event.rerank["applied"] is True
    assert event.rerank["provider"] == "bm25"
    assert event.timings["total_ms"] >= 0.0
    assert "memsift-broken-observer" in caplog.text


async def test_search_completed_hook_runs_for_async_searches(tmp_path: Path) -> None:
    recorder = SearchRecorder()
    add_to_manager(TinyEmbedderPlugin(), "memsift-tiny")
    add_to_manager(recorder, "memsift-recorder")

    async with memsift.AsyncMemory.from_config(_observed_config(tmp_path)) as m:
        await m.add("I love pizza", user_id="bob", infer=False)
        await m.search("pizza", user_id="bob", rerank=False)

    (event,) = recorder.events
    assert event.is_async is True
    assert event.rerank["applied"] is False


# --------------------------------------------------------------------------- lazy, once


@pytest.fixture
def entry_point_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the entry-point scans of the plugin host (a little slow, to widen races)."""
    calls: list[str] = []
    real = importlib.metadata.entry_points

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs.get("group", ""))
        time.sleep(0.02)
        return real(**kwargs)

    monkeypatch.setattr(plugins, "entry_points", counting)
    return calls


def test_plugins_load_lazily_and_once(entry_point_calls: list[str]) -> None:
    plugins.reload_plugins()
    assert entry_point_calls == []  # reloading only forgets

    registry.get_reranker("bm25")
    assert entry_point_calls == [plugins.ENTRY_POINT_GROUP]

    host = plugins.get_plugin_host()
    registry.get_reranker("scripted")
    registry.list_providers("embedder")
    memsift.MemoryConfig.from_dict({"reranker": {"provider": "bm25"}})
    with pytest.raises(ProviderNotFoundError):
        registry.get_llm("nothing_like_this")
    assert plugins.get_plugin_host() is host
    assert plugins.get_plugin_manager() is host.manager
    assert registry.get_registry() is registry.get_registry()
    assert entry_point_calls == [plugins.ENTRY_POINT_GROUP]


def test_reload_plugins_loads_again(entry_point_calls: list[str]) -> None:
    first = plugins.get_plugin_host()
    plugins.reload_plugins()
    second = plugins.get_plugin_host()
    assert second is not first
    assert len(entry_point_calls) == 2


@pytest.mark.parametrize(
    "first_use",
    [registry.get_registry, plugins.get_plugin_host],
    ids=["get_registry", "get_plugin_host"],
)
def test_concurrent_first_use_loads_once(
    entry_point_calls: list[str], first_use: Callable[[], object]
) -> None:
    barrier = threading.Barrier(8)
    seen: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            seen.append(first_use())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 8
    assert all(r is seen[0] for r in seen)
    assert entry_point_calls == [plugins.ENTRY_POINT_GROUP]


def test_forgetting_the_registry_does_not_duplicate_provider_lists() -> None:
    registry.get_registry()
    before = list(plugin_record().providers)
    registry.forget()
    registry.get_registry()
    assert plugin_record().providers == before
