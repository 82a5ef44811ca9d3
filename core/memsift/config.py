"""Configuration: ``MemoryConfig`` and the helpers provider configs use.

A config is a dict with the sections ``vector_store``, ``embedder``, ``llm``, ``reranker``
(each ``{"provider": NAME, "config": {...}}``), ``history_db_path``, ``search`` (the first-stage
options, :class:`SearchConfig`), and two keys of
``add(infer=True)``: ``custom_instructions`` (text appended to the extraction prompt as the
application's instructions) and ``infer_mode`` (``"add"``, the default: the LLM only adds
facts; ``"reconcile"``: it may also update or delete the similar memories it is shown; see
:mod:`memsift.inference`). Every level forbids
unknown keys; each provider's ``config`` is validated against that provider's own pydantic
model. Every problem becomes a :class:`~memsift.errors.ConfigError` that names the key, its
path and the valid keys; secret values never appear in messages, nor anywhere in the
exception chain (pydantic's ValidationError, which quotes the offending ``input_value``, is
never attached to the ConfigError, not even as suppressed context).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from memsift.errors import ConfigError
from memsift.inputs import instructions_problem
from memsift.interfaces import PROVIDER_KINDS, ProviderConfig, ProviderKind
from memsift.kit.messages import clean_error
from memsift.registry import KIND_LABEL, ProviderSpec, get_provider

HOME_ENV = "MEMSIFT_HOME"


def memsift_home() -> Path:
    """Where memsift keeps its files by default: ``$MEMSIFT_HOME`` or ``~/.memsift``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".memsift").expanduser()


# --------------------------------------------------------------------------- secrets


def env_secret(*names: str) -> Callable[[], SecretStr | None]:
    """A ``default_factory`` that reads the first set environment variable of ``names``."""

    def factory() -> SecretStr | None:
        for name in names:
            value = os.environ.get(name)
            if value:
                return SecretStr(value)
        return None

    return factory


def require_secret(value: SecretStr | None, field: str, env_names: tuple[str, ...]) -> SecretStr:
    """Return ``value`` or raise a ValueError that says where the secret can come from."""
    if value is None or not value.get_secret_value():
        envs = " or ".join(env_names)
        hint = f" or set the {envs} environment variable" if env_names else ""
        raise ValueError(f"missing secret {field!r}: give it in the config{hint}")
    return value


# --------------------------------------------------------------------------- sections


#: Keys of a not yet validated config dict whose values a repr masks, at any depth.
_SECRET_KEY = re.compile(r"key|token|secret|password|credential|auth", re.IGNORECASE)


def _masked(value: Any) -> Any:
    """``value`` with the values of secret-named keys masked, in nested dicts and lists too
    (an LLM reranker's nested ``llm: {config: {api_key}}``)."""
    if isinstance(value, Mapping):
        return {
            k: "**********" if isinstance(k, str) and _SECRET_KEY.search(k) else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_masked(v) for v in value)
    return value


