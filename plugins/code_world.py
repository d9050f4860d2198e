"""The bundled `code` task: small programming problems with hidden tests, made procedurally.

Each problem asks for a function ``f`` that runs its argument (a list of integers, a string or
an integer) through a pipeline of two to five operations (keep the numbers above k, add k to
each, reverse, drop the vowels, integer-divide by k, ...) and returns a result (their sum, the
string, how many are left, ...). Its gold solution is a fenced Python block, one line per
operation, and its gold answer the hidden tests (``prmh.code_tests.test_spec``): inputs
drawn so that every single-line mistake the `sim` generator can make fails at least one of
them. A problem is a pure function of (split, index, seed): no data file, no network; train
and test splits come from separate random streams and share no question.

``LINES`` holds each operation's correct line and its wrong variants (``variants``), which the
`sim` generator samples and the `oracle` PRM checks against.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from prmh import Problem, hookimpl
from prmh.answers import python_block
from prmh.code_tests import test_spec
from prmh.plugins.arith import ArithTask, draw

SPLIT_SIZES = {"test": 500, "train": 2000}
PROMPT = (
    "Write the Python function described below. Answer with one ```python block, one "
    "operation per line.\n\nTask: {question}\n\nSolution:\n"
)
VOWELS = "aeiou"
LETTERS = "abcdeiouxyz"

# kind -> op -> (line template, English, wrong variants as (op, k-offset) pairs)
LINES: dict[str, dict[str, tuple[str, str, tuple[tuple[str, int], ...]]]] = {
    "list": {
        "gt": ("xs = [x for x in xs if x > {k}]", "keep the numbers greater than {k}",
               (("ge", 0), ("gt", 1), ("gt", -1))),
        "ge": ("xs = [x for x in xs if x >= {k}]", "keep the numbers of at least {k}",
               (("gt", 0), ("ge", 1), ("ge", -1))),
        "even": ("xs = [x for x in xs if x % 2 == 0]", "keep the even numbers", (("odd", 0),)),
        "odd": ("xs = [x for x in xs if x % 2 == 1]", "keep the odd numbers", (("even", 0),)),
        "add": ("xs = [x + {k} for x in xs]", "add {k} to each number",
                (("mul", 0), ("add", 1), ("add", -1))),
        "mul": ("xs = [x * {k} for x in xs]", "multiply each number by {k}",
                (("add", 0), ("mul", 1))),
        "reverse": ("xs = xs[::-1]", "reverse their order", (("sort", 0),)),
        "sort": ("xs = sorted(xs)", "sort them in increasing order", (("reverse", 0),)),
        "drop": ("xs = xs[{k}:]", "drop the first {k} of them", (("take", 0), ("drop", 1))),
        "take": ("xs = xs[:{k}]", "keep the first {k} of them", (("drop", 0), ("take", 1))),
    },
    "str": {
        "upper": ("s = s.upper()", "make it upper case", (("lower", 0),)),
        "lower": ("s = s.lower()", "make it lower case", (("upper", 0),)),
        "reverse": ("s = s[::-1]", "reverse it", (("strip", 0),)),
        "strip": ("s = s.strip('{c}')", "remove the letter '{c}' from both ends",
                  (("novowel", 0),)),
        "novowel": ("s = ''.join(c for c in s if c not in 'aeiou')", "drop its vowels",
                    (("reverse", 0),)),
        "double": ("s = ''.join(c + c for c in s)", "write every character twice",
                   (("reverse", 0),)),
        "drop": ("s = s[{k}:]", "drop its first {k} characters", (("take", 0), ("drop", 1))),
        "take": ("s = s[:{k}]", "keep its first {k} characters", (("drop", 0), ("take", 1))),
    },
    "int": {
        "add": ("n = n + {k}", "add {k}", (("sub", 0), ("add", 1))),
        "sub": ("n = n - {k}", "subtract {k}", (("add", 0), ("sub", 1))),
        "mul": ("n = n * {k}", "multiply by {k}", (("add", 0), ("mul", 1))),
        "div": ("n = n // {k}", "integer-divide by {k}", (("mod", 0), ("div", 1))),
        "mod": ("n = n % {k}", "take the remainder modulo {k}", (("div", 0), ("mod", 1))),
        "digits": ("n = sum(int(d) for d in str(abs(n)))", "replace it by its digit sum",
                   (("abs", 0),)),
        "abs": ("n = abs(n)", "take its absolute value", (("digits", 0),)),
    },
}  # fmt: skip
FINALS: dict[str, dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "list": {
        "sum": ("return sum(xs)", "return their sum", ("len",)),
        "len": ("return len(xs)", "return how many are left", ("sum",)),
        "max": ("return max(xs, default=0)", "return the largest (0 if none is left)", ("sum",)),
        "list": ("return xs", "return the list", ("sum",)),
    },
    "str": {
        "str": ("return s", "return it", ("len",)),
        "len": ("return len(s)", "return its length", ("str",)),
    },
    "int": {"int": ("return n", "return the result", ("abs",)),
            "abs": ("return abs(n)", "return its absolute value", ("int",))},
}  # fmt: skip
ARGUMENT = {"list": "xs", "str": "s", "int": "n"}
SUBJECT = {"list": "a list of integers xs", "str": "a string s", "int": "an integer n"}


def line(kind: str, op: str, k: int, c: str = "a") -> str:
    return LINES[kind][op][0].format(k=k, c=c)


def variants(kind: str, step: list) -> list[str]:
    """An operation's wrong lines, the misreading first (a constant never drops below 1)."""
    op, k, c = step
    return [line(kind, o, max(1, k + dk), c) for o, dk in LINES[kind][op][2]]


