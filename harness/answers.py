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
_BRACE = re.compile(r"[{}]")
MAX_ANSWER_CHARS = 1000


def the_answer_is(text: str) -> str | None:
    """The text after the last "The answer is" (colons and blank lines skipped), up to the end of
    its line, without a surrounding ``$...$`` or a final period. A scan, not a backtracking
    pattern: linear in the text's length, whatever a model writes (``_Line`` finds each line's
    end and each "$" once, however many markers share the line). As a regular expression's
    ``findall`` would, a marker whose answer runs to the end of the line also takes any later
    marker on that line into its answer."""
    last, pos, line = None, 0, _Line(text)
    while (marker := _THE_ANSWER_IS.search(text, pos)) is not None:
        found = _answer_after(text, marker.end(), line)
        if found is None:
            pos = marker.start() + 1
        else:
            last, pos = found
    return _clean(last) if last else None


def _answer_after(text: str, i: int, line: _Line) -> tuple[str, int] | None:
    """The answer after a marker ending at ``i`` and where its line ends; None if none."""
    while i < len(text) and (text[i] == ":" or text[i].isspace()):
        i += 1
    if i < len(text) and text[i] == "$":
        i += 1
    end = line.end(i)
    dollar = line.dollar(i, end)
    if dollar is not None and not line.ends_after(dollar, end):
        return None  # a "$" inside the line: not "answer$." at its end
    answer = text[i : end if dollar is None else dollar]
    if not answer.strip(": \t."):
        return None
    answer = answer.rstrip()
    answer = answer[:-1].rstrip() if answer.endswith(".") else answer
    return answer.strip().rstrip("."), end


class _Line:
    """The end of the line and the next "$" after a position, remembered: markers repeated
    along one long line asked for them again each, a quadratic scan (2.6 s for 800 KB)."""

    def __init__(self, text: str):
        self.text = text
        self.span = (0, -1)  # no newline in [start, end): text[end] is one, or the end
        self.next = (0, -1)  # no "$" in [start, at): text[at] is one, or the line's end
        self.tails: dict[int, bool] = {}

    def end(self, i: int) -> int:
        start, end = self.span
        if not start <= i <= end:
            found = self.text.find("\n", i)
            self.span = (i, len(self.text) if found < 0 else found)
        return self.span[1]

    def dollar(self, i: int, end: int) -> int | None:
        start, at = self.next
        if not start <= i <= at:
            found = self.text.find("$", i, end)
            self.next = (i, end if found < 0 else found)
        at = self.next[1]
        return at if at < end else None

    def ends_after(self, dollar: int, end: int) -> bool:
        """Whether only blanks and a period follow the "$" at ``dollar`` on its line."""
        if dollar not in self.tails:
            rest = self.text.find("$", dollar + 1, end) < 0
            self.tails[dollar] = rest and self.text[dollar + 1 : end].strip() in ("", ".")
        return self.tails[dollar]


def last_number(text: str) -> str | None:
    """The last number in the text (commas as thousands separators allowed)."""
    matches = _NUMBER.findall(text)
    return matches[-1].replace(",", "") if matches else None


def boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` that closes, with nested braces. One pass
    over the braces pairs them all: a scan from each box to its end took hours on a model's
    ``\\boxed{`` repeated 100,000 times."""
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    closing = _closing_braces(text)
    for start in reversed(starts):
        end = closing.get(start - 1)
        if end is not None:
            return _clean(text[start:end].strip())
    return None


def _closing_braces(text: str) -> dict[int, int]:
    """The position of the ``}`` that closes each ``{`` that is closed."""
    opened: list[int] = []
    closing = {}
    for brace in _BRACE.finditer(text):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    return closing


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
