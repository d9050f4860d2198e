"""Aggregators: a solution's step scores to one number. No steps scores the lowest, 0."""

from __future__ import annotations

import math

from prmh import StepScores, hookimpl


def mean(scores: StepScores) -> float:
    return sum(scores.probs) / len(scores.probs) if scores.probs else 0.0


def minimum(scores: StepScores) -> float:
    return min(scores.probs, default=0.0)


def maximum(scores: StepScores) -> float:
    return max(scores.probs, default=0.0)


def last(scores: StepScores) -> float:
    return scores.probs[-1] if scores.probs else 0.0


def product(scores: StepScores) -> float:
    return math.prod(scores.probs) if scores.probs else 0.0


@hookimpl
def prmh_register_aggregator(register):
    register("mean", lambda: mean, description="Mean of the step scores")
    register("min", lambda: minimum, description="Lowest step score (the weakest step)")
    register("max", lambda: maximum, description="Highest step score")
    register("last", lambda: last, description="Score of the last step")
    register("prod", lambda: product, description="Product of the step scores")
