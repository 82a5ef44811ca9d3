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
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memsift import TokenLogprob

_BLANK = re.compile(r"^[\W_]*$")
_NUMBER = re.compile(r"^\s*(\d{1,2}(?:\.\d+)?)\s*\.?\s*$")
_ID = r"\[?\s*(\d{1,4})\s*\]?"
_PERMUTATION = re.compile(rf"^\s*{_ID}(?:\s*[>,]\s*{_ID})*\s*\.?\s*$")
_IDS = re.compile(r"\d+")


class AnswerError(ValueError):
    """An answer that cannot be read as the format asked for."""


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def yes_probability(tokens: Sequence[TokenLogprob], text: str) -> float:
    """P("yes") given "yes" or "no", from the first meaningful token's alternatives."""
    for token in tokens:
        if _BLANK.match(token.token):
            continue
        yes = token.probability_of("yes")
        no = token.probability_of("no")
        if yes + no <= 0.0:
            raise AnswerError(f"the answer is neither yes nor no: {shown(text)}")
        return min(1.0, max(0.0, yes / (yes + no)))
    raise AnswerError(f"the answer has no yes or no: {shown(text)}")


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
    order: list[int] = []
    for found in _IDS.findall(text):
        ident = int(found)
        if not 1 <= ident <= count:
            raise AnswerError(f"the answer ranks id {ident}, outside 1..{count}: {shown(text)}")
        if ident - 1 not in order:
            order.append(ident - 1)
    order.extend(i for i in range(count) if i not in order)
    return order


__all__ = ["AnswerError", "permutation", "scale_score", "shown", "yes_probability"]
