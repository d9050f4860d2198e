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

_THE_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is")
_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
MAX_ANSWER_CHARS = 1000


def the_answer_is(text: str) -> str | None:
    """The text after the last "The answer is" (colons and blank lines skipped), up to the end of
    its line, without a surrounding ``$...$`` or a final period. A scan, not a backtracking
    pattern: linear in the text's length, whatever a model writes. As a regular expression's
    ``findall`` would, a marker whose answer runs to the end of the line also takes any later
    marker on that line into its answer."""
    last, pos = None, 0
    while (marker := _THE_ANSWER_IS.search(text, pos)) is not None:
        found = _answer_after(text, marker.end())
        if found is None:
            pos = marker.start() + 1
        else:
            last, pos = found
    return _clean(last) if last else None


def _answer_after(text: str, i: int) -> tuple[str, int] | None:
    """The answer after a marker ending at ``i`` and where its line ends; None if none."""
    while i < len(text) and (text[i] == ":" or text[i].isspace()):
        i += 1
    if i < len(text) and text[i] == "$":
        i += 1
    end = text.find("\n", i)
    end = len(text) if end < 0 else end
    answer, dollar, after = text[i:end].partition("$")
    if not answer.strip(": \t.") or (dollar and after.strip() not in ("", ".")):
        return None  # nothing, or a "$" inside the line: not "answer$." at its end
    answer = answer.rstrip()
    answer = answer[:-1].rstrip() if answer.endswith(".") else answer
    return answer.strip().rstrip("."), end


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


_FENCE = re.compile(r"^```[ \t]*(?:python3?|py)?[ \t]*$", re.MULTILINE | re.IGNORECASE)
MAX_PROGRAM_CHARS = 100_000


def python_block(text: str) -> str | None:
    """The program in the last complete fenced block (```python, ```py or bare ```): fences
    pair up from the start, so an unclosed last block (a cut-off sample) does not count."""
    fences = list(_FENCE.finditer(text))
    if len(fences) < 2:
        return None
    opening, closing = fences[(len(fences) // 2) * 2 - 2], fences[(len(fences) // 2) * 2 - 1]
    program = text[opening.end() : closing.start()].strip("\n")
    if not program.strip() or len(program) > MAX_PROGRAM_CHARS:
        return None
    return program + "\n"


EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "python-block": python_block,
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
