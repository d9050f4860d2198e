"""The bundled `arith` task: procedural multi-step arithmetic word problems.

Every problem has an exact gold answer and exact gold steps, and is a pure function of
(split, index, seed), so the task needs no data file and no network. Train and test splits are
drawn from separate random streams and share no question. ``problem.metadata["ops"]`` holds the
operations so simulators and oracles can reason about the problem without parsing English.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache

from prmh import Problem, hookimpl
from prmh.answers import last_number, the_answer_is
from prmh.errors import PrmhError

SPLIT_SIZES = {"test": 1000, "train": 10000}
MAX_VALUE = 999

PROMPT = (
    "Solve the problem step by step. Write each step as its own paragraph and finish with "
    '"The answer is N."\n\nProblem: {question}\n\nSolution:\n'
)

_NAMES = ["Ava", "Ben", "Chloe", "Dev", "Ema", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lena"]
_PRONOUNS = {
    n: ("she" if n in {"Ava", "Chloe", "Ema", "Gia", "Ines", "Lena"} else "he") for n in _NAMES
}
_ITEMS = ["apples", "marbles", "stickers", "coins", "books", "shells", "cards", "pencils"]
_FACTOR_WORDS = {2: "doubles", 3: "triples"}


def apply(op: str, a: int, b: int) -> int:
    """The result of one operation; division is exact by construction."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b
    raise ValueError(f"unknown operation {op!r}")


def question_clause(op: str, b: int, pronoun: str, item: str) -> str:
    subject = pronoun.capitalize()
    if op == "+":
        return f"{subject} gets {b} more {item}."
    if op == "-":
        return f"{subject} gives away {b} {item}."
    if op == "*":
        verb = _FACTOR_WORDS.get(b, f"becomes {b} times as large")
        return f"Then the number of {item} {pronoun} has {verb}."
    return f"{subject} splits the {item} into {b} equal groups and keeps one group."


def step_text(op: str, a: int, b: int, c: int, item: str) -> str:
    """One solution step; the last number in it is the running value."""
    lead = {
        "+": f"Getting {b} more",
        "-": f"Giving away {b}",
        "*": f"Multiplying by {b}",
        "/": f"Splitting into {b} groups",
    }[op]
    return f"{lead} gives {a} {op} {b} = {c} {item}."


def first_step(name: str, start: int, item: str) -> str:
    return f"{name} starts with {start} {item}."


def final_step(answer: int) -> str:
    return f"The answer is {answer}."


def _make_problem(rng: random.Random, min_ops: int, max_ops: int) -> tuple[str, list, dict]:
    name = rng.choice(_NAMES)
    pronoun = _PRONOUNS[name]
    item = rng.choice(_ITEMS)
    value = rng.randint(5, 60)
    start = value
    ops: list[tuple[str, int]] = []
    for _ in range(rng.randint(min_ops, max_ops)):
        choices = ["+", "-"]
        if value * 2 <= MAX_VALUE:
            choices.append("*")
        divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value // d >= 2]
        if divisors:
            choices.append("/")
        op = rng.choice(choices)
        if op == "+":
            b = rng.randint(2, min(60, MAX_VALUE - value))
        elif op == "-":
            if value < 4:
                op, b = "+", rng.randint(2, 30)
            else:
                b = rng.randint(1, value - 1)
        elif op == "*":
            b = rng.choice([k for k in (2, 3, 4, 5) if value * k <= MAX_VALUE])
        else:
            b = rng.choice(divisors)
        ops.append((op, b))
        value = apply(op, value, b)
    clauses = [question_clause(op, b, pronoun, item) for op, b in ops]
    question = (
        f"{name} has {start} {item}. "
        + " ".join(clauses)
        + f" How many {item} does {name} have now?"
    )
    steps = [first_step(name, start, item)]
    running = start
    for op, b in ops:
        nxt = apply(op, running, b)
        steps.append(step_text(op, running, b, nxt, item))
        running = nxt
    steps.append(final_step(running))
    meta = {"name": name, "item": item, "start": start, "ops": [list(o) for o in ops]}
    return question, steps, meta


@lru_cache(maxsize=16)
def generate(
    split: str, seed: int, min_ops: int, max_ops: int, count: int | None = None
) -> tuple[Problem, ...]:
    """The first ``count`` problems of a split (all by default); train skips any question
    that test also has."""
    exclude = (
        {p.question for p in generate("test", seed, min_ops, max_ops)}
        if split == "train"
        else set()
    )

    def make(rng: random.Random) -> tuple[str, Callable[[], tuple]]:
        question, steps, meta = _make_problem(rng, min_ops, max_ops)
        return question, lambda: (str(apply_all(meta["start"], meta["ops"])), tuple(steps), meta)

    return draw(
        "arith", SPLIT_SIZES, split, f"{seed}:{split}:{min_ops}:{max_ops}", count, exclude, make
    )


def draw(
    name: str,
    sizes: dict[str, int],
    split: str,
    stream: str,
    count: int | None,
    exclude: set[str],
    make: Callable[[random.Random], tuple[str, Callable[[], tuple]]],
) -> tuple[Problem, ...]:
    """A procedural split's first ``count`` problems (all by default), drawn from one random
    stream (``name:stream``) in turn, so a shorter list is the start of a longer one: ``make``
    draws a question and how to finish it (gold answer, steps, metadata; it may draw more); a
    question seen before or in ``exclude`` is drawn again."""
    rng = random.Random(f"{name}:{stream}")
    problems: list[Problem] = []
    seen: set[str] = set()
    while len(problems) < min(count or sizes[split], sizes[split]):
        question, finish = make(rng)
        if question in seen or question in exclude:
            continue
        seen.add(question)
        answer, steps, meta = finish()
        problems.append(
            Problem(f"{name}-{split}-{len(problems):05d}", question, answer, steps, meta)
        )
    return tuple(problems)


def apply_all(start: int, ops: list) -> int:
    value = start
    for op, b in ops:
        value = apply(op, value, b)
    return value


class ArithTask:
    """Multi-step arithmetic word problems with exact gold answers and gold steps. A procedural
    task of the same shape (the bundled `code` task) sets the class attributes below."""

    name, splits, max_ops_limit, template = "arith", SPLIT_SIZES, 12, PROMPT
    generate = staticmethod(generate)

    def __init__(
        self,
        split: str = "test",
        seed: int = 0,
        min_ops: int = 2,
        max_ops: int = 5,
        grader: str = "numeric",
    ):
        if split not in self.splits:
            raise PrmhError(f"{self.name} has splits {', '.join(self.splits)}, not {split!r}.")
        if not 1 <= min_ops <= max_ops <= self.max_ops_limit:
            raise PrmhError(
                f"{self.name} needs 1 <= min_ops <= max_ops <= {self.max_ops_limit} (got "
                f"min_ops={min_ops}, max_ops={max_ops})."
            )
        self.split, self.seed, self.min_ops, self.max_ops = split, seed, min_ops, max_ops
        self.grader = grader

    def problems(self, limit: int | None = None) -> list[Problem]:
        return list(self.generate(self.split, self.seed, self.min_ops, self.max_ops, limit))

    def prompt(self, problem: Problem) -> str:
        return self.template.replace("{question}", problem.question)

    def extract_answer(self, text: str) -> str | None:
        answer = the_answer_is(text)
        return last_number(answer) if answer is not None else None


@hookimpl
def prmh_register_task(register):
    register(
        "arith",
        ArithTask,
        description="Bundled multi-step arithmetic word problems with exact gold steps",
        version="1",
    )
