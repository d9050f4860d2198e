"""Math answer equivalence: math-verify, and prmh's own sympy grader.

Both run only inside grading worker processes (``prmh.grading``), which kill an answer that
takes too long. The sympy grader never evaluates model text: a small recursive-descent parser
turns normalised LaTeX into sympy objects directly, refusing anything it does not know, and
numbers or powers too large to be an answer.

Normalisation (both for grading and for the cheap ``canonical`` form used to group votes):
``\\left``/``\\right``, spacing commands, ``\\dfrac``/``\\tfrac``, ``\\frac12``, degrees, percent
signs, ``\\text{}`` units, thousands separators and surrounding ``$`` are dropped or rewritten,
so ``0.5``, ``\\frac12``, ``1/2`` and ``50\\%`` of 1 compare as intended.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

MAX_DIGITS = 200  # a number literal longer than this is not an answer
MAX_EXPONENT = 10_000

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


def _braced(s: str, i: int) -> tuple[str, int]:
    """The content of the brace group (or single character) at ``s[i]`` and the index after."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] != "{":
        return s[i], i + 1
    depth, j = 1, i + 1
    while j < len(s) and depth:
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        j += 1
    return s[i + 1 : j - 1], j


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
        try:
            return str(Fraction(plain))
        except (ValueError, ZeroDivisionError):
            return plain
    return plain.lower()


def latex_to_plain(s: str) -> str:
    """Rewrite LaTeX constructs to the plain syntax ``parse`` reads."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            a, i = _braced(s, i + 5)
            b, i = _braced(s, i)
            out.append(f"(({latex_to_plain(a)})/({latex_to_plain(b)}))")
        elif s.startswith("\\sqrt", i):
            i += 5
            root = None
            if i < len(s) and s[i] == "[":
                end = s.index("]", i)
                root, i = s[i + 1 : end], end + 1
            a, i = _braced(s, i)
            inner = latex_to_plain(a)
            out.append(f"(({inner})^(1/({latex_to_plain(root)})))" if root else f"sqrt({inner})")
        elif s[i] == "\\":
            m = re.match(r"\\([a-zA-Z]+)", s[i:])
            name = m.group(1) if m else s[i + 1 : i + 2]
            out.append(
                {
                    "cdot": "*",
                    "times": "*",
                    "div": "/",
                    "pi": "pi",
                    "infty": "oo",
                    "ln": "log",
                    "log": "log",
                    "sin": "sin",
                    "cos": "cos",
                    "tan": "tan",
                    "exp": "exp",
                }.get(name, f"\\{name}")
            )
            i += 1 + len(name)
        elif s[i] in "{}":
            out.append("(" if s[i] == "{" else ")")
            i += 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|([a-zA-Z]+)|(\*\*|[-+*/^(),]))")
_FUNCTIONS = {"sqrt", "sin", "cos", "tan", "log", "exp"}
_CONSTANTS = {"pi", "oo", "e"}


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|implicit) unary)* ;
    unary := ('-'|'+') unary | power ; power := atom ('^' unary)? ;
    atom := number | constant | letter | function '(' expr ')' | '(' expr ')'."""

    def __init__(self, text: str):
        import sympy

        self.sympy = sympy
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                if text[pos:].strip():
                    raise ValueError(f"unexpected {text[pos : pos + 10]!r}")
                break
            pos = m.end()
            number, name, op = m.groups()
            if number:
                if len(number) > MAX_DIGITS:
                    raise ValueError("number too long")
                self.tokens.append(("num", number))
            elif name:
                if name in _FUNCTIONS or name in _CONSTANTS or len(name) == 1:
                    self.tokens.append(("name", name))
                else:  # a word: letters of a product like "xy" are too ambiguous; give up
                    raise ValueError(f"word {name!r}")
            else:
                self.tokens.append(("op", "^" if op == "**" else op))
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ValueError(f"expected {value!r}")
        self.i += 1
        return token

    def parse(self) -> Any:
        expr = self.expr()
        if self.peek() is not None:
            raise ValueError("trailing input")
        return expr

    def expr(self) -> Any:
        value = self.term()
        while (t := self.peek()) and t[1] in "+-" and t[0] == "op":
            self.take()
            rhs = self.term()
            value = value + rhs if t[1] == "+" else value - rhs
        return value

    def term(self) -> Any:
        value = self.unary()
        while (t := self.peek()) and (t[1] in "*/" or t[0] in ("num", "name") or t[1] == "("):
            if t[1] in "*/" and t[0] == "op":
                self.take()
                rhs = self.unary()
                value = value * rhs if t[1] == "*" else value / rhs
            else:
                value = value * self.unary()  # implicit multiplication: 2x, 3(x+1)
        return value

    def unary(self) -> Any:
        t = self.peek()
        if t and t[0] == "op" and t[1] in "+-":
            self.take()
            inner = self.unary()
            return -inner if t[1] == "-" else inner
        return self.power()

    def power(self) -> Any:
        base = self.atom()
        if (t := self.peek()) and t[1] == "^":
            self.take()
            exponent = self.unary()
            if exponent.is_number and abs(exponent) > MAX_EXPONENT:
                raise ValueError("exponent too large")
            if base.is_number and exponent.is_number and abs(base) > 1 and exponent > 0:
                if exponent * self.sympy.log(abs(base), 10) > MAX_DIGITS:
                    raise ValueError("power too large")
            return base**exponent
        return base

    def atom(self) -> Any:
        sympy = self.sympy
        kind, value = self.take()
        if kind == "num":
            return sympy.Rational(value) if "." in value else sympy.Integer(value)
        if kind == "name":
            if value in _FUNCTIONS:
                self.take("(")
                arg = self.expr()
                self.take(")")
                return {
                    "sqrt": sympy.sqrt,
                    "sin": sympy.sin,
                    "cos": sympy.cos,
                    "tan": sympy.tan,
                    "log": sympy.log,
                    "exp": sympy.exp,
                }[value](arg)
            if value == "pi":
                return sympy.pi
            if value == "oo":
                return sympy.oo
            return sympy.Symbol(value)
        if value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        raise ValueError(f"unexpected {value!r}")


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
    return _Parser(latex_to_plain(s)).parse()


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