def final_variants(kind: str, final: str) -> list[str]:
    return [FINALS[kind][f][0] for f in FINALS[kind][final][2]]


def solution_lines(kind: str, ops: list, final: str) -> list[str]:
    """The gold solution, line by line (the fence lines included)."""
    body = [f"    {line(kind, op, k, c)}" for op, k, c in ops]
    head = ["```python", f"def f({ARGUMENT[kind]}):"]
    return head + body + [f"    {FINALS[kind][final][0]}", "```"]


# kind -> op -> f(value, k, c): each operation computed directly (no generated code runs here)
APPLY: dict[str, dict[str, Any]] = {
    "list": {"gt": lambda v, k, c: [x for x in v if x > k],
             "ge": lambda v, k, c: [x for x in v if x >= k],
             "even": lambda v, k, c: [x for x in v if x % 2 == 0],
             "odd": lambda v, k, c: [x for x in v if x % 2 == 1],
             "add": lambda v, k, c: [x + k for x in v], "mul": lambda v, k, c: [x * k for x in v],
             "reverse": lambda v, k, c: v[::-1], "sort": lambda v, k, c: sorted(v),
             "drop": lambda v, k, c: v[k:], "take": lambda v, k, c: v[:k]},
    "str": {"upper": lambda v, k, c: v.upper(), "lower": lambda v, k, c: v.lower(),
            "reverse": lambda v, k, c: v[::-1], "strip": lambda v, k, c: v.strip(c),
            "novowel": lambda v, k, c: "".join(ch for ch in v if ch not in VOWELS),
            "double": lambda v, k, c: "".join(ch + ch for ch in v),
            "drop": lambda v, k, c: v[k:], "take": lambda v, k, c: v[:k]},
    "int": {"add": lambda v, k, c: v + k, "sub": lambda v, k, c: v - k,
            "mul": lambda v, k, c: v * k, "div": lambda v, k, c: v // k,
            "mod": lambda v, k, c: v % k,
            "digits": lambda v, k, c: sum(int(d) for d in str(abs(v))),
            "abs": lambda v, k, c: abs(v)},
}  # fmt: skip
FINISH = {"sum": sum, "len": len, "max": lambda v: max(v, default=0), "abs": abs}


def run(kind: str, ops: list, final: str, value: Any) -> Any:
    for op, k, c in ops:
        value = APPLY[kind][op](value, k, c)
    return FINISH.get(final, lambda v: v)(value)


