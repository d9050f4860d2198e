"""The `sim` generator on `code` problems: fenced Python solutions with planted mistakes.

Each line of a solution is drawn from its options: the gold line, and for an operation line its
wrong variants (``prmh.plugins.code_world.variants``). As on `arith`, a *slip* (probability
``slip_rate`` per line, shared among the variants) scatters wrong programs and a *trap* (one
line per problem, a misreading taken with probability ``trap_rate * difficulty``) makes many
samples agree on one wrong program.

Tokens are words and punctuation marks with the white space before them. Where the options of a
line part ways, the next token is drawn from their summed probabilities, and that token's
log-probability is that probability (elsewhere the generator is confident), so the
confidence-based splitter and TVD see exactly where a mistake can happen; ``top_logprobs``
reports the alternatives there. A prefix may end anywhere in a line (TVD appends one token at
a time): the options consistent with it go on. ``pause_below`` ends a sample right after its
first token whose probability is below it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable

from prmh import Problem, SampleRequest
from prmh.plugins.code_world import final_variants, solution_lines, variants

_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")
CONFIDENT = 0.97


def line_options(
    problem: Problem, slip_rate: float, trap_rate: float
) -> list[list[tuple[str, float]]]:
    """Every line's options (text, probability), the gold line first."""
    meta = problem.metadata
    kind, ops, final = meta["kind"], meta["ops"], meta["final"]
    puzzle = random.Random(f"sim-code-problem:{problem.question}")
    trap, difficulty = puzzle.randrange(len(ops)), puzzle.random()
    gold = solution_lines(kind, ops, final)
    options: list[list[tuple[str, float]]] = []
    for i, text in enumerate(gold):
        op = i - 2
        if 0 <= op < len(ops):
            wrong = [f"    {v}" for v in variants(kind, ops[op])]
            misread = trap_rate * difficulty if op == trap else 0.0
        elif i == len(gold) - 2:
            wrong, misread = [f"    {v}" for v in final_variants(kind, final)], 0.0
        else:
            wrong, misread = [], 0.0
        slip = slip_rate / len(wrong) if wrong else 0.0
        probs = [misread + slip] + [slip] * (len(wrong) - 1) if wrong else []
        merged: dict[str, float] = {text: 1.0 - sum(probs)}
        for w, p in zip(wrong, probs, strict=True):
            merged[w] = merged.get(w, 0.0) + p
        options.append([(t, p) for t, p in merged.items() if p > 0])
    return options


class _Line:
    """A line being written: the options still consistent with what has been written."""

    def __init__(self, options: list[tuple[str, float]], lead: str, partial: str):
        self.alive: list[tuple[list[str], float]] = []
        for text, p in options:
            pieces = _PIECE.findall(lead + text)
            at = _aligned(pieces, partial)  # a partial line has no lead
            if at is not None:
                self.alive.append((pieces[at:], p))

    def next_token(
        self, choose: Callable[[list[tuple[str, float]]], int], rng: random.Random
    ) -> tuple[str, float, list[tuple[str, float]]] | None:
        """(token, log-probability, alternatives) or None at the end of the line."""
        live = [(pieces, p) for pieces, p in self.alive if pieces]
        if not live:
            return None
        groups: dict[str, float] = {}
        for pieces, p in live:
            groups[pieces[0]] = groups.get(pieces[0], 0.0) + p
        total = sum(groups.values())
        ranked = sorted(((t, p / total) for t, p in groups.items()), key=lambda g: -g[1])
        if len(ranked) == 1:
            token, prob = ranked[0][0], CONFIDENT * (0.95 + 0.05 * rng.random())
            ranked = [(token, prob)]
        else:
            token, prob = ranked[choose(ranked)]
        self.alive = [(pieces[1:], p) for pieces, p in live if pieces[0] == token]
        return token, math.log(prob), [(t, math.log(p)) for t, p in ranked]


def _aligned(pieces: list[str], written: str) -> int | None:
    """How many whole pieces ``written`` is, if it is some."""
    if not written:
        return 0
    length = 0
    for j, piece in enumerate(pieces):
        length += len(piece)
        if length == len(written):
            return j + 1 if "".join(pieces[: j + 1]) == written else None
        if length > len(written):
            return None
    return None


def sample_code(
    request: SampleRequest, index: int, slip_rate: float, trap_rate: float, truncate_rate: float
) -> tuple[list[str], list[float], list[list[tuple[str, float]]], bool, str | None]:
    """Tokens, their log-probabilities and alternatives, finished, and the stop string."""
    problem, prefix = request.problem, request.prefix
    rng = random.Random(f"sim-code:{problem.question}:{prefix}:{request.seed}:{index}")
    greedy = request.temperature == 0

    def choose(ranked: list[tuple[str, float]]) -> int:
        if greedy:
            return 0
        r, acc = rng.random(), 0.0
        for j, (_, p) in enumerate(ranked):
            acc += p
            if r < acc:
                return j
        return len(ranked) - 1

    options = line_options(problem, slip_rate, trap_rate)
    first, partial = prefix.count("\n"), prefix.rpartition("\n")[2]
    cut = len(options)
    if not prefix and not greedy and rng.random() < truncate_rate:
        cut = rng.randint(2, len(options) - 1)
    tokens: list[str] = []
    logprobs: list[float] = []
    tops: list[list[tuple[str, float]]] = []
    for i in range(first, cut):
        current = _Line(options[i], "\n" if i > first else "", partial if i == first else "")
        wrote = False  # a line the prefix already ends is not a step of this sample
        while (step := current.next_token(choose, rng)) is not None:
            tokens.append(step[0])
            logprobs.append(step[1])
            tops.append(step[2][: max(1, request.top_logprobs)])
            wrote = True
            if request.pause_below and math.exp(step[1]) < request.pause_below:
                return tokens, logprobs, tops, False, None
        if wrote and i < len(options) - 1 and "\n" in request.stop:
            return tokens, logprobs, tops, False, "\n"
    return tokens, logprobs, tops, cut == len(options), None


def _normal(line: str) -> str:
    return " ".join(line.split())


def sound_code_steps(gold: tuple[str, ...], steps: tuple[str, ...]) -> int:
    """How many leading steps of a code solution are sound: every line they complete is the
    gold line, and a line they leave unfinished starts like it (white space aside). Steps are
    read both as exact pieces of the text (the confidence splitter's) and as lines or blocks
    (joined by line breaks); the reading that keeps more of them sound is the one meant."""
    want = [_normal(g) for g in gold if g.strip()]
    return max(_sound(want, steps, "\n"), _sound(want, steps, ""))


def _sound(want: list[str], steps: tuple[str, ...], glue: str) -> int:
    n = 0
    for k in range(len(steps)):
        lines = [_normal(line) for line in glue.join(steps[: k + 1]).split("\n") if line.strip()]
        if len(lines) > len(want) or lines[:-1] != want[: len(lines) - 1]:
            break
        if lines and not want[len(lines) - 1].startswith(lines[-1]):
            break
        n += 1
    return n
