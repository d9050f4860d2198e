"""UnPRM's choice of which solutions to label (``prmh label --select``): per problem, 2 correct
solutions and 8 minus that many incorrect ones; problems with no correct solution are left out.
As in Jiuzhouh/UnPRM ``generate_train_data.py`` (``generate_train_solution_fixed``), at 31b85ae:

- ``uncertainty`` (``choose_solution_uncertainty_driven``, called with alpha = 1): a solution's
  uncertainty is the mean absolute change of its step uncertainty from one step to the next
  (``--uncertainty``: entropy or log-sum), min-max normalised over the pool (all equal: 0.5);
  the most uncertain first, then greedily the best alpha * u + (1 - alpha) * (1 - mean cosine
  similarity to those chosen), ties to the earlier solution. A one-step solution has no change:
  0 here (the release's mean of nothing is NaN).
- ``diversity`` (``chose_solution``): a random first solution (seeded by the run's seed and the
  problem), then greedily the one least similar on average to those chosen. prmh's similarity
  is the cosine of the solutions' token-count vectors; the release takes the cosine of the raw
  token-id sequences cut to equal length (ids as magnitudes) and reads the pair (a, b - 1) for
  (a, b), an off-by-one in its lookup table.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from prmh.errors import PrmhError

HOW = ("all", "uncertainty", "diversity")
CORRECT, TOTAL = 2, 8


def cosine(a: Counter, b: Counter) -> float:
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def tokens_of(generation: Any) -> Counter:
    """The solution's tokens as the generator wrote them (its words when it gave none)."""
    return Counter(generation.tokens or generation.text.split())


def solution_uncertainty(step_uncertainties: Sequence[float]) -> float:
    changes = [abs(b - a) for a, b in itertools.pairwise(step_uncertainties)]
    return sum(changes) / len(changes) if changes else 0.0


def normalised(values: Sequence[float]) -> list[float]:
    low, high = min(values), max(values)
    if high == low:
        return [0.5] * len(values)
    return [(v - low) / (high - low) for v in values]


def greedy(
    bags: Sequence[Counter], k: int, first: int, merit: Sequence[float], alpha: float
) -> list[int]:
    """Start from ``first``; add the best alpha * merit + (1 - alpha) * (1 - mean similarity),
    ties to the earlier index, until ``k`` are chosen."""
    chosen = [first]
    while len(chosen) < min(k, len(bags)):
        best, best_value = None, -math.inf
        for i, bag in enumerate(bags):
            if i in chosen:
                continue
            similarity = sum(cosine(bag, bags[c]) for c in chosen) / len(chosen)
            value = alpha * merit[i] + (1 - alpha) * (1 - similarity)
            if value > best_value:
                best, best_value = i, value
        chosen.append(best)
    return chosen


def pick(items: Sequence[Any], k: int, how: str, rng: random.Random, measure: str) -> list[Any]:
    """``k`` of ``items`` (graded solutions), by uncertainty or by diversity."""
    if len(items) <= k:
        return list(items)
    bags = [tokens_of(x.generation) for x in items]
    if how == "diversity":
        nothing = [0.0] * len(items)
        return [items[i] for i in greedy(bags, k, rng.randrange(len(items)), nothing, 0.0)]
    from prmh.plugins.uncertainty import step_uncertainty

    merit = normalised(
        [
            solution_uncertainty(step_uncertainty(x.generation, x.solution.steps, measure))
            for x in items
        ]
    )
    return [items[i] for i in greedy(bags, k, merit.index(max(merit)), merit, 1.0)]


def select_solutions(
    graded: Sequence[Any], how: str, seed: int = 0, measure: str = "entropy"
) -> list[Any]:
    """Per problem (in order): ``CORRECT`` correct and ``TOTAL`` minus that many incorrect
    solutions; a problem without a correct solution is left out."""
    if how not in HOW:
        raise PrmhError(f"unknown selection {how!r}; choose from {', '.join(HOW)}.")
    if how == "all":
        return list(graded)
    by_problem: dict[str, list[Any]] = {}
    for x in graded:
        by_problem.setdefault(x.problem.id, []).append(x)
    out = []
    for problem_id, items in by_problem.items():
        right = [x for x in items if x.correct]
        if not right:
            continue
        rng = random.Random(f"{seed}:{problem_id}")
        chosen = pick(right, CORRECT, how, rng, measure)
        wrong = [x for x in items if not x.correct]
        out += chosen + pick(wrong, TOTAL - len(chosen), how, rng, measure)
    return out
