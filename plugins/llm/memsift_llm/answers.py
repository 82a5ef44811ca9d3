"""Reading the LLM's answers, strictly: a yes/no probability, a number on the 0-10 scale, a
permutation of window ids. What cannot be read is an :class:`AnswerError`, never a score.

- **P("yes")**: at the answer's first token that is not blank or punctuation, the summed
  probability of the alternatives that read ``yes`` (case and spaces aside) over that of
  ``yes`` and ``no`` together; neither among the alternatives is an error.
- **The scale**: the whole answer is one number from 0 to 10 (``7``, ``7.5``, ``10``; spaces
  and one final ``.`` aside), mapped to [0, 1] as ``n / 10``. ``7/10``, ``Score: 7``,
  ``seven`` or ``11`` are errors.
- **A permutation**: the whole answer is ids of the window (``[3] > [1] > [2]``; brackets
  optional, ``>`` or ``,`` between them). An id outside the window is an error; a repeated
  id counts where it first appears (later ones are dropped); ids left out follow the ranked
  ones in their order before this window. An answer with no id is an error.

Asked as JSON (an llm provider that takes a JSON schema, see :mod:`memsift_llm.prompts`), the
answers are read as strictly: ``{"relevant": "yes"|"no"}`` (P("yes") at the first token of
the answer that reads ``yes`` or ``no``), ``{"score": <integer 0..10>}`` (a float, a
string, a boolean or another key is an error) and ``{"ranking": [<window ids>]}`` (repaired
as above). Tokens are compared without case, spaces or punctuation (``"yes``, `` Yes``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from memsift import TokenLogprob

_BLANK = re.compile(r"^[\W_]*$")
_NUMBER = re.compile(r"^\s*(\d{1,2}(?:\.\d+)?)\s*\.?\s*$")
_ID = r"\[?\s*(\d{1,4})\s*\]?"
_PERMUTATION = re.compile(rf"^\s*{_ID}(?:\s*[>,]\s*{_ID})*\s*\.?\s*$")
_IDS = re.compile(r"\d+")
_PUNCT = re.compile(r"[\W_]+")
#: The JSON answers, as error messages show them.
RELEVANT_SHAPE = '{"relevant": "yes" or "no"}'
SCORE_SHAPE = '{"score": <integer from 0 to 10>}'
RANKING_SHAPE = '{"ranking": [2, 1, 3]}'


class AnswerError(ValueError):
    """An answer that cannot be read as the format asked for."""


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def word(token: str) -> str:
    """A token as compared with yes and no: lower-cased, without spaces or punctuation."""
    return _PUNCT.sub("", token).lower()


def _yes_no(token: TokenLogprob) -> tuple[float, float]:
    """The summed probabilities of the alternatives (the token among them) that read yes,
    and of those that read no."""
    seen: dict[str, float] = {}
    for alternative, logprob in ((token.token, token.logprob), *token.top):
        seen.setdefault(alternative, logprob)
    yes = sum(math.exp(lp) for alt, lp in seen.items() if word(alt) == "yes")
    no = sum(math.exp(lp) for alt, lp in seen.items() if word(alt) == "no")
    return yes, no


def yes_probability(
    tokens: Sequence[TokenLogprob], text: str, *, structured: bool = False
) -> float:
    """P("yes") given "yes" or "no", from the alternatives of the first meaningful token
    (free text), or of the first token that reads yes or no (``structured``: a JSON answer,
    whose value is the only such token)."""
    for token in tokens:
        if _BLANK.match(token.token):
            continue
        if structured and word(token.token) not in ("yes", "no"):
            continue
        yes, no = _yes_no(token)
        if yes + no <= 0.0:
            raise AnswerError(f"the answer is neither yes nor no: {shown(text)}")
        return min(1.0, max(0.0, yes / (yes + no)))
    raise AnswerError(f"the answer has no yes or no: {shown(text)}")


def _json(text: str, shape: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    raise AnswerError(f"the answer is not the JSON object {shape}: {shown(text)}")


def _only_key(text: str, key: str, shape: str) -> Any:
    value = _json(text, shape)
    if not isinstance(value, dict) or set(value) != {key}:
        raise AnswerError(f"the answer is not the JSON object {shape}: {shown(text)}")
    return value[key]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def relevance_answer(text: str) -> str:
    """The ``"yes"`` or ``"no"`` of a JSON yes/no answer."""
    value = _only_key(text, "relevant", RELEVANT_SHAPE)
    if value not in ("yes", "no"):
        raise AnswerError(f"the answer is neither yes nor no: {shown(text)}")
    return str(value)


def scale_json_score(text: str) -> float:
    """The score of a JSON answer ``{"score": n}``, n an integer from 0 to 10, in [0, 1]."""
    value = _only_key(text, "score", SCORE_SHAPE)
    if not _is_int(value) or not 0 <= value <= 10:
        raise AnswerError(f"the answer is not a number from 0 to 10 (an integer): {shown(text)}")
    return float(value) / 10.0


def permutation_json(text: str, count: int) -> list[int]:
    """The window's order from a JSON answer ``{"ranking": [ids]}``, repaired as
    :func:`permutation` does."""
    value = _only_key(text, "ranking", RANKING_SHAPE)
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        raise AnswerError(f"the answer is not a ranking of ids like {RANKING_SHAPE}: {shown(text)}")
    return _repaired([int(v) for v in value], count, text)


def scale_score(text: str) -> float:
    """The answer, a number from 0 to 10, as a score in [0, 1]."""
    match = _NUMBER.match(text)
    value = float(match.group(1)) if match else -1.0
    if not 0.0 <= value <= 10.0:
        raise AnswerError(f"the answer is not a number from 0 to 10: {shown(text)}")
    return value / 10.0


def permutation(text: str, count: int) -> list[int]:
    """The window's order (0-based positions) that the answer gives, repaired as the module
    says: repeats dropped, ids left out appended in their prior order."""
    if not _PERMUTATION.match(text):
        raise AnswerError(f"the answer is not a ranking of ids like [2] > [1] > [3]: {shown(text)}")
    return _repaired([int(found) for found in _IDS.findall(text)], count, text)


def _repaired(ids: Sequence[int], count: int, text: str) -> list[int]:
    order: list[int] = []
    for ident in ids:
        if not 1 <= ident <= count:
            raise AnswerError(f"the answer ranks id {ident}, outside 1..{count}: {shown(text)}")
        if ident - 1 not in order:
            order.append(ident - 1)
    order.extend(i for i in range(count) if i not in order)
    return order


__all__ = [
    "AnswerError",
    "permutation",
    "permutation_json",
    "relevance_answer",
    "scale_json_score",
    "scale_score",
    "shown",
    "word",
    "yes_probability",
]
