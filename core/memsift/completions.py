"""What an LLM answers with: the text, its token log-probabilities, the token usage; and what
an LLM can do beyond text (its capabilities), so callers choose the best way to ask.

``response_format`` follows the widely used chat-completions shape:

- ``None``: free text;
- ``{"type": "json_object"}``: a JSON object (:func:`json_object`);
- ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": True}}``:
  a JSON document valid against the schema (:func:`json_schema`).

A provider whose capabilities lack ``json_schema`` (or ``json_mode``) still accepts those
formats: it asks by instruction and the caller parses strictly (see the provider's README).
Like :mod:`memsift.records`, this module imports nothing of memsift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ResponseFormat = Mapping[str, Any]


def json_object() -> dict[str, Any]:
    """The ``response_format`` asking for a JSON object."""
    return {"type": "json_object"}


def json_schema(name: str, schema: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """The ``response_format`` asking for JSON valid against ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": dict(schema), "strict": strict},
    }


def format_kind(response_format: ResponseFormat | None) -> str | None:
    """``None``, ``"json_object"`` or ``"json_schema"``; ValueError for anything else."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_object":
        return "json_object"
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
            raise ValueError("a json_schema response_format needs {'json_schema': {'schema': {}}}")
        return "json_schema"
    raise ValueError(
        "response_format must be None, {'type': 'json_object'} or "
        f"{{'type': 'json_schema', 'json_schema': {{...}}}}, got {response_format!r}"
    )


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_problem(value: Any, schema: Mapping[str, Any], *, path: str = "$") -> str | None:
    """Why ``value`` (parsed JSON) is not valid against ``schema``, or None when it is.

    A small validator for the schemas callers ask an LLM for: ``type``, ``enum``, ``const``,
    ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems`` /
    ``maxItems``, ``minLength`` / ``maxLength``, ``minimum`` / ``maximum`` and ``anyOf``.
    Other keywords (``$ref``, ``pattern``, formats) are not checked. A boolean is not an
    integer or a number here, as in JSON Schema.
    """
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_json_type(value, k) for k in kinds):
            return f"{path}: expected {' or '.join(map(str, kinds))}, got {_json_type(value)}"
    if "enum" in schema and value not in list(schema["enum"]):
        return f"{path}: {value!r} is not one of {list(schema['enum'])!r}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {schema['const']!r}"
    alternatives = schema.get("anyOf")
    if (
        isinstance(alternatives, list)
        and alternatives
        and all(schema_problem(value, alt, path=path) is not None for alt in alternatives)
    ):
        return f"{path}: matches none of anyOf"
    if isinstance(value, dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        for name in schema.get("required", ()):
            if name not in value:
                return f"{path}: missing required key {name!r}"
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            where = f"{path}.{name}"
            if name in properties:
                problem = schema_problem(item, properties[name], path=where)
            elif extra is False:
                problem = f"{path}: unexpected key {name!r}"
            elif isinstance(extra, Mapping):
                problem = schema_problem(item, extra, path=where)
            else:
                problem = None
            if problem:
                return problem
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                problem = schema_problem(item, items, path=f"{path}[{i}]")
                if problem:
                    return problem
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{path}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']} characters"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} is below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} is above the maximum {schema['maximum']}"
    return None


def _is_json_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(kind, (object,)))


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_json_type(value, name):
            return name
    return type(value).__name__


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability, and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    def probability_of(self, *tokens: str) -> float:
        """The summed probability of ``tokens`` (compared stripped and lower-cased) among
        this position's token and its alternatives; 0.0 when none of them was seen."""
        wanted = {t.strip().lower() for t in tokens}
        seen: dict[str, float] = {}
        for token, logprob in ((self.token, self.logprob), *self.top):
            seen.setdefault(token, logprob)
        return sum(math.exp(lp) for tok, lp in seen.items() if tok.strip().lower() in wanted)


@dataclass(frozen=True)
class Usage:
    """Tokens an answer cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Completion:
    """An LLM's answer: the text and, where asked for and given, per-token log-probs."""

    text: str
    logprobs: tuple[TokenLogprob, ...] | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    model: str = ""


@dataclass(frozen=True)
class LLMCapabilities:
    """What an LLM provider can do beyond free text.

    ``json_mode``: honours ``{"type": "json_object"}`` natively; ``json_schema``: honours a
    JSON schema natively; ``logprobs``: returns token log-probabilities when asked. A provider
    may learn these from the server's answers (an OpenAI-compatible server that ignores
    ``logprobs``), so read them after a call as well as before.
    """

    json_mode: bool = False
    json_schema: bool = False
    logprobs: bool = False


__all__ = [
    "Completion",
    "LLMCapabilities",
    "ResponseFormat",
    "TokenLogprob",
    "Usage",
    "format_kind",
    "json_object",
    "json_schema",
    "schema_problem",
]
