"""The `sim` generator: step-by-step solutions to `arith` problems with planted mistakes (and
to `code` problems: ``prmh.plugins.sim_code``).

Two kinds of mistake make search and selection matter:

- a *slip* (probability ``slip_rate`` per step): an arithmetic error of 1 to 9, carried
  forward, so wrong answers scatter;
- a *trap*: each problem has one misconception (an operation read wrongly at one step) that a
  sample falls into with probability ``trap_rate * difficulty``, difficulty being uniform in
  [0, 1] per problem. Trapped samples agree on one wrong answer, so majority voting fails on
  hard problems while a good PRM still finds the right sample.

Each generation carries its tokens (words and punctuation marks, with the white space before
them) and a log-probability per token, as a real sampler would: confident in general, less so
at the first token of each step, and least at the token where a mistake was made. This lets
confidence-based step splitting and uncertainty measures run on the bundled world.

Sample ``i`` of a problem depends only on (question, prefix, seed, i) and the options. Given a
prefix (steps already written, as beam search asks), sim writes the next step and, when the
request stops at ``"\n\n"``, stops there. At temperature 0 (greedy) an event happens exactly
when its probability is above one half.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable

from prmh import Generation, Problem, SampleRequest, hookimpl
from prmh.errors import PrmhError
from prmh.plugins.arith import apply, final_step, first_step, step_text
from prmh.plugins.sim_code import sample_code

_MISREAD = {"+": "-", "-": "+", "*": "+", "/": "-"}
_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")
CONFIDENT, STEP_START, MISTAKE = 0.97, 0.7, 0.2


def count_tokens(text: str) -> int:
    """Words and punctuation marks: the sim world's notion of a token."""
    return len(_TOKEN.findall(text))


def _step_tokens(
    step: str, lead: str, mistake: int | None, rng: random.Random
) -> tuple[list[str], list[float]]:
    """Tokens of one step (``lead`` is the separator before it) and their log-probabilities;
    ``mistake`` is the character offset in ``step`` where a mistake sits."""
    pieces = _PIECE.findall(lead + step)
    probs, at = [], -len(lead)
    for k, piece in enumerate(pieces):
        end = at + len(piece)
        if mistake is not None and at <= mistake < end:
            p = MISTAKE
        elif k == 0:
            p = STEP_START
        else:
            p = CONFIDENT
        probs.append(math.log(p * (0.95 + 0.05 * rng.random())))
        at = end
    return pieces, probs


def success_probability(
    problem: Problem, slip_rate: float = 0.06, trap_rate: float = 0.8, truncate_rate: float = 0.02
) -> float:
    """How likely a sample of ``problem`` is right: it falls into no trap, slips at no step
    and is not cut short (a slip that a later one undoes is ignored)."""
    ops = problem.metadata.get("ops") or []
    if problem.metadata.get("language") == "python":  # a line per operation, and the return
        puzzle = random.Random(f"sim-code-problem:{problem.question}")
        puzzle.randrange(len(ops))
        trapped = trap_rate * puzzle.random()
        return (1 - trapped) * (1 - slip_rate) ** (len(ops) + 1) * (1 - truncate_rate)
    difficulty = _puzzle_difficulty(problem)
    return (1 - trap_rate * difficulty) * (1 - slip_rate) ** len(ops) * (1 - truncate_rate)


def _puzzle_difficulty(problem: Problem) -> float:
    puzzle = random.Random(f"sim-problem:{problem.question}")
    puzzle.randrange(len(problem.metadata["ops"]))  # the trap's step, drawn first
    return puzzle.random()


