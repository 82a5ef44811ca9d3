"""Secret scenarios of :class:`memsift.testing.hosted_pipeline.HostedRerankerPipelineConformance`.

The API key appears nowhere in what a failure lets a reader reach: not in the raised
error's message (a server may echo the key), not in the exception it came from
(``__cause__`` / ``__context__``, recursively), not in exceptions held by its traceback's
frames, not in the formatted traceback (:func:`memsift.testing.assert_secret_absent`), not
in the search's ``rerank`` block, and not in the logs. The scenarios are a mixin of the
pipeline suite, which provides their fixtures; they are not meant to be subclassed alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from memsift.config import MemoryConfig
from memsift.errors import ConfigError, RerankError
from memsift.registry import get_reranker
from memsift.testing.fake_rerank_api import FakeRerankAPI, Fault
from memsift.testing.hosted_retries import call
from memsift.testing.secrets import assert_secret_absent

#: A wrong-typed key that is a number: it must not show either.
SECRET_NUMBER = 918273645546372819

#: The answers that echo the key: name -> the status of the error they must give.
ECHOES: dict[str, int] = {
    "401-echo": 401,
    "401-text-body": 401,
    "500-echo": 500,
    "429-long-wait": 429,
    "429-exhausted": 429,
}


def echo_of(key: str) -> str:
    """An error message that echoes the key, as some APIs do."""
    return f"invalid api token: got 'Bearer {key}'"


def script_echo(api: FakeRerankAPI, name: str) -> None:
    """Script the fault ``name`` of :data:`ECHOES` on ``api``: an answer echoing its key."""
    echo = echo_of(api.api_key)
    body = api.error_body(echo)
    if name == "401-echo":
        api.fail(Fault(401, body))
    elif name == "401-text-body":
        api.fail(Fault(401, echo))
    elif name == "500-echo":
        api.fail(always=Fault(500, api.error_body(f"internal error for {api.api_key}")))
    elif name == "429-long-wait":
        api.fail(Fault(429, body, {"Retry-After": "120"}))
    else:
        api.fail(always=Fault(429, body, {"Retry-After-Ms": "10"}))


class SecretChainScenarios:
    """No key in any error, exception chain, ``rerank`` block or log record.

    Class attributes: ``api_key_field`` ("api_key"), the config key of the key;
    ``key_env`` (None), the environment variable the config reads the key from when it is
    not given, and ``more_key_envs``, those it reads after it, in order (the scenarios that
    read the key from there are skipped without ``key_env``); ``key_required`` (False):
    set it when a config without a key, or with a masked one (``**********``, as a dumped
    config shows it), is an error; ``max_retries_option``, the config key of the number of
    retries; ``base_url_env`` (None), the environment variable of the API's address, and
    ``base_url_field``, its config key.
    """

    api_key_field: ClassVar[str] = "api_key"
    key_env: ClassVar[str | None] = None
    more_key_envs: ClassVar[tuple[str, ...]] = ()
    key_required: ClassVar[bool] = False
    max_retries_option: ClassVar[str] = "max_retries"
    base_url_field: ClassVar[str] = "base_url"
    base_url_env: ClassVar[str | None] = None

    def _key_envs(self) -> tuple[str, ...]:
        if self.key_env is None:
            pytest.skip("set key_env to the environment variable of the key")
        return (self.key_env, *self.more_key_envs)

    # ------------------------------------------------------------------ the config

    def _config(self, section: dict[str, Any]) -> MemoryConfig:
        return MemoryConfig.from_dict({"reranker": section})

    def test_the_key_comes_from_each_of_its_variables_the_first_winning(
        self, reranker_section: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        names = self._key_envs()
        section = reranker_section(without=(self.api_key_field,))
        for name in names:
            for other in names:
                monkeypatch.delenv(other, raising=False)
            monkeypatch.setenv(name, f"from-{name}")
            config = self._config(section).reranker
            assert config is not None
            key = getattr(config.config, self.api_key_field)
            assert key is not None and key.get_secret_value() == f"from-{name}"
        for name in names:  # every one set: the first wins
            monkeypatch.setenv(name, f"from-{name}")
        config = self._config(section).reranker
        assert config is not None
        assert getattr(config.config, self.api_key_field).get_secret_value() == f"from-{names[0]}"

    def test_a_missing_or_masked_key_is_a_clear_config_error(
        self, reranker_section: Callable[..., dict[str, Any]]
    ) -> None:
        if not self.key_required:
            pytest.skip("set key_required when a config must have a key")
        with pytest.raises(ConfigError) as info:
            self._config(reranker_section(without=(self.api_key_field,)))
        text = str(info.value)
        assert self.api_key_field in text
        for name in (self.key_env, *self.more_key_envs):
            assert name is None or name in text, f"the error should name ${name}"
        # a key copied from a printed config ("**********") must not be sent as a key
        with pytest.raises(ConfigError, match="masked"):
            self._config(reranker_section(**{self.api_key_field: "**********"}))

    def test_the_key_never_shows_in_the_config(
        self, reranker_section: Callable[..., dict[str, Any]], _api: FakeRerankAPI
    ) -> None:
        config = self._config(reranker_section())
        assert _api.api_key not in repr(config)
        assert _api.api_key not in str(config.to_dict())
        assert config.reranker is not None and _api.api_key not in repr(config.reranker.config)
        with pytest.raises(ConfigError) as info:
            self._config(reranker_section(**{self.max_retries_option: -1}))
        assert _api.api_key not in str(info.value)

    def test_a_dumped_config_loads_again_with_the_key_from_the_environment(
        self,
        reranker_section: Callable[..., dict[str, Any]],
        _api: FakeRerankAPI,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        name = self._key_envs()[0]
        dumped = self._config(reranker_section(top_k=7)).to_dict()
        assert _api.api_key not in str(dumped)
        monkeypatch.setenv(name, _api.api_key)
        again = MemoryConfig.from_dict(dumped).reranker
        assert again is not None and again.config.top_k == 7
        assert getattr(again.config, self.api_key_field).get_secret_value() == _api.api_key

    def test_an_unknown_key_is_an_error_that_lists_the_valid_ones(
        self, reranker_section: Callable[..., dict[str, Any]]
    ) -> None:
        section = reranker_section(no_such_option=5)
        with pytest.raises(ConfigError) as info:
            self._config(section)
        text = str(info.value)
        assert "unknown key 'no_such_option'" in text
        model = get_reranker(section["provider"]).config_model
        missing = [name for name in model.model_fields if name not in text]
        assert not missing, f"the error should list every valid key; it lacks {missing}"

    @pytest.mark.parametrize(
        ("option", "value"),
        [("top_k", 0), ("timeout", 0), ("on_error", "ignore"), ("cache_size", -1)],
    )
    def test_a_bad_pipeline_option_is_an_error_that_names_it(
        self, reranker_section: Callable[..., dict[str, Any]], option: str, value: Any
    ) -> None:
        with pytest.raises(ConfigError, match=option):
            self._config(reranker_section(**{option: value}))

    def test_a_bad_number_of_retries_is_an_error(
        self, reranker_section: Callable[..., dict[str, Any]]
    ) -> None:
        with pytest.raises(ConfigError, match=self.max_retries_option):
            self._config(reranker_section(**{self.max_retries_option: -1}))

    def test_every_pipeline_option_is_accepted(
        self, reranker_section: Callable[..., dict[str, Any]]
    ) -> None:
        options = {"top_k": 30, "timeout": 5, "on_error": "raise", "cache_size": 0}
        section = self._config(reranker_section(**options, **{self.max_retries_option: 4})).reranker
        assert section is not None
        config = section.config
        assert {k: getattr(config, k) for k in options} == options
        assert getattr(config, self.max_retries_option) == 4

    def test_the_key_from_each_variable_is_sent(
        self,
        build_reranker: Callable[..., Any],
        _api: FakeRerankAPI,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        names = self._key_envs()
        for name in names:
            for other in names:
                monkeypatch.delenv(other, raising=False)
            monkeypatch.setenv(name, _api.api_key)
            call(build_reranker(without=(self.api_key_field,)))
        auth = f"{_api.auth_scheme}{_api.api_key}"
        assert [r.headers.get(_api.auth_header) for r in _api.requests] == [auth] * len(names)

    def test_the_base_url_from_the_environment_is_used(
        self,
        build_reranker: Callable[..., Any],
        _api: FakeRerankAPI,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        if self.base_url_env is None:
            pytest.skip("set base_url_env to the environment variable of the base URL")
        monkeypatch.setenv(self.base_url_env, _api.base_url)
        assert call(build_reranker(without=(self.base_url_field,)))
        assert len(_api.requests) == 1

    def test_the_reranker_and_its_config_hide_the_key(
        self, build_reranker: Callable[..., Any], _api: FakeRerankAPI
    ) -> None:
        reranker = build_reranker()
        for text in (repr(reranker), repr(reranker.config), str(reranker.config)):
            assert _api.api_key not in text
        model_name = getattr(self, "model_name", None)
        if model_name is not None:
            assert reranker.model_name == model_name

    # ------------------------------------------------------------------ errors

    @pytest.mark.parametrize("echo", list(ECHOES))
    def test_an_error_body_echoing_the_key_stays_out_of_the_chain(
        self, build_reranker: Callable[..., Any], _api: FakeRerankAPI, mode: str, echo: str
    ) -> None:
        script_echo(_api, echo)
        options = {"timeout": 2.0, self.max_retries_option: 1}
        with pytest.raises(RerankError) as info:
            call(build_reranker(**options), mode)
        assert info.value.status == ECHOES[echo]
        assert "***" in str(info.value), f"the echo should be there, scrubbed: {info.value}"
        assert_secret_absent(info.value, _api.api_key)

    def test_a_key_from_the_environment_stays_out_of_the_chain(
        self,
        build_reranker: Callable[..., Any],
        _api: FakeRerankAPI,
        mode: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        if self.key_env is None:
            pytest.skip("set key_env to the environment variable of the key")
        monkeypatch.setenv(self.key_env, _api.api_key)
        reranker = build_reranker(without=(self.api_key_field,))
        script_echo(_api, "401-echo")
        with pytest.raises(RerankError) as info:
            call(reranker, mode)
        assert info.value.status == 401
        assert_secret_absent(info.value, _api.api_key)

    @pytest.mark.parametrize("shape", ["list", "dict", "int"])
    def test_a_wrong_typed_key_stays_out_of_the_config_error(
        self, reranker_section: Callable[..., dict[str, Any]], _api: FakeRerankAPI, shape: str
    ) -> None:
        key = _api.api_key
        wrong = {"list": [key], "dict": {"key": key}, "int": SECRET_NUMBER}[shape]
        section = reranker_section()
        section["config"][self.api_key_field] = wrong
        with pytest.raises(ConfigError) as info:
            MemoryConfig.from_dict({"reranker": section})
        assert self.api_key_field in str(info.value)
        assert_secret_absent(info.value, key, str(SECRET_NUMBER))

    def test_a_search_that_raises_keeps_the_key_out_of_the_chain(
        self, open_memory: Callable[..., Any], _api: FakeRerankAPI
    ) -> None:
        memory = open_memory(on_error="raise")
        script_echo(_api, "401-echo")
        with pytest.raises(RerankError) as info:
            memory.search(rerank=True)
        assert info.value.status == 401
        assert_secret_absent(info.value, _api.api_key)

    def test_a_search_that_falls_back_reports_and_logs_no_key(
        self,
        open_memory: Callable[..., Any],
        _api: FakeRerankAPI,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        memory = open_memory()
        script_echo(_api, "401-echo")
        with caplog.at_level(logging.DEBUG):
            block = memory.search(rerank=True)["rerank"]
        assert block["applied"] is False and "HTTP 401" in block["error"]
        assert _api.api_key not in block["error"]
        assert _api.api_key not in caplog.text
        for record in caplog.records:
            if record.exc_info and record.exc_info[1] is not None:
                assert_secret_absent(record.exc_info[1], _api.api_key)


__all__ = ["ECHOES", "SecretChainScenarios", "echo_of", "script_echo"]
