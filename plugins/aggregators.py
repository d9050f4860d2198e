"""Aggregators: a solution's step scores to one number. No steps scores the lowest, 0.

``whole`` is different: the PRM scores the whole solution as one step (a PRM call of its own,
made by the search context), instead of combining the step scores.
"""

from __future__ import annotations

import math

from prmh import StepScores, hookimpl


def mean(scores: StepScores) -> float:
    return sum(scores.probs) / len(scores.probs) if scores.probs else 0.0


def _has_nan(probs: tuple[float, ...]) -> bool:
    """Whether a score is nan; a sum that is not nan (summed in C) rules that out at once."""
    return math.isnan(sum(probs)) and any(math.isnan(p) for p in probs)


def minimum(scores: StepScores) -> float:
    if _has_nan(scores.probs):  # min() would depend on where the nan is
        return math.nan
    return min(scores.probs, default=0.0)


def maximum(scores: StepScores) -> float:
    if _has_nan(scores.probs):
        return math.nan
    return max(scores.probs, default=0.0)


def last(scores: StepScores) -> float:
    return scores.probs[-1] if scores.probs else 0.0


def product(scores: StepScores) -> float:
    return math.prod(scores.probs) if scores.probs else 0.0


class WholeSolution:
    """Marks that the solution's text is scored as a single step; see ``SearchContext.rank``."""

    whole = True

    def __call__(self, scores: StepScores) -> float:
        return scores.probs[0] if len(scores.probs) == 1 else last(scores)


@hookimpl
def prmh_register_aggregator(register):
    register("mean", lambda: mean, description="Mean of the step scores")
    register("min", lambda: minimum, description="Lowest step score (the weakest step)")
    register("max", lambda: maximum, description="Highest step score")
    register("last", lambda: last, description="Score of the last step")
    register("prod", lambda: product, description="Product of the step scores")
    register("whole", WholeSolution, description="The PRM scores the whole solution as one step")
