"""LaTeX answers to sympy objects, without evaluating anything: ``latex_to_plain`` rewrites
LaTeX into a small plain syntax and ``Parser`` (recursive descent) builds sympy objects from
it, refusing what it does not know and numbers or powers too large to be an answer. Used by
the sympy grader and vote keys (``prmh.mathgrade``), in grading workers only.
"""

from __future__ import annotations

import re
from typing import Any

MAX_DIGITS = 200  # a number literal longer than this is not an answer
MAX_EXPONENT = 10_000


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


class Parser:
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
