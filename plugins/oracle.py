"""The `oracle` PRM: checks each step of an `arith` solution exactly against the gold steps
(and each line of a `code` solution: ``prmh.plugins.sim_code.sound_code_steps``).

Step k is good when it and every step before it state the gold running value and their
arithmetic holds. The exact verdict becomes a probability through a logit of
``±logit(confidence)``, plus ``bias`` (miscalibration: > 0 over-confident), Gaussian ``noise``
(standard deviation in logit units) and a ``temperature`` (> 1 flattens). The noise of step k
is a pure function of (seed, question, steps 1..k), so a prefix scored alone gets the same
scores, as for a real causal PRM.

With ``quantiles=true`` it also reports 10%, 50% and 90% quantiles, the step's logit moved by
``spread`` standard normal quantiles, as a calibrated quantile PRM does. The empty solution
(one empty step: "how likely is this question to be solved?") scores ``prior``, or with
``sim_prior=true`` the chance that a `sim` sample (default options) of that problem is right,
as a PRM calibrated on that solver's rollouts would learn it (its best case).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time

from prmh import Problem, ScoreRequest, StepScores, hookimpl
from prmh.errors import PrmhError
from prmh.plugins.sim import count_tokens, success_probability
from prmh.plugins.sim_code import sound_code_steps

QUANTILE_LEVELS = (0.1, 0.5, 0.9)
NORMAL_QUANTILES = {0.1: -1.2815515655446004, 0.5: 0.0, 0.9: 1.2815515655446004}
_EQUATION = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)")
_NUMBER = re.compile(r"-?\d+")


def _numbers(step: str) -> list[int]:
    return [int(n) for n in _NUMBER.findall(step)]


def step_is_sound(step: str, gold: str) -> bool:
    """The step states the gold running value, and its equation (if any) is right."""
    ours, theirs = _numbers(step), _numbers(gold)
    if not ours or not theirs or ours[-1] != theirs[-1]:
        return False
    equation = _EQUATION.search(step)
    if equation is None:
        return _EQUATION.search(gold) is None
    a, op, b, c = equation.groups()
    a, b, c = int(a), int(b), int(c)
    expected = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else None}[op]
    return c == expected and [a, b] == theirs[-3:-1]


def correct_prefix_length(problem: Problem, steps: tuple[str, ...]) -> int:
    """How many leading steps are sound."""
    gold = problem.steps or ()
    if problem.metadata.get("language") == "python":
        return sound_code_steps(gold, steps)
    n = 0
    for step, gold_step in zip(steps, gold, strict=False):
        if not step_is_sound(step, gold_step):
            break
        n += 1
    return n


class OraclePRM:
    """Exact step checks for arith, with optional noise and miscalibration."""

    def __init__(
        self,
        confidence: float = 0.95,
        noise: float = 0.0,
        bias: float = 0.0,
        temperature: float = 1.0,
        seed: int = 0,
        quantiles: bool = False,
        spread: float = 1.0,
        prior: float = 0.5,
        sim_prior: bool = False,
    ):
        if not 0.5 < confidence < 1.0:
            raise PrmhError(f"oracle option confidence must be in (0.5, 1), got {confidence}.")
        if noise < 0 or temperature <= 0 or spread < 0:
            raise PrmhError("oracle options need noise >= 0, spread >= 0 and temperature > 0.")
        if not 0.0 < prior < 1.0:
            raise PrmhError(f"oracle option prior must be in (0, 1), got {prior}.")
        self.levels = QUANTILE_LEVELS if quantiles else None
        self.spread, self.prior, self.sim_prior = spread, prior, sim_prior
        self.margin = math.log(confidence / (1 - confidence))
        self.noise, self.bias, self.temperature, self.seed = noise, bias, temperature, seed

    def score(self, requests: list[ScoreRequest]) -> list[StepScores]:
        out = []
        for request in requests:
            started = time.perf_counter()
            if request.problem.steps is None:
                raise PrmhError(
                    f"the oracle PRM needs gold steps; problem {request.problem.id!r} has none. "
                    "Use it with the arith or code task."
                )
            good = correct_prefix_length(request.problem, request.steps)
            logits = [
                self._logit(request.problem.question, request.steps[: k + 1], k < good)
                for k in range(len(request.steps))
            ]
            if request.steps == ("",):  # the empty solution: the question's prior
                prior = self.prior
                if self.sim_prior:  # as calibrated on the sim solver's own success rate
                    prior = min(0.99, max(0.01, success_probability(request.problem)))
                logits = [math.log(prior / (1 - prior))]
            tokens = count_tokens(request.problem.question) + sum(
                count_tokens(s) for s in request.steps
            )
            quantiles = None
            if self.levels:
                quantiles = tuple(
                    tuple(_sigmoid(z + self.spread * NORMAL_QUANTILES[q]) for q in self.levels)
                    for z in logits
                )
            out.append(
                StepScores(
                    tuple(_sigmoid(z) for z in logits),
                    quantiles=quantiles,
                    quantile_levels=self.levels,
                    num_tokens=tokens,
                    seconds=time.perf_counter() - started,
                )
            )
        return out

    def _logit(self, question: str, prefix: tuple[str, ...], good: bool) -> float:
        logit = self.margin if good else -self.margin
        if self.noise:
            digest = hashlib.sha256(repr((self.seed, question, prefix)).encode()).digest()
            logit += self.noise * random.Random(digest).gauss(0.0, 1.0)
        return logit / self.temperature + self.bias


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@hookimpl
def prmh_register_prm(register):
    register(
        "oracle",
        OraclePRM,
        description="Exact step checker for arith and code, with optional noise and miscalibration",
        version="2",
    )