def _input(kind: str, rng: random.Random, ops: list) -> Any:
    if kind == "list":
        near = [k for _, k, _ in ops] + [0, 1, 2]
        return [rng.choice(near) if rng.random() < 0.3 else rng.randint(-5, 20)
                for _ in range(rng.randint(0, 8))]  # fmt: skip
    if kind == "str":
        edge = "".join(c for _, _, c in ops)
        text = "".join(rng.choice(LETTERS + edge.upper()) for _ in range(rng.randint(0, 9)))
        return rng.choice(edge) + text + rng.choice(edge) if rng.random() < 0.5 else text
    return rng.randint(-60, 600)


def _mutants(kind: str, ops: list, final: str) -> list[tuple[list, str]]:
    out = []
    for i, (op, k, c) in enumerate(ops):
        for o, dk in LINES[kind][op][2]:
            out.append(([*ops[:i], [o, max(1, k + dk), c], *ops[i + 1 :]], final))
    return out + [(ops, f) for f in FINALS[kind][final][2]]


def _tests(kind: str, ops: list, final: str, rng: random.Random) -> list[Any]:
    """Up to eight inputs, drawn until every mutant fails one (or 60 draws)."""
    inputs, alive = [], _mutants(kind, ops, final)
    for _ in range(60):
        x = _input(kind, rng, ops)
        killed = [m for m in alive if run(kind, *m, x) != run(kind, ops, final, x)]
        if killed or len(inputs) < 3:
            inputs.append(x)
            alive = [m for m in alive if m not in killed]
        if (not alive and len(inputs) >= 4) or len(inputs) == 8:
            break
    return inputs


def _make(rng: random.Random, min_ops: int, max_ops: int) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(list(LINES))
    ops = []
    for _ in range(rng.randint(min_ops, max_ops)):
        op = rng.choice(list(LINES[kind]))
        small = kind == "str" or op in ("drop", "take", "mul")
        k = rng.randint(2 if op == "mul" else 1, 3) if small else rng.randint(2, 9)
        ops.append([op, k, rng.choice("axyz")])
    final = rng.choice(list(FINALS[kind]))
    clauses = [LINES[kind][op][1].format(k=k, c=c) for op, k, c in ops]
    question = (
        f"Write f({ARGUMENT[kind]}) that takes {SUBJECT[kind]}, "
        + ", then ".join(clauses)
        + f", and finally {FINALS[kind][final][1]}."
    )
    return question, {"kind": kind, "ops": ops, "final": final, "language": "python"}


@lru_cache(maxsize=8)
def generate(
    split: str, seed: int, min_ops: int, max_ops: int, count: int | None = None
) -> tuple[Problem, ...]:
    """The first ``count`` problems of a split (all by default); train skips any question
    that test also has. A problem's hidden tests are drawn after its question is kept."""
    exclude = (
        {p.question for p in generate("test", seed, min_ops, max_ops)}
        if split == "train"
        else set()
    )

    def make(rng: random.Random) -> tuple[str, Callable[[], tuple]]:
        question, meta = _make(rng, min_ops, max_ops)
        kind, ops, final = meta["kind"], meta["ops"], meta["final"]

        def finish() -> tuple:
            tests = [
                {"input": json.dumps([x]), "output": repr(run(kind, ops, final, x))}
                for x in _tests(kind, ops, final, rng)
            ]
            return test_spec(tests), tuple(solution_lines(kind, ops, final)), meta

        return question, finish

    return draw(
        "code", SPLIT_SIZES, split, f"{seed}:{split}:{min_ops}:{max_ops}", count, exclude, make
    )


class CodeTask(ArithTask):
    """Procedural programming problems with hidden tests, graded in the sandbox."""

    name, splits, max_ops_limit, template = "code", SPLIT_SIZES, 8, PROMPT
    generate = staticmethod(generate)

    def __init__(
        self, split: str = "test", seed: int = 0, min_ops: int = 2, max_ops: int = 5,
        grader: str = "code",
    ):  # fmt: skip
        super().__init__(split, seed, min_ops, max_ops, grader)

    def extract_answer(self, text: str) -> str | None:
        return python_block(text)


@hookimpl
def prmh_register_task(register):
    register(
        "code",
        CodeTask,
        description="Bundled programming problems (list, string, integer pipelines) with hidden "
        "tests, run in the sandbox",
        version="1",
    )
