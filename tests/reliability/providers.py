"""The hosted providers the reliability drills exercise, each with its fake served on 127.0.0.1.

:data:`PROVIDERS` is a tuple of :class:`HostedProvider`, one per target (``BY_NAME`` maps the
names to them):

=========================  ========  ==============================================
name                       kind      provider, against which fake
=========================  ========  ==============================================
``cohere``                 reranker  ``cohere``, FakeCohereAPI
``zeroentropy``            reranker  ``zero_entropy``, FakeZeroEntropyAPI
``huggingface``            reranker  ``huggingface`` (endpoint mode), FakeTEI
``llm_reranker-openai``    reranker  ``llm_reranker`` over the ``openai`` llm, FakeOpenAI
``llm_reranker-anthropic`` reranker  ``llm_reranker`` over ``anthropic``, FakeAnthropicAPI
``openai-llm``             llm       ``openai`` (for ``add(infer=True)``), FakeOpenAI
``anthropic-llm``          llm       ``anthropic``, FakeAnthropicAPI
``openai-embedder``        embedder  ``openai``, FakeOpenAI
=========================  ========  ==============================================

A :class:`HostedProvider` has:

``name``, ``kind`` (``"reranker"`` | ``"llm"`` | ``"embedder"``), ``provider`` (the registered
provider name), ``section`` (the Memory config section it sits in: ``reranker``, ``llm`` or
``embedder``), ``endpoint`` (the path of the API route the target calls, e.g. ``/v2/rerank``);
``key_envs``
    the environment variables the provider reads its key from when the config gives none,
    first set wins (for ``llm_reranker-*``: those of the llm it scores with);
``serve(api_key)``
    a context manager: a fresh threaded HTTP server on 127.0.0.1 with the target's fake on
    it, accepting only ``api_key``; it yields a :class:`Served`, and stops the server on exit;
``mutations`` and ``mutate(kind, answer) -> answer``
    the target's wrong answers, by name, and a function that makes one of the fake's real
    answer (its parsed JSON): for a hosted reranker ``wrong_count``, ``bad_index``,
    ``dup_index``; for an LLM (and ``llm_reranker-*``) ``bad_answer``, ``wrong_shape``; for
    the embedder ``wrong_count``, ``wrong_dims``;
``memory_config(tmp_path, base_url, api_key, **options) -> dict``
    a full Memory config that uses the provider against ``base_url`` (pass
    ``Served.base_url``, or the URL of a proxy in front of it): the embedded ``faiss`` store
    and the history database under ``tmp_path``; the fast deterministic ``hashing`` embedder
    of :func:`memsift.drills.writer.drill_embedder` (for ``openai-embedder``: the ``openai``
    embedder against the fake instead); for an ``llm`` target, the ``llm`` section (so that
    ``Memory.add(..., infer=True)`` calls it). ``api_key=None`` leaves the key out of the
    config: the provider reads it from ``key_envs``. ``options`` are merged into the target's
    section ``config`` last (they win); two are routed where they mean the same for every
    target: ``timeout`` (seconds: the reranker stage's timeout, and the HTTP timeout of an
    llm or embedder; for ``llm_reranker-*`` both the stage's and the nested llm's) and
    ``max_retries`` (for ``llm_reranker-*`` it goes to the nested llm). Rerankers get
    ``cache_size: 0`` unless ``options`` say otherwise (a repeated query calls the API
    again), and ``max_retries: 0`` is the default of every target here unless given.
    ``llm`` (a dict) is merged into the nested llm config of ``llm_reranker-*``.

A :class:`Served` has ``base_url`` (what the provider's ``base_url`` / ``endpoint_url`` takes),
``api_key`` (the key the fake accepts), ``host`` and ``port``, ``fake`` (the fake object
itself), ``requests`` (what the fake received, in order: objects with ``headers`` (a dict)
and ``body`` (parsed JSON, or None)), ``request_count``, ``reset()`` (forget requests and
scripted faults), ``verify()`` (fail if the client sent an invalid request; re-raise handler
errors; ends pending delays) and ``fail(status, *, body=None, headers=None, delay=0.0,
times=1, always=False)``: answer the next ``times`` requests to the target's endpoint with
HTTP ``status`` (``body``: JSON, or a ``str`` sent raw; None: the provider's own error body;
``delay``: seconds before answering), or every later request with ``always=True``.

The fakes stay in the plugins' test folders; :mod:`provider_fakes` loads them by file path,
serves them, and holds the ``mutate`` functions.

Import it in a test of this folder as ``from .providers import PROVIDERS`` (or
``reliability.providers``: pytest puts ``tests/`` on ``sys.path``; ``tests/reliability`` is a
package, ``tests`` is not).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memsift.drills.writer import drill_config

from .provider_fakes import (
    EMBED_MUTATIONS,
    LLM_MUTATIONS,
    RERANK_MUTATIONS,
    Served,
    cohere_module,
    load,
    mutate_anthropic,
    mutate_embeddings,
    mutate_openai_chat,
    mutate_rerank,
    serve_anthropic,
    serve_openai,
    serve_rerank,
    tei_module,
    zeroentropy_module,
)

Kind = Literal["reranker", "llm", "embedder"]

# --------------------------------------------------------------------------- configs


def _base(tmp_path: Path) -> dict[str, Any]:
    return drill_config(tmp_path)


def _keyed(api_key: str | None, field_name: str = "api_key") -> dict[str, Any]:
    return {} if api_key is None else {field_name: api_key}


def _hosted_reranker(
    provider: str, url_field: str, extra: dict[str, Any] | None = None
) -> Callable[..., dict[str, Any]]:
    def make(tmp_path: Path, base_url: str, api_key: str | None, **options: Any) -> dict[str, Any]:
        config = _base(tmp_path)
        section = {
            url_field: base_url,
            **_keyed(api_key),
            "cache_size": 0,
            "max_retries": 0,
            **(extra or {}),
            **options,
        }
        config["reranker"] = {"provider": provider, "config": section}
        return config

    return make


def _llm_reranker(llm_provider: str, model: str) -> Callable[..., dict[str, Any]]:
    def make(tmp_path: Path, base_url: str, api_key: str | None, **options: Any) -> dict[str, Any]:
        config = _base(tmp_path)
        nested: dict[str, Any] = {"base_url": base_url, "max_retries": 0}
        if "max_retries" in options:
            nested["max_retries"] = options.pop("max_retries")
        if "timeout" in options:
            nested["timeout"] = options["timeout"]
        nested.update(options.pop("llm", None) or {})
        section = {
            "provider": llm_provider,
            "model": model,
            **_keyed(api_key),
            "cache_size": 0,
            "llm": {"provider": llm_provider, "config": nested},
            **options,
        }
        config["reranker"] = {"provider": "llm_reranker", "config": section}
        return config

    return make


def _llm(provider: str, model: str) -> Callable[..., dict[str, Any]]:
    def make(tmp_path: Path, base_url: str, api_key: str | None, **options: Any) -> dict[str, Any]:
        config = _base(tmp_path)
        section = {"model": model, "base_url": base_url, **_keyed(api_key), "max_retries": 0}
        config["llm"] = {"provider": provider, "config": {**section, **options}}
        return config

    return make


def _openai_embedder(
    tmp_path: Path, base_url: str, api_key: str | None, **options: Any
) -> dict[str, Any]:
    config = _base(tmp_path)
    section = {
        "model": "text-embedding-3-small",
        "base_url": base_url,
        **_keyed(api_key),
        "max_retries": 0,
    }
    config["embedder"] = {"provider": "openai", "config": {**section, **options}}
    return config


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class HostedProvider:
    """One target of the drills; see the module docstring."""

    name: str
    kind: Kind
    provider: str
    key_envs: tuple[str, ...]
    endpoint: str
    serve: Callable[[str], AbstractContextManager[Served]]
    memory_config: Callable[..., dict[str, Any]]
    #: the wrong answers :attr:`mutate` makes of the fake's real answer (its JSON)
    mutations: tuple[str, ...] = ()
    mutate: Callable[[str, Any], Any] = field(default=lambda kind, answer: answer)

    @property
    def section(self) -> str:
        return self.kind


OPENAI_KEYS = ("OPENAI_API_KEY",)
ANTHROPIC_KEYS = ("ANTHROPIC_API_KEY",)

PROVIDERS: tuple[HostedProvider, ...] = (
    HostedProvider(
        name="cohere",
        kind="reranker",
        provider="cohere",
        key_envs=("CO_API_KEY", "COHERE_API_KEY"),
        endpoint="/v2/rerank",
        serve=lambda key: serve_rerank(lambda: cohere_module().FakeCohereAPI, key),
        memory_config=_hosted_reranker("cohere", "base_url"),
        mutations=RERANK_MUTATIONS,
        mutate=mutate_rerank,
    ),
    HostedProvider(
        name="zeroentropy",
        kind="reranker",
        provider="zero_entropy",
        key_envs=("ZEROENTROPY_API_KEY", "ZERO_ENTROPY_API_KEY"),
        endpoint="/v1/models/rerank",
        serve=lambda key: serve_rerank(lambda: zeroentropy_module().FakeZeroEntropyAPI, key),
        memory_config=_hosted_reranker("zero_entropy", "base_url"),
        mutations=RERANK_MUTATIONS,
        mutate=mutate_rerank,
    ),
    HostedProvider(
        name="huggingface",
        kind="reranker",
        provider="huggingface",
        key_envs=("HF_TOKEN",),
        endpoint="/rerank",
        serve=lambda key: serve_rerank(lambda: tei_module().FakeTEI, key),
        memory_config=_hosted_reranker("huggingface", "endpoint_url", {"backoff": 0.01}),
        mutations=RERANK_MUTATIONS,
        mutate=mutate_rerank,
    ),
    HostedProvider(
        name="llm_reranker-openai",
        kind="reranker",
        provider="llm_reranker",
        key_envs=OPENAI_KEYS,
        endpoint="/v1/chat/completions",
        serve=lambda key: serve_openai(key, "chat", reranking=True),
        memory_config=_llm_reranker("openai", "gpt-5-mini"),
        mutations=LLM_MUTATIONS,
        mutate=mutate_openai_chat,
    ),
    HostedProvider(
        name="llm_reranker-anthropic",
        kind="reranker",
        provider="llm_reranker",
        key_envs=ANTHROPIC_KEYS,
        endpoint="/v1/messages",
        serve=serve_anthropic,
        memory_config=_llm_reranker("anthropic", "claude-haiku-4-5"),
        mutations=LLM_MUTATIONS,
        mutate=mutate_anthropic,
    ),
    HostedProvider(
        name="openai-llm",
        kind="llm",
        provider="openai",
        key_envs=OPENAI_KEYS,
        endpoint="/v1/chat/completions",
        serve=lambda key: serve_openai(key, "chat"),
        memory_config=_llm("openai", "gpt-5-mini"),
        mutations=LLM_MUTATIONS,
        mutate=mutate_openai_chat,
    ),
    HostedProvider(
        name="anthropic-llm",
        kind="llm",
        provider="anthropic",
        key_envs=ANTHROPIC_KEYS,
        endpoint="/v1/messages",
        serve=serve_anthropic,
        memory_config=_llm("anthropic", "claude-haiku-4-5"),
        mutations=LLM_MUTATIONS,
        mutate=mutate_anthropic,
    ),
    HostedProvider(
        name="openai-embedder",
        kind="embedder",
        provider="openai",
        key_envs=OPENAI_KEYS,
        endpoint="/v1/embeddings",
        serve=lambda key: serve_openai(key, "embeddings"),
        memory_config=_openai_embedder,
        mutations=EMBED_MUTATIONS,
        mutate=mutate_embeddings,
    ),
)

BY_NAME: dict[str, HostedProvider] = {p.name: p for p in PROVIDERS}

__all__ = ["BY_NAME", "PROVIDERS", "HostedProvider", "Kind", "Served", "load"]
