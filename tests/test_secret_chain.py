"""No secret anywhere in a memsift error's exception chain.

A message that is scrubbed is not enough: ``raise X from None`` only hides the exception
that was being handled (``__suppress_context__``); ``__context__`` still holds it, and error
trackers and code that walks the chain reach it. pydantic's ValidationError quotes the
offending ``input_value``, an SDK's error holds the error body that echoes the key. These
tests walk everything reachable from the raised error: ``__cause__`` and ``__context__``
recursively, the exceptions held by its traceback's frames, and the full
``traceback.format_exception`` text.

Every config path is checked with a hosted-style provider registered here, and with every
installed provider whose config has a secret field (in a plugin's environment, that
includes the plugin's providers).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import Field, SecretStr

import memsift
from memsift import plugins, registry
from memsift.config import MemoryConfig, ProviderSection, resolve_section
from memsift.errors import ConfigError, RerankError
from memsift.interfaces import PROVIDER_KINDS, Reranker, check_rerank_input
from memsift.kit.hosted import Failure, Retrier, clean_error, scrub
from memsift.registry import ProviderRegistrar

SECRET_ENV = "MEMSIFT_CHAIN_TEST_KEY"
SECRET = "sk-chain-4f3e2d1c0b9a-do-not-leak"
SECRET_INT = 918273645546372819
#: Wrong-typed values of a secret field, each holding the secret.
WRONG: dict[str, Any] = {
    "list": [SECRET],
    "dict": {"key": SECRET},
    "int": SECRET_INT,
}
NEEDLES = (SECRET, str(SECRET_INT))


# --------------------------------------------------------------------------- the walk


def reachable(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it: causes, contexts, and the
    exceptions held by local variables of its traceback's frames, recursively."""
    seen: set[int] = set()
    out: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        stack.extend((current.__cause__, current.__context__))
        tb = current.__traceback__
        while tb is not None:
            stack.extend(v for v in tb.tb_frame.f_locals.values() if isinstance(v, BaseException))
            tb = tb.tb_next
    return out


def assert_no_secret(error: BaseException, needles: Sequence[str] = NEEDLES) -> None:
    for found in reachable(error):
        for text in (str(found), repr(found), repr(found.args)):
            for needle in needles:
                assert needle not in text, f"{type(found).__name__} in the chain holds it"
    text = "".join(traceback.format_exception(error))
    for needle in needles:
        assert needle not in text


# --------------------------------------------------------------------------- a keyed provider


class KeyedConfig(memsift.RerankerConfig):
    """A hosted-style config: the key from the config or MEMSIFT_CHAIN_TEST_KEY."""

    model: str = "keyed-v1"
    api_key: SecretStr | None = Field(default_factory=memsift.env_secret(SECRET_ENV))
    max_retries: int = Field(default=2, ge=0)


class KeyedReranker(Reranker):
    config: KeyedConfig

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return [0.5] * len(check_rerank_input(query, documents))