class SimGenerator:
    """Writes arith solutions with configurable slip and trap rates."""

    def __init__(
        self,
        slip_rate: float = 0.06,
        trap_rate: float = 0.8,
        truncate_rate: float = 0.02,
        delay: float = 0.0,
    ):
        for name, value in (
            ("slip_rate", slip_rate),
            ("trap_rate", trap_rate),
            ("truncate_rate", truncate_rate),
        ):
            if not 0.0 <= value <= 1.0:
                raise PrmhError(f"sim option {name} must be in [0, 1], got {value}.")
        if delay < 0:
            raise PrmhError(f"sim option delay must be >= 0 seconds, got {delay}.")
        self.slip_rate, self.trap_rate, self.truncate_rate = slip_rate, trap_rate, truncate_rate
        self.delay = delay

    def sample(self, requests: list[SampleRequest]) -> list[list[Generation]]:
        return [[self._one(r, r.first_index + i) for i in range(r.n)] for r in requests]

    def _one(self, request: SampleRequest, index: int) -> Generation:
        started = time.perf_counter()
        problem, prefix = request.problem, request.prefix
        if problem.metadata.get("language") == "python" and "kind" in problem.metadata:
            return self._code(request, index, started)
        if "ops" not in problem.metadata or "language" in problem.metadata:
            raise PrmhError(
                "the sim generator writes solutions to the bundled arith and code problems "
                f"only; problem {problem.id!r} is not one. Use another generator (see `prmh "
                "list generator`)."
            )
        rng = random.Random(
            f"sim:{problem.question}:{request.seed}:{index}"
            if not prefix
            else f"sim:{problem.question}:{prefix}:{request.seed}:{index}"
        )
        greedy = request.temperature == 0

        def happens(p: float) -> bool:  # greedy decoding takes the likelier outcome
            return p > 0.5 if greedy else rng.random() < p

        steps, mistakes, stop = self._steps(request, rng, happens)
        finished = stop is None
        if not prefix and stop is None and not greedy and rng.random() < self.truncate_rate:
            keep = rng.randint(1, len(steps) - 1)
            steps, mistakes = steps[:keep], mistakes[:keep]
            finished = False
        tokens: list[str] = []
        logprobs: list[float] = []
        lead = "\n\n" if prefix and not prefix.endswith("\n\n") else ""
        for k, (step, mistake) in enumerate(zip(steps, mistakes, strict=True)):
            pieces, lps = _step_tokens(step, "\n\n" if k else lead, mistake, rng)
            tokens += pieces
            logprobs += lps
        return self._generation(tokens, logprobs, finished, stop, started)

    def _code(self, request: SampleRequest, index: int, started: float) -> Generation:
        tokens, logprobs, tops, finished, stop = sample_code(
            request, index, self.slip_rate, self.trap_rate, self.truncate_rate
        )
        tops_kept = tuple(map(tuple, tops)) if request.top_logprobs else None
        return self._generation(tokens, logprobs, finished, stop, started, tops_kept)

    def _generation(
        self,
        tokens: list[str],
        logprobs: list[float],
        finished: bool,
        stop: str | None,
        started: float,
        tops: tuple | None = None,
    ) -> Generation:
        if self.delay:
            time.sleep(self.delay)
        return Generation(
            text="".join(tokens),
            finished=finished,
            num_tokens=len(tokens),
            token_logprobs=tuple(logprobs),
            tokens=tuple(tokens),
            stop=stop,
            seconds=time.perf_counter() - started,
            top_logprobs=tops,
        )

    def _steps(
        self, request: SampleRequest, rng: random.Random, happens: Callable[[float], bool]
    ) -> tuple[list[str], list[int | None], str | None]:
        """The steps after the request's prefix, where each mistake starts (None: no mistake)
        and the stop string that ended them (None: the solution ended)."""
        problem, meta = request.problem, request.problem.metadata
        ops = [(op, b) for op, b in meta["ops"]]
        puzzle = random.Random(f"sim-problem:{problem.question}")
        trap_step = puzzle.randrange(len(ops))
        difficulty = puzzle.random()  # as _puzzle_difficulty draws it
        done = [step for step in request.prefix.split("\n\n") if step.strip()]
        trapped = happens(self.trap_rate * difficulty) if not done else None
        value = meta["start"]
        if len(done) > 1:
            numbers = re.findall(r"-?\d+", done[-1])
            value = int(numbers[-1]) if numbers else value
        steps: list[str] = []
        mistakes: list[int | None] = []
        for k in range(len(done), len(ops) + 2):
            mistake = None
            if k == 0:
                step = first_step(meta["name"], meta["start"], meta["item"])
            elif k <= len(ops):
                op, b = ops[k - 1]
                if k - 1 == trap_step:
                    if trapped is None:
                        trapped = happens(self.trap_rate * difficulty)
                    if trapped:
                        op = _MISREAD[op]
                result = apply(op, value, b)
                if happens(self.slip_rate):
                    result += rng.choice([-1, 1]) * rng.randint(1, 9)
                step = step_text(op, value, b, result, meta["item"])
                if op != ops[k - 1][0]:
                    mistake = step.index(f" {op} ") + 1
                elif result != apply(op, value, b):
                    mistake = step.rindex(f"= {result}") + 2
                value = result
            else:
                step = final_step(value)
            steps.append(step)
            mistakes.append(mistake)
            if k <= len(ops) and "\n\n" in request.stop:
                return steps, mistakes, "\n\n"  # the end of this step
        return steps, mistakes, None


@hookimpl
def prmh_register_generator(register):
    register(
        "sim",
        SimGenerator,
        description="Simulated arith solutions with planted slips and per-problem traps",
        version="3",
        speed_args=("delay",),
    )
