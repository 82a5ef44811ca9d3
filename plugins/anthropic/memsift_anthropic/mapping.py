"""From memsift's chat messages to a Messages API request, and from the answer back.

Nothing here imports the SDK: these are plain functions over dicts and strings.

Message mapping (:func:`map_messages`):

- every message is a mapping with ``role`` (``system``, ``user`` or ``assistant``) and a
  string ``content``; other keys are ignored; anything else is
  :class:`memsift.InvalidInputError`;
- ``system`` messages, wherever they stand, become the request's ``system`` prompt, joined
  in order by a blank line;
- messages whose content is empty or only whitespace are left out (the API rejects empty
  text);
- consecutive ``user`` (or ``assistant``) messages are merged into one turn, joined by a
  blank line, so that turns alternate as the API expects;
- the first turn must be the user's (``InvalidInputError`` otherwise), and there must be
  one;
- a conversation that ends with an ``assistant`` turn is a prefill: the model continues that
  text, and the answer holds only the continuation. Trailing whitespace of that last turn
  is removed (the API rejects it).

JSON by instruction (:func:`json_instruction`, :func:`parse_json_answer`): the Messages API
has no JSON mode, so a ``json_object`` or ``json_schema`` response format adds an
instruction (and the schema) to the system prompt, and the answer is parsed strictly: after
surrounding whitespace and at most one Markdown code fence around the whole answer
(`````json`` ... ````` or ````` ... `````) are removed, it must be exactly one JSON value,
with nothing before or after it and no NaN or Infinity. ``json_object`` asks for an object;
``json_schema`` answers are validated with :func:`memsift.completions.schema_problem` (the
core's small validator: types, enums, required and additional properties, items, lengths,
bounds, ``anyOf``; not ``$ref``, patterns or formats).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memsift import InvalidInputError
from memsift.completions import schema_problem

ROLES = ("system", "user", "assistant")
#: What joins merged messages, and system messages.
JOINER = "\n\n"

JSON_OBJECT_INSTRUCTION = (
    "Answer with exactly one JSON object and nothing else: no text before or after it, "
    "no Markdown code fence."
)
JSON_SCHEMA_INSTRUCTION = (
    "Answer with exactly one JSON value that is valid against the JSON schema below, and "
    "nothing else: no text before or after it, no Markdown code fence."
)

# The whole answer in one code fence: an optional language tag, then the body.
_FENCE = re.compile(r"\A```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)\r?\n?```\Z", re.DOTALL)
_FENCE_LANGUAGES = frozenset({"", "json"})
#: Characters of the answer quoted in an error message.
EXCERPT = 80


@dataclass(frozen=True)
class Turns:
    """A request's ``system`` prompt (``None`` when there is none) and its turns."""

    system: str | None
    messages: list[dict[str, str]]

    @property
    def ends_with_assistant(self) -> bool:
        return self.messages[-1]["role"] == "assistant"


def map_messages(messages: Sequence[Mapping[str, str]]) -> Turns:
    """The Messages API's ``system`` and ``messages`` for memsift's chat ``messages``."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidInputError("messages must be a list of {'role', 'content'} dicts")
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise InvalidInputError(f"{where} must be a {{'role', 'content'}} dict")
        role = message.get("role")
        content = message.get("content")
        if role not in ROLES:
            raise InvalidInputError(
                f"{where}['role'] must be one of {', '.join(ROLES)}, got {role!r}"
            )
        if not isinstance(content, str):
            raise InvalidInputError(f"{where}['content'] must be a string")
        if not content.strip():
            continue
        if role == "system":
            system.append(content)
        elif turns and turns[-1]["role"] == role:
            turns[-1]["content"] += JOINER + content
        else:
            turns.append({"role": str(role), "content": content})
    if not turns:
        raise InvalidInputError(
            "messages need at least one user message with content (system messages alone "
            "are not a conversation)"
        )
    if turns[0]["role"] != "user":
        raise InvalidInputError(
            "the Messages API needs the conversation to start with a user message; the "
            "first non-system message here is the assistant's"
        )
    if turns[-1]["role"] == "assistant":
        turns[-1]["content"] = turns[-1]["content"].rstrip()
    return Turns(JOINER.join(system) if system else None, turns)


def json_instruction(kind: str, schema: Mapping[str, Any] | None = None) -> str:
    """The system-prompt instruction asking for ``kind`` (``json_object``/``json_schema``)."""
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    text = json.dumps(schema or {}, ensure_ascii=False, sort_keys=True)
    return f"{JSON_SCHEMA_INSTRUCTION}\n<schema>\n{text}\n</schema>"


def with_instruction(system: str | None, instruction: str) -> str:
    """``system`` with ``instruction`` appended (or the instruction alone)."""
    return instruction if not system else system + JOINER + instruction


def expects_object(kind: str, schema: Mapping[str, Any] | None) -> bool:
    """Whether the asked-for answer is a JSON object (so it may be prefilled with ``{``)."""
    if kind == "json_object":
        return True
    return schema is not None and schema.get("type") == "object"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strip_fence(text: str) -> str:
    """``text`` without surrounding whitespace and one code fence around all of it."""
    text = text.strip()
    match = _FENCE.match(text)
    if match is not None and match.group(1).lower() in _FENCE_LANGUAGES:
        return match.group(2).strip()
    return text


def parse_json_answer(text: str, kind: str, schema: Mapping[str, Any] | None = None) -> str:
    """The JSON text of an answer, parsed strictly; ValueError says what is wrong.

    Returns the JSON as the model wrote it (without the fence and surrounding whitespace).
    """
    body = strip_fence(text)
    if not body:
        raise ValueError("the answer is empty, not JSON")
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:
        raise ValueError(
            f"the answer is not exactly one JSON value ({exc}): {excerpt(body)}"
        ) from None
    if kind == "json_object" and not isinstance(value, dict):
        raise ValueError(f"the answer is JSON but not an object: {excerpt(body)}")
    if kind == "json_schema" and schema is not None:
        problem = schema_problem(value, schema)
        if problem is not None:
            raise ValueError(f"the answer does not match the schema: {problem}")
    return body


def excerpt(text: str) -> str:
    """The start of ``text``, quoted, for an error message."""
    short = text if len(text) <= EXCERPT else text[:EXCERPT] + "..."
    return repr(short)


__all__ = [
    "JSON_OBJECT_INSTRUCTION",
    "JSON_SCHEMA_INSTRUCTION",
    "Turns",
    "expects_object",
    "json_instruction",
    "map_messages",
    "parse_json_answer",
    "strip_fence",
    "with_instruction",
]