class KeyedPlugin:
    @memsift.hookimpl
    def register_rerankers(self, registry: ProviderRegistrar) -> None:
        registry.register("keyed", KeyedReranker, KeyedConfig, description="needs a key")


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``keyed`` reranker is installed for every test here, and dropped after."""
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    plugins.reload_plugins()
    plugins.get_plugin_host().manager.register(KeyedPlugin(), name="memsift-keyed")
    registry.forget()
    yield
    plugins.reload_plugins()


def keyed_section(**config: Any) -> dict[str, Any]:
    return {"provider": "keyed", "config": config}


def config_error(call: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    return caught.value


# --------------------------------------------------------------------------- config paths


@pytest.mark.parametrize("wrong", sorted(WRONG))
@pytest.mark.parametrize("path", ["from_dict", "memory_from_config", "resolve_section", "resolve"])
def test_a_wrong_typed_api_key_stays_out_of_the_chain(
    path: str, wrong: str, tmp_path: Path
) -> None:
    section = keyed_section(api_key=WRONG[wrong])
    store = {"provider": "faiss", "config": {"path": str(tmp_path / "store")}}
    calls = {
        "from_dict": lambda: MemoryConfig.from_dict({"reranker": section}),
        "memory_from_config": lambda: memsift.Memory.from_config(
            {"vector_store": store, "reranker": section}
        ),
        "resolve_section": lambda: resolve_section("reranker", section),
        "resolve": lambda: MemoryConfig(reranker=ProviderSection(**section)).resolve(),
    }
    error = config_error(calls[path])
    assert "api_key" in str(error)
    assert_no_secret(error)


@pytest.mark.parametrize("wrong", sorted(WRONG))
def test_a_secret_in_a_malformed_section_stays_out_of_the_chain(wrong: str) -> None:
    # the section itself is wrong (an unknown key beside provider/config)
    bad = {**keyed_section(), "api_key": WRONG[wrong]}
    for call in (
        lambda: MemoryConfig.from_dict({"reranker": bad}),
        lambda: resolve_section("reranker", bad),
    ):
        error = config_error(call)
        assert "unknown key 'api_key'" in str(error)
        assert_no_secret(error)


def _secret_fields(model: type[Any]) -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if annotation is SecretStr or SecretStr in get_args(annotation):
            out.append(name)
    return out


def test_every_installed_provider_with_a_secret_keeps_it_out_of_the_chain() -> None:
    checked: list[str] = []
    for kind in PROVIDER_KINDS:
        for spec in registry.list_providers(kind):
            for field in _secret_fields(spec.config_model):
                for value in WRONG.values():
                    config = {kind: {"provider": spec.name, "config": {field: value}}}
                    error = config_error(lambda config=config: MemoryConfig.from_dict(config))
                    assert_no_secret(error)
                checked.append(f"{kind} {spec.name}.{field}")
    assert "reranker keyed.api_key" in checked


def test_a_secret_from_the_environment_stays_out_of_the_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    ok = MemoryConfig.from_dict({"reranker": keyed_section()})
    assert ok.reranker is not None
    assert ok.reranker.config.api_key.get_secret_value() == SECRET
    error = config_error(
        lambda: MemoryConfig.from_dict({"reranker": keyed_section(max_retries=-1)})
    )
    assert "max_retries" in str(error)
    assert_no_secret(error)


def test_a_raw_section_does_not_show_its_secret_in_a_repr() -> None:
    section = ProviderSection(provider="keyed", config={"api_key": SECRET, "model": "m"})
    assert SECRET not in repr(section)
    assert "'model': 'm'" in repr(section)


def test_a_raw_section_masks_nested_secrets_in_its_repr_and_str() -> None:
    """An LLM reranker's nested ``llm: {config: {api_key}}``, before validation, and in a
    MemoryConfig built directly (not resolved yet)."""
    nested = {"llm": {"provider": "openai", "config": {"api_key": SECRET, "model": "m"}}}
    section = ProviderSection(
        provider="keyed", config={**nested, "extra": [{"auth_header": f"Bearer {SECRET}"}]}
    )
    config = MemoryConfig(reranker=section)
    for text in (repr(section), str(section), repr(config), str(config)):
        assert SECRET not in text
        assert "'model': 'm'" in text and "'api_key': '**********'" in text


# --------------------------------------------------------------------------- the helpers


def _raised_in_handler(make: Any) -> BaseException:
    """An error raised, with ``from None``, while a secret-holding error was handled."""
    try:
        try:
            raise ValueError(f"input_value={[SECRET]!r}")
        except ValueError:
            raise make() from None
    except BaseException as caught:
        return caught


def test_the_old_way_leaks_and_clean_error_does_not() -> None:
    leaky = _raised_in_handler(lambda: ConfigError("bad api_key"))
    assert leaky.__suppress_context__ and leaky.__context__ is not None
    assert SECRET in repr(leaky.__context__)  # what the defect was

    cleaned = clean_error(leaky)
    assert cleaned is leaky
    assert cleaned.__context__ is None and cleaned.__cause__ is None
    assert_no_secret(cleaned)


def test_clean_error_scrubs_the_secret_from_the_message() -> None:
    error = clean_error(RerankError("p", f"got 'Bearer {SECRET}'", status=401), SecretStr(SECRET))
    assert SECRET not in str(error) and SECRET not in error.message
    assert "Bearer ***" in str(error) and error.status == 401
    assert_no_secret(error)


@pytest.mark.parametrize("status", [401, 429, 500])
def test_retrier_errors_carry_neither_the_chain_nor_the_key(status: int) -> None:
    """Even a provider that forgets to scrub, and raises inside its except block."""
    retrier = Retrier(
        "p", max_retries=1, timeout=0.5, request_timeout=0.5, backoff=0.0, secret=SECRET
    )

    class SDKError(Exception):
        pass

    def send(timeout: float) -> list[float]:
        try:
            raise SDKError(f"invalid api token: got 'Bearer {SECRET}'")
        except SDKError as exc:  # a provider's own mapping, raised in the handler
            raise RerankError("p", f"{exc}", status=status) from None

    with pytest.raises(RerankError) as info:
        retrier.call(send, lambda exc: Failure(RerankError("p", str(exc))))
    assert info.value.status == status
    assert_no_secret(info.value)


def test_retrier_translations_are_raised_without_the_sdk_error() -> None:
    retrier = Retrier("p", max_retries=0, timeout=None, request_timeout=1.0, secret=SECRET)

    def send(timeout: float) -> list[float]:
        raise RuntimeError(f"401: got 'Bearer {SECRET}'")

    def translate(exc: Exception) -> Failure:
        return Failure(RerankError("p", scrub(str(exc), SECRET), status=401))

    with pytest.raises(RerankError) as info:
        retrier.call(send, translate)
    assert "Bearer ***" in str(info.value)
    assert info.value.__context__ is None
    assert_no_secret(info.value)


# --------------------------------------------------------------------------- echoes and logs


def test_scrub_masks_an_echoed_authorization_value_whatever_key_it_holds() -> None:
    basic = "Basic ZHJpbGw6c2stdXJsY3JlZC1TZWNyZXQxMjM0NTY="  # user:password of a URL
    assert scrub(f"Incorrect API key provided: {basic}.", SECRET) == (
        "Incorrect API key provided: Basic ***."
    )
    assert scrub("got 'Bearer sk-other-0123456789'", SECRET) == "got 'Bearer ***'"
    assert scrub("Basic authentication is required; Bearer tokens expire", None) == (
        "Basic authentication is required; Bearer tokens expire"
    )


def test_sdk_log_records_lose_url_credentials_and_registered_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx logs each request's URL at INFO, an SDK the error it handles at DEBUG: a URL's
    ``user:password`` and a registered key are masked in the message and the exception."""
    from memsift.kit.clients import ClientPair
    from memsift.kit.redact import REDACTED_LOGGERS, install_log_redaction

    ClientPair(object, object, secret=SECRET)  # building a provider's clients installs it
    assert all(
        any(f is install_log_redaction() for f in logging.getLogger(name).filters)
        for name in REDACTED_LOGGERS
    )
    url = f"http://user:{SECRET}@127.0.0.1:9/v1"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpx").info('HTTP Request: %s %s "%d"', "POST", url, 401)
        try:
            raise RuntimeError(f"Client error for url '{url}'")
        except RuntimeError:
            logging.getLogger("openai._base_client").debug("Encountered", exc_info=True)
        logging.getLogger("anthropic._base_client").debug("options %s", {"key": SECRET})
    assert SECRET not in caplog.text
    assert 'HTTP Request: POST http://***@127.0.0.1:9/v1 "401"' in caplog.text
    assert "for url 'http://***@127.0.0.1:9/v1'" in caplog.text
    assert "options {'key': '***'}" in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


def test_a_cut_off_key_is_masked_too() -> None:
    """An excerpt cut inside the key (a body shortened before it was scrubbed) leaves its
    start, which the scrub of the whole key would not find."""
    cut = f"internal error while serving {SECRET[:14]}"
    assert scrub(cut, SECRET) == "internal error while serving ***"
    error = clean_error(RerankError("p", f"{cut}... and {SECRET}"), SecretStr(SECRET))
    assert SECRET[:8] not in str(error) and error.message.count("***") == 2
    assert scrub(f"keys start with {SECRET[:5]}", SECRET) == f"keys start with {SECRET[:5]}"
