"""Input checks of the memory API: every argument is validated here before anything is read
or written, and a bad one is an :class:`~memsift.errors.InvalidInputError` (or a
:class:`~memsift.errors.ScopeError`) that says what is wrong.

Texts, ids and metadata must be valid Unicode (a lone surrogate is an error naming its
position); a memory is at most :data:`MAX_MEMORY_CHARS` characters, a scope id or memory id
at most :data:`MAX_ID_CHARS`, a query at most :data:`MAX_QUERY_CHARS`. A scope id is one
exact id, never ``"*"``. Extraction instructions (``add(prompt=...)``, and the config's
``custom_instructions``) are at most :data:`MAX_INSTRUCTIONS_CHARS` characters, and a
``prompt`` is an error when the call does not infer. Unknown keyword arguments are errors
(:func:`reject_unknown`), never ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from memsift.errors import FilterError, InvalidInputError, ScopeError, UnknownArgumentError
from memsift.filters import (
    Filter,
    find_lone_surrogate,
    lone_surrogate_problem,
    parse_filter,
    require_scope,
    scope_pins,
)
from memsift.filters import check_metadata as validate_metadata

MAX_TOP_K = 1000
#: The longest scope id (``user_id``, ``agent_id``, ``run_id``) and the longest memory id a
#: caller may pass, in characters; a longer one is an :class:`InvalidInputError`.
MAX_ID_CHARS: Final = 256
#: The longest query, in characters. A longer query is rejected with
#: :class:`InvalidInputError`, not truncated (the embedder reads only its first few hundred
#: tokens anyway; a reranker may read more).
MAX_QUERY_CHARS: Final = 32_000
#: Why ``"*"`` cannot stand for a scope id.
SCOPE_STAR_PROBLEM: Final = "'*' means any value; a scope must be pinned to one id"
#: The longest memory text, in characters.
MAX_MEMORY_CHARS = 100_000
#: The most messages one ``add`` takes.
MAX_BATCH = 10_000
#: The longest extraction instructions (config ``custom_instructions``, ``add(prompt=...)``).
MAX_INSTRUCTIONS_CHARS = 10_000

#: The keyword arguments of the memory API's methods that take ``**unknown`` (to reject the rest).
ADD_ARGS = ("user_id", "agent_id", "run_id", "metadata", "infer", "prompt")
SEARCH_ARGS = (
    "filters",
    "user_id",
    "agent_id",
    "run_id",
    "top_k",
    "rerank",
    "threshold",
    "hybrid",
)
GET_ALL_ARGS = ("filters", "user_id", "agent_id", "run_id", "top_k")
DELETE_ALL_ARGS = ("filters", "user_id", "agent_id", "run_id")

_ARG_HINTS = {
    "limit": "top_k",
    "k": "top_k",
    "filter": "filters",
    "custom_instructions": "prompt",
    "instructions": "prompt",
}


def reject_unknown(method: str, unknown: Mapping[str, Any], valid: Sequence[str]) -> None:
    """Raise UnknownArgumentError for keyword arguments a method does not take."""
    if not unknown:
        return
    parts = []
    for name in sorted(unknown):
        hint = _ARG_HINTS.get(name)
        parts.append(f"{name!r}" + (f" (did you mean {hint!r}?)" if hint in valid else ""))
    raise UnknownArgumentError(
        f"{method}() got unknown keyword argument(s) {', '.join(parts)}; valid: {', '.join(valid)}"
    )


# --------------------------------------------------------------------------- search arguments


def check_query(query: Any) -> str:
    """A non-empty string of at most :data:`MAX_QUERY_CHARS` characters, valid Unicode."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS} "
            "(longer queries are rejected, not truncated)"
        )
    if not query.strip():
        raise InvalidInputError("query must not be empty")
    problem = lone_surrogate_problem("query", query)
    if problem is not None:
        raise InvalidInputError(problem)
    return query


