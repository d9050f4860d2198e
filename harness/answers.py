"""Finding the final answer in a solution's text. Tasks choose which rules apply, in order."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_THE_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?([^\n$]+?)\$?\s*\.?\s*$", re.M)
_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def the_answer_is(text: str) -> str | None:
    """The text after the last "The answer is", up to the end of its line."""
    matches = _THE_ANSWER_IS.findall(text)
    return matches[-1].strip().rstrip(".") if matches else None


def last_number(text: str) -> str | None:
    """The last number in the text (commas as thousands separators allowed)."""
    matches = _NUMBER.findall(text)
    return matches[-1].replace(",", "") if matches else None


def majority_index(answers: Sequence[str | None], key: Callable[[str], str]) -> int | None:
    """Index of the first answer of the most frequent class (by ``key``); ties go to the class
    seen first. None when no answer is given."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        k = key(answer)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, i)
    if not counts:
        return None
    top = max(counts.values())
    return min(first[k] for k, n in counts.items() if n == top)
