"""Finding the final answer in a solution's text. Tasks choose which rules apply, in order.

Rules (``EXTRACTORS``):

- ``boxed``: the content of the last ``\\boxed{...}`` or ``\\fbox{...}``, nested braces allowed;
- ``the-answer-is``: the text after the last "The answer is" / "The final answer is" on its line;
- ``gsm8k``: the text after the last ``####``;
- ``last-number``: the last number (thousands separators allowed).

Extractors only read text; nothing is evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from prmh.errors import PrmhError

_THE_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?([^\n$]+?)\$?\s*\.?\s*$", re.M)
_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
MAX_ANSWER_CHARS = 1000


def the_answer_is(text: str) -> str | None:
    """The text after the last "The answer is", up to the end of its line."""
    matches = _THE_ANSWER_IS.findall(text)
    return _clean(matches[-1].strip().rstrip(".")) if matches else None


def last_number(text: str) -> str | None:
    """The last number in the text (commas as thousands separators allowed)."""
    matches = _NUMBER.findall(text)
    return matches[-1].replace(",", "") if matches else None


def boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, with nested braces."""
    starts = [m.end() for m in _BOX.finditer(text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return _clean(text[start : i - 1].strip())
    return None


def gsm8k(text: str) -> str | None:
    """The text after the last ``####`` (GSM8K's gold format)."""
    at = text.rfind("####")
    if at < 0:
        return None
    answer = text[at + 4 :].strip().split("\n")[0].strip()
    return _clean(answer.replace(",", "")) if answer else None


def _clean(answer: str) -> str | None:
    """An answer longer than any real one is a failure to find one, not an answer."""
    return answer if answer and len(answer) <= MAX_ANSWER_CHARS else None


EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "boxed": boxed,
    "the-answer-is": the_answer_is,
    "gsm8k": gsm8k,
    "last-number": last_number,
}


def extractor(rules: Sequence[str]) -> Callable[[str], str | None]:
    """A function that applies ``rules`` in order and returns the first answer found."""
    unknown = [r for r in rules if r not in EXTRACTORS]
    if unknown or not rules:
        raise PrmhError(
            f"unknown answer rule(s) {unknown or rules}; rules are: {', '.join(EXTRACTORS)}."
        )
    functions = [EXTRACTORS[r] for r in rules]

    def extract(text: str) -> str | None:
        for function in functions:
            answer = function(text)
            if answer is not None:
                return answer
        return None

    return extract


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