def check_id_text(value: str, what: str) -> str:
    """Raise InvalidInputError if the id ``value`` is over :data:`MAX_ID_CHARS` or not valid
    Unicode (a lone surrogate)."""
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(
            f"{what} is {len(value)} characters long; the limit is {MAX_ID_CHARS}"
        )
    problem = lone_surrogate_problem(what, value)
    if problem is not None:
        raise InvalidInputError(problem)
    return value


def check_scope_id(value: Any, what: str) -> str:
    """Validate one scope id given as a keyword argument (``user_id=...``, also at add time).

    It is one exact id: a non-empty string without NUL characters, valid Unicode, at most
    :data:`MAX_ID_CHARS` characters, and not ``"*"`` (:class:`ScopeError`: ``"*"`` would
    mean any value in a filter, so such an id could never be searched).
    """
    if isinstance(value, str) and value == "*":
        raise ScopeError(f"{what}='*': {SCOPE_STAR_PROBLEM}; pass the exact {what}")
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InvalidInputError(f"{what} must be a non-empty string without NUL characters")
    return check_id_text(value, what)


def check_scope_pins(filters: Mapping[str, Any] | None) -> None:
    """Require every scope pin of a (parsed) filter dict to be one exact id.

    A pin is a ``user_id``/``agent_id``/``run_id`` key at the top level or inside a top-level
    AND (see :func:`memsift.filters.scope_pins`). Its value must be an id string, or
    ``{"eq": id}`` (which also matches a literal ``"*"``); ``"*"``, a list or another operator
    dict there is a :class:`ScopeError`, and an id over :data:`MAX_ID_CHARS` an
    :class:`InvalidInputError`. Under OR and NOT, scope fields take the whole filter language.
    """
    elsewhere = "conditions matching several ids go under OR or NOT, beside a pinned scope"
    for where, field_name, value in scope_pins(filters):
        example = f"{{{field_name!r}: 'the-id'}}"
        if isinstance(value, Mapping):
            if set(value) != {"eq"} or not isinstance(value["eq"], str):
                raise ScopeError(
                    f"{where}: a scope must be pinned to one id, got the operator dict "
                    f"{sorted(map(str, value))}; write {example} ({elsewhere})"
                )
            value = value["eq"]
        elif isinstance(value, (list, tuple)):
            raise ScopeError(
                f"{where}: a scope must be pinned to one id, got a list; write {example} "
                f"({elsewhere})"
            )
        elif value == "*":
            raise ScopeError(f"{where}: {SCOPE_STAR_PROBLEM}; write {example} ({elsewhere})")
        if isinstance(value, str):
            check_id_text(value, where)


def check_top_k(top_k: Any, *, name: str = "top_k", maximum: int = MAX_TOP_K) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise InvalidInputError(f"{name} must be an integer, got {type(top_k).__name__}")
    if not 1 <= top_k <= maximum:
        raise InvalidInputError(f"{name} must be between 1 and {maximum}, got {top_k}")
    return top_k


def check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidInputError(f"threshold must be a number, got {type(threshold).__name__}")
    if not math.isfinite(threshold):
        raise InvalidInputError("threshold must be finite")
    return float(threshold)


def scoped_filter(
    filters: Mapping[str, Any] | None,
    *,
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    what: str,
) -> Filter:
    """Merge scope keyword arguments into ``filters``, parse, and enforce the scope rule.

    Every scope pin must be one exact id: the keyword arguments (:func:`check_scope_id`) and
    the scope keys at the top level of ``filters`` or inside a top-level AND
    (:func:`check_scope_pins`); ``"*"`` there is a :class:`ScopeError`. Then at least one
    scope field must be pinned (:func:`memsift.filters.require_scope`).
    """
    if filters is not None and not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, got {type(filters).__name__}")
    spec: dict[str, Any] = dict(filters or {})
    extra: list[dict[str, Any]] = []
    for key, value in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)):
        if value is None:
            continue
        extra.append({key: check_scope_id(value, key)})
    parsed = parse_filter(spec)  # errors located in the filter as the caller wrote it
    check_scope_pins(spec)
    if extra:
        parsed = parse_filter({"AND": [spec, *extra]} if spec else {"AND": extra})
    require_scope(parsed, what)
    return parsed


# --------------------------------------------------------------------------- add arguments


