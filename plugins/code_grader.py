"""The `code` grader: a program against hidden tests, run in the sandbox (``prmh.sandbox``).

The gold answer of a code problem is a JSON test specification (``prmh.code_tests``).
``function`` mode calls ``entry`` (``name`` or ``Class().method``) with each input's
arguments (``a = 1, b = [2]`` as LeetCode writes them, or a JSON list) and compares what it
returns with the output, both read as Python literals (or JSON), a tuple as a list, floats to
1e-6 (LiveCodeBench compares floats exactly). ``stdio`` mode feeds the input to standard
input and compares the printed lines, each stripped, as LiveCodeBench's ``grade_stdio`` does:
as many lines, each equal or else made of numbers equal as decimals. ``setup`` is code run
before the program (LeetCodeDataset's helper imports). A program passes when every test passes;
the grade's detail says how many did, each test's outcome in order (``.`` pass, ``W`` wrong
answer, ``T`` timeout, ``C`` crash, ``R`` refused, ``O`` output limit) and why the first
failure failed: ``1/3 tests passed (.WT); test 2: wrong answer``.
"""

from __future__ import annotations

import ast
import json
import math
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from prmh import hookimpl

if TYPE_CHECKING:
    from prmh.sandbox import TestRun

MAX_LITERAL = 100_000
MARKS = {"pass": ".", "wrong answer": "W", "timeout": "T", "crash": "C", "refused": "R",
         "output limit": "O"}  # fmt: skip
_MISSING = object()


def _literal(text: str) -> Any:
    if len(text) > MAX_LITERAL:
        return _MISSING
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _MISSING


def same_value(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-6, lists and tuples alike."""
    if isinstance(a, float) or isinstance(b, float):
        numbers = (int, float)
        if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
        return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def same_return(output: str, expected: str) -> bool:
    got, want = _literal(output), _literal(expected)
    if got is _MISSING or want is _MISSING:
        return output.strip() == expected.strip()
    return same_value(got, want)


def _decimal(token: str) -> Decimal | None:
    try:
        return Decimal(token) if len(token) <= 1000 else None
    except (InvalidOperation, ValueError):
        return None


def same_stdout(output: str, expected: str) -> bool:
    got = [line.strip() for line in output.strip().split("\n")]
    want = [line.strip() for line in expected.strip().split("\n")]
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if a == b:
            continue
        x, y = [_decimal(t) for t in a.split()], [_decimal(t) for t in b.split()]
        if None in x or None in y or x != y:  # a line that differs must be numbers alike
            return False
    return True


def _verdict(run: TestRun, expected: str, mode: str) -> str:
    if run.status != "ok" or run.output is None:
        return run.status
    same = same_stdout if mode == "stdio" else same_return
    return "pass" if same(run.output, expected) else "wrong answer"


def grade_code(prediction: str, gold: str) -> tuple[bool, str]:
    """Run the program on the gold tests in the sandbox; (all passed, detail)."""
    from prmh.sandbox import Limits, run_tests  # in the grading workers only

    spec = json.loads(gold)
    tests, mode = spec["tests"], spec.get("mode", "function")
    if not tests:
        return False, "no tests"
    program = (spec.get("setup") or "") + "\n" + prediction
    limits = Limits(
        time_per_test=float(spec.get("time_per_test", 1.0)), wall=float(spec.get("wall", 4.0))
    )
    runs = run_tests(
        program,
        [str(t["input"]) for t in tests],
        mode=mode,
        entry=spec.get("entry", "f"),
        limits=limits,
    )
    verdicts = [_verdict(r, str(t["output"]), mode) for r, t in zip(runs, tests, strict=True)]
    passed = verdicts.count("pass")
    marks = "".join(MARKS.get(v, "?") for v in verdicts)[:300]
    detail = f"{passed}/{len(tests)} tests passed ({marks})"
    failed = next((i for i, v in enumerate(verdicts) if v != "pass"), None)
    if failed is not None:
        why = runs[failed].detail if verdicts[failed] in ("crash", "refused") else None
        detail += f"; test {failed + 1}: {verdicts[failed]}" + (f" ({why})" if why else "")
    return passed == len(tests), detail


class CodeRules:
    """The ``Grader`` protocol for programs: the canonical form (also the vote key) is the
    program with blank lines and trailing white space removed."""

    version = "1"

    def grade(self, prediction: str, gold: str) -> tuple[bool, str]:
        return grade_code(prediction, gold)

    def canonical(self, answer: str) -> str:
        return "\n".join(line.rstrip() for line in answer.splitlines() if line.strip())


def code() -> CodeRules:
    return CodeRules()


@hookimpl
def prmh_register_grader(register):
    register(
        "code",
        "prmh.plugins.code_grader:code",
        version="1",
        description="Runs the program on the problem's hidden tests in a sandbox (prmh.sandbox)",
    )
