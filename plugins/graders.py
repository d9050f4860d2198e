"""The built-in answer graders, registered through the public ``prmh_register_grader`` hook.

Each is registered as the import path of its factory, which is how the grading worker
processes load it (``prmh.grading.load_grader``); nothing here runs in the main process but
the cheap ``canonical`` forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prmh import hookimpl, mathgrade
from prmh.errors import PrmhError
from prmh.installed import version

if TYPE_CHECKING:
    from fractions import Fraction

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$|^[+-]?\d+/\d+$", re.IGNORECASE)


MAX_EXPONENT = 300


def parse_number(text: str) -> Fraction | None:
    """A decimal, integer or a/b fraction as an exact Fraction; None for anything else."""
    s = text.strip().replace(",", "").rstrip(".").strip()
    if s.startswith("$") and s.endswith("$"):
        s = s[1:-1].strip()
    if len(s) > 64 or not _NUMBER.match(s):
        return None
    _, _, exponent = s.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        return None  # 1e5000 is no answer, and 1e99999999 would take forever to build
    from fractions import Fraction  # imported on use: it is 3 ms of every command

    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def grade_exact(prediction: str, gold: str) -> bool:
    """Equal after trimming white space."""
    return prediction.strip() == gold.strip()


def grade_numeric(prediction: str, gold: str) -> bool:
    """Equal as exact numbers (``1,000`` = ``1000`` = ``1000.0``); otherwise exact text."""
    p, g = parse_number(prediction), parse_number(gold)
    if p is not None and g is not None:
        return p == g
    return grade_exact(prediction, gold)


@dataclass(frozen=True)
class Rules:
    """A grader made of functions (the ``Grader`` protocol of ``prmh.protocols``): what the
    built-in grader factories return."""

    grade: Callable[[str, str], bool]
    canonical: Callable[[str], str] = str.strip
    key: Callable[[str], str] | None = None
    version: str = ""


def _canonical_numeric(answer: str) -> str:
    number = parse_number(answer)
    return answer.strip() if number is None else str(number)


def exact() -> Rules:
    return Rules(grade_exact)


def numeric() -> Rules:
    return Rules(grade_numeric, _canonical_numeric)


def sympy() -> Rules:
    return Rules(mathgrade.grade_sympy, mathgrade.canonical, mathgrade.math_key)


def math_verify() -> Rules:
    installed = version("math-verify")
    if installed is None:
        raise PrmhError(
            "the math-verify grader needs the math-verify package: pip install 'prmh[math]', "
            "or choose another grader (-T grader=sympy)."
        )
    return Rules(mathgrade.grade_math_verify, mathgrade.canonical, mathgrade.math_key, installed)


@hookimpl
def prmh_register_grader(register):
    register(
        "math-verify",
        "prmh.plugins.graders:math_verify",
        version="1",
        description="math-verify's parser and verifier (needs prmh[math]); default for math tasks",
    )
    register(
        "sympy",
        "prmh.plugins.graders:sympy",
        version="1",
        description="prmh's own LaTeX/number parser with sympy equality; never evaluates text",
    )
    register(
        "numeric",
        "prmh.plugins.graders:numeric",
        version="1",
        description="Exact numbers (1,000 = 1000.0 = 2000/2); otherwise exact text",
    )
    register("exact", "prmh.plugins.graders:exact", version="1", description="Equal text, trimmed")