class ProviderSection(BaseModel):
    """One provider section: its name and its (validated) config."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    provider: str
    config: Any = Field(default_factory=dict)

    def __repr__(self) -> str:
        # not validated yet, the config is a dict whose secrets are still plain values
        return f"ProviderSection(provider={self.provider!r}, config={_masked(self.config)!r})"

    def __str__(self) -> str:
        return repr(self)


class SearchConfig(BaseModel):
    """The first-stage options of every search (the config section ``search``).

    ``hybrid``: also ask the store's keyword index (BM25 over the same filtered set, term
    statistics from the whole scoped collection) for candidates and fuse them with the vector
    stage's (DESIGN 3.2). ``"auto"`` (the default) turns it on where it was measured to help:
    for a search that reranks with a reranker that reads keyword scores (the built-in
    ``bm25``), on a store that has a keyword index; ``True`` for every search, ``False``
    never. A per-call ``search(..., hybrid=True/False)`` overrides it.

    ``fusion``: how the two ranked lists become one candidate list: ``"rrf"`` (the default:
    reciprocal-rank fusion, ``sum 1 / (rrf_k + rank)``) or ``"interleave"`` (the union of both
    lists' tops, alternating from the vector list). ``keyword_top_k``: how many keyword
    candidates to fetch (default 10; ``None``: as many as the vector stage fetches). The
    defaults were measured (README, "Retrieval quality").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hybrid: bool | Literal["auto"] = Field(
        default="auto", description="keyword + vector first stage: auto, true or false"
    )
    fusion: Literal["interleave", "rrf"] = Field(
        default="rrf", description="fuse the lists by reciprocal-rank fusion or by interleaving"
    )
    keyword_top_k: int | None = Field(
        default=10, ge=1, le=1000, description="keyword candidates (None: as many as vector)"
    )
    rrf_k: int = Field(default=60, ge=1, le=10_000, description="the k of reciprocal-rank fusion")


class MemoryConfig(BaseModel):
    """The whole configuration of a :class:`memsift.Memory`.

    Build it with :meth:`from_dict`, which validates every section against the installed
    providers; a MemoryConfig built directly is validated the same way by ``resolve()``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    vector_store: ProviderSection = Field(default_factory=lambda: ProviderSection(provider="faiss"))
    embedder: ProviderSection = Field(default_factory=lambda: ProviderSection(provider="minilm"))
    llm: ProviderSection | None = None
    reranker: ProviderSection | None = None
    history_db_path: str | None = Field(
        default=None, description="SQLite file of the change history (default: beside the store)"
    )
    custom_instructions: str | None = Field(
        default=None,
        description="add(infer=True): the application's instructions to the extraction LLM",
    )
    infer_mode: Literal["add", "reconcile"] = Field(
        default="add",
        description="add(infer=True): 'add' facts only, or 'reconcile' (also update/delete)",
    )
    search: SearchConfig = Field(
        default_factory=SearchConfig, description="first-stage options of every search"
    )

    @field_validator("custom_instructions")
    @classmethod
    def _check_instructions(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = instructions_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | MemoryConfig | None) -> MemoryConfig:
        """Validate a config dict (or pass a MemoryConfig through ``resolve``)."""
        if data is None:
            data = {}
        if isinstance(data, MemoryConfig):
            return data.resolve()
        if not isinstance(data, Mapping):
            raise ConfigError(f"the config must be a dict, got {type(data).__name__}")
        for kind in PROVIDER_KINDS:
            section = data.get(kind)
            if section is not None and not isinstance(section, Mapping | ProviderSection):
                raise ConfigError(
                    f"config[{kind!r}] must be a dict like "
                    f"{{'provider': NAME, 'config': {{...}}}}, got {type(section).__name__}"
                )
        try:
            structural = cls.model_validate(dict(data))
        except ValidationError as exc:
            problem = _format_errors(exc, cls, prefix="")
        else:
            return structural.resolve()
        raise _config_error(problem)

    def section(self, kind: ProviderKind) -> ProviderSection | None:
        value: ProviderSection | None = getattr(self, kind)
        return value

    def resolve(self) -> MemoryConfig:
        """Validate each provider's config against its model (idempotent)."""
        updates: dict[str, Any] = {}
        for kind in PROVIDER_KINDS:
            section = self.section(kind)
            if section is None:
                continue
            updates[kind] = resolve_section(kind, section)
        return self.model_copy(update=updates)

    def spec(self, kind: ProviderKind) -> ProviderSpec | None:
        section = self.section(kind)
        return None if section is None else get_provider(kind, section.provider)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that ``from_dict`` accepts again; secrets are left out."""
        out: dict[str, Any] = {}
        for kind in PROVIDER_KINDS:
            section = self.section(kind)
            if section is None:
                continue
            cfg = section.config
            if isinstance(cfg, BaseModel):
                # secrets are left out: from_dict reads them again from their env variables
                secret = {k for k, v in cfg if isinstance(v, SecretStr)}
                body = cfg.model_dump(mode="json", exclude=secret)
            else:
                body = {k: v for k, v in dict(cfg).items() if not isinstance(v, SecretStr)}
            out[kind] = {"provider": section.provider, "config": body}
        if self.history_db_path is not None:
            out["history_db_path"] = self.history_db_path
        if self.custom_instructions is not None:
            out["custom_instructions"] = self.custom_instructions
        if self.infer_mode != "add":
            out["infer_mode"] = self.infer_mode
        if self.search != SearchConfig():
            out["search"] = self.search.model_dump(exclude_defaults=True)
        return out


def resolve_section(
    kind: ProviderKind, section: ProviderSection | Mapping[str, Any]
) -> ProviderSection:
    """Validate one section's provider config against the provider's model."""
    if not isinstance(section, ProviderSection):
        section = _structural_section(kind, section)
    spec = get_provider(kind, section.provider)
    raw = section.config
    if isinstance(raw, spec.config_model):
        return section
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{kind}.config must be a dict for {KIND_LABEL[kind]} {section.provider!r}, "
            f"got {type(raw).__name__}"
        )
    try:
        validated = spec.config_model.model_validate(dict(raw))
    except ValidationError as exc:
        where = f"{kind}.config"
        problem = _format_errors(exc, spec.config_model, prefix=where, provider=section.provider)
    else:
        return ProviderSection(provider=section.provider, config=validated)
    raise _config_error(problem)


def _structural_section(kind: ProviderKind, section: Mapping[str, Any]) -> ProviderSection:
    try:
        return ProviderSection.model_validate(dict(section))
    except ValidationError as exc:
        problem = _format_errors(exc, ProviderSection, prefix=kind)
    raise _config_error(problem)


def _config_error(problem: str) -> ConfigError:
    """The ConfigError to raise, with no exception chain: raise it outside the ``except``
    block that caught pydantic's ValidationError, whose ``input_value`` may be a secret."""
    return clean_error(ConfigError(problem))


# --------------------------------------------------------------------------- errors


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model found by walking ``loc`` through ``model``'s fields."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _first_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _first_model(arg)
            if found is not None:
                return found
    return None


def _join(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else part)
    return path or "config"


def _format_errors(
    exc: ValidationError, model: type[BaseModel], *, prefix: str, provider: str | None = None
) -> str:
    """One line per problem, with path, valid keys, and never the offending value."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            valid = sorted(parent.model_fields) if parent is not None else []
            where = _join(prefix, loc[:-1])
            owner = f" of {provider!r}" if provider and loc[:-1] == () else ""
            lines.append(
                f"unknown key {loc[-1]!r} in {where}{owner}; valid keys: "
                f"{', '.join(valid) if valid else '(none)'}"
            )
        elif kind == "missing":
            lines.append(f"missing required key {_join(prefix, loc)!r}")
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            lines.append(f"{_join(prefix, loc)}: {msg}")
    head = "invalid memsift config" + (f" for provider {provider!r}" if provider else "")
    return head + ":\n  " + "\n  ".join(lines) if len(lines) > 1 else f"{head}: {lines[0]}"


__all__ = [
    "MemoryConfig",
    "ProviderConfig",
    "ProviderSection",
    "SearchConfig",
    "env_secret",
    "memsift_home",
    "require_secret",
    "resolve_section",
]