def check_text(text: Any, what: str = "memory") -> str:
    """A memory's text: a non-empty string, valid Unicode, no NUL, at most MAX_MEMORY_CHARS."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be a string, got {type(text).__name__}")
    if len(text) > MAX_MEMORY_CHARS:
        raise InvalidInputError(
            f"{what} is {len(text)} characters long; the limit is {MAX_MEMORY_CHARS}"
        )
    if not text.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if "\x00" in text:
        raise InvalidInputError(f"{what} must not contain NUL characters")
    problem = lone_surrogate_problem(what, text)
    if problem is not None:
        raise InvalidInputError(problem)
    return text


def check_memory_id(memory_id: Any) -> str:
    """A memory id as a caller gives it: a non-empty string of at most MAX_ID_CHARS."""
    if not isinstance(memory_id, str) or not memory_id:
        raise InvalidInputError("memory_id must be a non-empty string")
    return check_id_text(memory_id, "memory_id")


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Validate user metadata (valid keys, JSON values); raise InvalidInputError."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return validate_metadata(metadata)
    except FilterError as exc:
        raise InvalidInputError(str(exc)) from None


def normalize_messages(messages: Any) -> list[tuple[str, str]]:
    """(role, content) pairs from a string, a message dict, or a list of either."""
    items = messages if isinstance(messages, list | tuple) else [messages]
    if not items:
        raise InvalidInputError("messages must not be empty")
    if len(items) > MAX_BATCH:
        raise InvalidInputError(f"at most {MAX_BATCH} messages per call, got {len(items)}")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        where = f"messages[{i}]" if isinstance(messages, list | tuple) else "messages"
        if isinstance(item, str):
            out.append(("user", check_text(item, where)))
        elif isinstance(item, Mapping):
            extra = set(item) - {"role", "content", "name"}
            if extra or "content" not in item:
                raise InvalidInputError(
                    f"{where} must be {{'role': ..., 'content': ...}}; "
                    f"got keys {sorted(map(str, item))}"
                )
            role = item.get("role", "user")
            if not isinstance(role, str) or not role:
                raise InvalidInputError(f"{where}['role'] must be a non-empty string")
            out.append((role, check_text(item["content"], f"{where}['content']")))
        else:
            raise InvalidInputError(
                f"{where} must be a string or a message dict, got {type(item).__name__}"
            )
    return out


def instructions_problem(text: str) -> str | None:
    """What is wrong with extraction instructions (None: nothing): empty, longer than
    :data:`MAX_INSTRUCTIONS_CHARS`, a NUL character, a lone surrogate."""
    if not text.strip():
        return "must not be empty"
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        return f"is {len(text)} characters long; the limit is {MAX_INSTRUCTIONS_CHARS}"
    if "\x00" in text:
        return "must not contain NUL characters"
    index = find_lone_surrogate(text)
    if index is not None:
        return f"contains a lone surrogate at position {index}; text must be valid Unicode"
    return None


def check_prompt(prompt: Any, infer: bool) -> str | None:
    """``add(prompt=...)``: None, or instructions for the extraction (only with ``infer``):
    a non-empty string of at most ``MAX_INSTRUCTIONS_CHARS``, no NUL, valid Unicode."""
    if prompt is None:
        return None
    if not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be a string, got {type(prompt).__name__}")
    if not infer:
        raise InvalidInputError(
            "prompt= steers the LLM's extraction, but this add does not infer (infer=False, or "
            "no 'llm' in the config); leave prompt out or pass infer=True"
        )
    problem = instructions_problem(prompt)
    if problem is not None:
        raise InvalidInputError(f"prompt {problem}")
    return prompt


def check_scope(user_id: Any, agent_id: Any, run_id: Any) -> dict[str, str]:
    """The scope of an add(): exact ids (see :func:`check_scope_id`)."""
    scope: dict[str, str] = {}
    for key, value in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)):
        if value is None:
            continue
        scope[key] = check_scope_id(value, key)
    if not scope:
        raise InvalidInputError("add() needs at least one of user_id, agent_id or run_id")
    return scope
