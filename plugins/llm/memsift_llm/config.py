"""The config of the ``llm_reranker``.

It keeps the keys users already write (``provider``, ``model``, ``api_key``, ``top_k``,
``temperature``, ``max_tokens``, ``scoring_prompt``, and a nested ``llm: {provider,
config}`` that overrides them) and adds the modes, the concurrency and the truncation. The
LLM the reranker scores with is any registered ``llm`` provider, built through the core's
registry: its config is validated when this one is (an unknown key there is an error too),
and its secrets are ``SecretStr``, kept out of reprs, errors and dumped configs.
"""

from __future__ import annotations

import string
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from memsift import RerankerConfig
from memsift.config import ProviderSection, resolve_section
from memsift.registry import get_llm

#: The llm provider used when neither ``provider`` nor ``llm.provider`` says.
DEFAULT_LLM_PROVIDER = "openai"
#: The placeholders a custom ``scoring_prompt`` must use, each exactly as written.
PLACEHOLDERS = ("query", "document")
#: The flat keys that go into the llm provider's config when given (and it has the field).
FLAT_LLM_KEYS = ("model", "api_key")


def prompt_problem(template: str) -> str | None:
    """What is wrong with a custom ``scoring_prompt``, or None: it must use ``{query}`` and
    ``{document}`` (no other placeholder, no format spec); literal braces are ``{{`` ``}}``."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"scoring_prompt is not a valid template ({exc}); write literal braces as {{{{ }}}}"
    seen: set[str] = set()
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{" + name + "}" if name else "{}"
            return (
                f"scoring_prompt has the unknown placeholder {shown}; it may use only {{query}} "
                "and {document} (write literal braces as {{ }})"
            )
        if spec or conversion:
            return (
                f"scoring_prompt: write the placeholder {{{name}}} without a format or conversion"
            )
        seen.add(name)
    missing = [f"{{{p}}}" for p in PLACEHOLDERS if p not in seen]
    if missing:
        return f"scoring_prompt must contain {' and '.join(missing)}"
    return None


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


class LLMSection(BaseModel):
    """The nested ``llm: {provider, config}``: any registered llm provider and its config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, description="a registered llm provider")
    config: dict[str, Any] = Field(
        default_factory=dict, description="the llm provider's config (base_url, model, ...)"
    )

    @model_validator(mode="before")
    @classmethod
    def _hide_secrets(cls, data: Any) -> Any:
        """The values of the provider's secret fields as SecretStr, from the start."""
        if not isinstance(data, dict) or not isinstance(data.get("provider"), str):
            return data
        config = data.get("config")
        if not isinstance(config, dict):
            return data
        fields = get_llm(data["provider"]).config_model.model_fields
        hidden = {
            key: SecretStr(value)
            if key in fields and _is_secret(fields[key].annotation) and isinstance(value, str)
            else value
            for key, value in config.items()
        }
        return {**data, "config": hidden}

    @field_serializer("config")
    def _dump_without_secrets(self, config: dict[str, Any]) -> dict[str, Any]:
        # as the core does for a provider's own secrets: left out, read again from the env
        return {k: v for k, v in config.items() if not isinstance(v, SecretStr)}


class LLMRerankerConfig(RerankerConfig):
    """Config of ``llm_reranker``; ``top_k``, ``timeout``, ``on_error`` and ``cache_size``
    (on by default: every candidate costs a request) come with the base."""

    provider: str = Field(
        default=DEFAULT_LLM_PROVIDER, min_length=1, description="the llm provider to score with"
    )
    model: str | None = Field(default=None, min_length=1, description="the LLM's model")
    api_key: SecretStr | None = Field(
        default=None, description="the LLM's API key (default: the llm provider's own)"
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="sampling temperature")
    max_tokens: int | None = Field(
        default=None, ge=1, description="most tokens of an answer (None: the LLM's default)"
    )
    scoring_prompt: str | None = Field(
        default=None,
        description="pointwise task prompt with {query} and {document} (the answer format is "
        "added by the reranker)",
    )
    llm: LLMSection | None = Field(
        default=None, description="{provider, config} of the LLM; overrides the flat keys"
    )
    mode: Literal["pointwise", "listwise"] = Field(
        default="pointwise", description="a request per candidate, or ranked windows"
    )
    max_concurrency: int = Field(
        default=8, ge=1, le=256, description="most requests of one call in flight (pointwise)"
    )
    window_size: int = Field(
        default=20, ge=2, le=100, description="candidates per listwise request"
    )
    step: int = Field(default=10, ge=1, le=99, description="how far a listwise window moves")
    max_document_chars: int = Field(
        default=2000, ge=16, le=100_000, description="candidate text is cut to this length"
    )
    cache_size: int = Field(default=1024, ge=0, description="entries in the rerank-score cache")

    _llm_section: ProviderSection | None = PrivateAttr(default=None)

    @field_validator("scoring_prompt")
    @classmethod
    def _check_prompt(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = prompt_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check_llm(self) -> LLMRerankerConfig:
        if self.step >= self.window_size:
            raise ValueError(
                f"step ({self.step}) must be smaller than window_size ({self.window_size}): "
                "windows must overlap for a candidate to move past its window"
            )
        if self.mode == "listwise" and self.scoring_prompt is not None:
            raise ValueError(
                "scoring_prompt is the pointwise prompt; listwise mode uses its built-in one"
            )
        self._llm_section = self._resolve_llm()
        return self

    def _resolve_llm(self) -> ProviderSection:
        provider = self.llm.provider if self.llm is not None else self.provider
        fields = get_llm(provider).config_model.model_fields
        merged: dict[str, Any] = {}
        for key in FLAT_LLM_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            if key not in fields:
                raise ValueError(f"the llm provider {provider!r} takes no {key!r}")
            merged[key] = value
        if self.llm is not None:
            merged.update(self.llm.config)
        return resolve_section("llm", {"provider": provider, "config": merged})

    def llm_section(self) -> ProviderSection:
        """The LLM to score with: its provider and validated config."""
        if self._llm_section is None:  # pragma: no cover  (set by the validator)
            self._llm_section = self._resolve_llm()
        return self._llm_section

    def call_temperature(self) -> float | None:
        """The temperature to ask for: the flat key, unless the nested config sets one."""
        return None if self._nested_sets("temperature") else self.temperature

    def call_max_tokens(self) -> int | None:
        """The answer length to ask for: the flat key, unless the nested config sets one."""
        return None if self._nested_sets("max_tokens") else self.max_tokens

    def _nested_sets(self, key: str) -> bool:
        return self.llm is not None and self.llm.config.get(key) is not None


__all__ = [
    "DEFAULT_LLM_PROVIDER",
    "PLACEHOLDERS",
    "LLMRerankerConfig",
    "LLMSection",
    "prompt_problem",
]
