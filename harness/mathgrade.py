"""Math answer equivalence: math-verify, and prmh's own sympy grader.

Both run only inside grading worker processes (``prmh.grading``), which kill an answer that
takes too long. The sympy grader never evaluates model text: ``prmh.mathparse`` turns
normalised LaTeX into sympy objects directly, refusing anything it does not know, and numbers
or powers too large to be an answer. Vote keys (``math_key``) are the same values as text.

Normalisation (both for grading and for the cheap ``canonical`` form used to group votes):
``\\left``/``\\right``, spacing commands, ``\\dfrac``/``\\tfrac``, ``\\frac12``, degrees, percent
signs, ``\\text{}`` units, thousands separators and surrounding ``$`` are dropped or rewritten,
so ``0.5``, ``\\frac12``, ``1/2`` and ``50\\%`` of 1 compare as intended.
"""

from __future__ import annotations

import math
import re
from typing import Any

from prmh.mathparse import MAX_DIGITS, Parser, latex_to_plain

_UNITS = (
    "units?|cm|m|km|mm|inches|inch|in|feet|foot|ft|yards?|miles?|meters?|centimeters?|"
    "kilometers?|degrees?|dollars?|cents?|hours?|minutes?|seconds?|days?|weeks?|years?|"
    "square|sq|cubic|pounds?|lbs?|ounces?|kg|g|grams?|liters?|mph|people|students?"
)
# one unit at the end of a one-spaced string (no nested repetition: linear to search)
_UNIT_AT_END = re.compile(r"(?<![A-Za-z])(?:" + _UNITS + r")\b ?\^? ?\{?\d?\}? ?$")
MAX_UNITS = 8


def _strip_units(s: str) -> str:
    """Drop a run of trailing units (``12 cm``, ``5 square feet``, ``3 m^2``) that follows a
    number, ``}``, ``)`` or ``.``; one unit at a time, so no pattern backtracks."""
    cut, rest = s, s
    for _ in range(MAX_UNITS):
        m = _UNIT_AT_END.search(rest)
        if m is None:
            break
        rest = rest[: m.start()].rstrip()
        if rest[-1:] in ("}", ")", ".") or rest[-1:].isdigit():
            cut = rest
    return cut


def normalize(answer: str) -> str:
    """A cleaned-up LaTeX answer: same meaning, fewer ways to write it."""
    s = answer.strip()
    if len(s) > 2000:
        return s
    s = s.replace("\\$", "").strip("$ ").strip()
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:|quad|qquad)", "", s)
    s = re.sub(r"\\(?:d|t)frac", r"\\frac", s)
    s = s.replace("\\\\ ", "\\\\").replace("\\ ", " ")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree", "", s)
    s = re.sub(r"\\?%", "", s)
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{([^{}]*)\}", r"\1", s)
    s = _strip_units(re.sub(r"\s+", " ", s).strip()).strip()
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    return s


def canonical(answer: str) -> str:
    """A cheap, safe key under which equivalent simple answers group (for voting)."""
    s = normalize(answer)
    plain = re.sub(r"\\frac\s*\{?\s*([+-]?\d+)\s*\}?\s*\{?\s*(\d+)\s*\}?", r"\1/\2", s)
    plain = plain.replace(" ", "")
    if re.fullmatch(r"[+-]?\d+(\.\d+)?(/\d+)?", plain) and len(plain) <= MAX_DIGITS:
        from fractions import Fraction  # imported on use: it is 3 ms of every command

        try:
            return str(Fraction(plain))
        except (ValueError, ZeroDivisionError):
            return plain
    return plain.lower()


def _split_top(s: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


_PLUS_MINUS = re.compile(r"\\pm|\\mp|±|∓")
MAX_PLUS_MINUS = 3  # 8 alternatives at most


def _expand_plus_minus(s: str) -> list[str]:
    """``3 \\pm 2`` -> ``['3 + 2', '3 - 2']``: the values an answer with ± stands for."""
    m = _PLUS_MINUS.search(s)
    if m is None:
        return [s]
    return [x for sign in "+-" for x in _expand_plus_minus(f"{s[: m.start()]}{sign}{s[m.end() :]}")]


def _structure(s: str) -> tuple[str, list[str]] | None:
    """A set (``\\{a, b\\}``, or the values of an answer with ±), tuple, interval or matrix as
    (kind, items); None for a single value. Set items are unordered; ± inside a set item
    expands in place."""
    if s.startswith("\\{") and s.endswith("\\}") and len(_PLUS_MINUS.findall(s)) <= MAX_PLUS_MINUS:
        items = [i.strip() for i in _split_top(s[2:-2])]
        return "set", [x for i in items for x in _expand_plus_minus(i)]
    m = re.fullmatch(r"\\begin\{[pbv]?matrix\}(.*)\\end\{[pbv]?matrix\}", s, re.S)
    if m:
        rows = [r for r in re.split(r"\\\\", m.group(1)) if r.strip()]
        return "matrix", [f"({','.join(c.strip() for c in r.split('&'))})" for r in rows]
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        items = _split_top(s[1:-1])
        if len(items) > 1:
            return s[0] + s[-1], [i.strip() for i in items]
    if 0 < len(_PLUS_MINUS.findall(s)) <= MAX_PLUS_MINUS:
        return "set", _expand_plus_minus(s)
    return None


def _same_items(a: list[str], b: list[str]) -> bool:
    """Equal as collections in any order (each item of ``a`` matched to its own item of ``b``)."""
    if len(a) != len(b):
        return False
    left = list(b)
    for x in a:
        match = next((j for j, y in enumerate(left) if grade_sympy(x, y)), None)
        if match is None:
            return False
        left.pop(match)
    return True


def _value(s: str) -> Any:
    return Parser(latex_to_plain(s)).parse()


def _values_equal(a: Any, b: Any) -> bool:
    import sympy

    if a.free_symbols or b.free_symbols:
        return sympy.simplify(a - b) == 0
    try:
        difference, scale = complex(sympy.N(a - b, 30)), abs(complex(sympy.N(b, 30)))
    except (TypeError, ValueError):
        return False
    return abs(difference) <= 1e-9 * max(1.0, scale)


MAX_CHARS = 2000
MAX_DEPTH = 50


def _depth(text: str) -> int:
    deepest = depth = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    return deepest


_TOWER = re.compile(r"^\(?(\d+)\)?\s*\^\s*\{?\s*(\d+)\s*\}?\s*\^\s*\{?\s*(\d+)")


def _tower_too_large(answer: str) -> bool:
    """a^b^c... with a number too long to be any answer (it would only hang a grader)."""
    m = _TOWER.match(answer.strip().strip("$"))
    if not m:
        return False
    base, middle, top = (int(x) for x in m.groups())
    if base < 2 or middle < 2:
        return False
    return top * math.log10(middle) > 4 or middle**top * math.log10(base) > MAX_DIGITS


def quick_verdict(prediction: str, gold: str) -> bool | None:
    """The verdict when it needs no parsing: the same canonical form (only formatting differs),
    two plain numbers compared exactly, tuples or intervals whose brackets, lengths or elements
    decide, or a power tower too large to be an answer. None when a full grader must decide."""
    if _tower_too_large(prediction):
        return _tower_too_large(gold) and normalize(prediction) == normalize(gold)
    if len(prediction) > MAX_CHARS or _depth(prediction) > MAX_DEPTH:
        return prediction.strip() == gold.strip()
    p, g = canonical(prediction), canonical(gold)
    if p == g:
        return True
    from fractions import Fraction

    try:
        return Fraction(p) == Fraction(g)
    except (ValueError, ZeroDivisionError):
        pass
    ps, gs = _structure(normalize(prediction)), _structure(normalize(gold))
    if ps and gs and ps[0] != "matrix" and gs[0] != "matrix":
        if ps[0] != gs[0] or len(ps[1]) != len(gs[1]):
            return False
        if ps[0] == "set":  # unordered: an item-by-item mismatch decides nothing
            return None
        verdicts = [quick_verdict(a, b) for a, b in zip(ps[1], gs[1], strict=True)]
        if False in verdicts:
            return False
        if all(verdicts):
            return True
    return None


def grade_sympy(prediction: str, gold: str) -> bool:
    """Equal as math after normalisation: numbers, fractions, radicals, expressions, tuples,
    intervals (bracket types must match), matrices; text answers compare as lower-case text."""
    quick = quick_verdict(prediction, gold)
    if quick is not None:
        return quick
    p, g = normalize(prediction), normalize(gold)
    ps, gs = _structure(p), _structure(g)
    if ps or gs:
        if not (ps and gs) or ps[0] != gs[0] or len(ps[1]) != len(gs[1]):
            return False
        if ps[0] == "set":
            return _same_items(ps[1], gs[1])
        return all(grade_sympy(a, b) for a, b in zip(ps[1], gs[1], strict=True))
    try:
        return bool(_values_equal(_value(p), _value(g)))
    except (ValueError, TypeError, ZeroDivisionError, RecursionError, AttributeError):
        return canonical(p) == canonical(g)


def math_key(answer: str) -> str:
    """The answer's value as sympy writes it, so that equivalent answers share one key and vote
    together: ``\\frac{\\sqrt2}{2}`` and ``\\frac{\\sqrt{2}}{2}`` (``sqrt(2)/2``), ``x+1`` and
    ``1+x``, ``2\\sqrt3`` and ``\\sqrt{12}``. Tuples and intervals keep their order; sets and
    the values of ± are sorted. What the parser refuses keeps its ``canonical`` form. It parses
    model text: call it, like a grader, in a worker process under a timeout (search-and-learn
    groups votes by a sympy canonical form the same way)."""
    quick = canonical(answer)
    if re.fullmatch(r"-?\d+(/\d+)?", quick):  # an exact number already
        return quick
    s = normalize(answer)
    if len(s) > MAX_CHARS or _depth(s) > MAX_DEPTH or _tower_too_large(answer):
        return quick
    try:
        return _key(s)
    except (ValueError, TypeError, ZeroDivisionError, RecursionError, AttributeError):
        return quick


def _key(s: str) -> str:
    import sympy

    structure = _structure(s)
    if structure:
        kind, items = structure
        keys = [_key(normalize(i)) for i in items]
        return f"{kind}:" + "|".join(sorted(keys) if kind == "set" else keys)
    value = _value(s)
    if value.free_symbols:
        value = sympy.expand(value)
    text = str(value)
    if len(text) > MAX_CHARS:
        raise ValueError("key too long")
    return text


def grade_math_verify(prediction: str, gold: str) -> bool:
    """math-verify's equivalence of the two answers, each read as LaTeX math (after the same
    quick check as the sympy grader)."""
    quick = quick_verdict(prediction, gold)
    if quick is not None:
        return quick
    from math_verify import parse, verify

    def read(text: str) -> Any:
        return parse(f"${text}$") or parse(text)

    return bool(verify(read(gold), read(prediction)))
