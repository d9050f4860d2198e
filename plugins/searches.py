"""Search strategies over full solutions (best-of-N, greedy, BoN-IAS), and the registration of
the step-level ones (``prmh.plugins.step_search``).

Budget N: the number of full samples for best-of-N and BoN-IAS (its cap); the beams per round
for step-level searches. Greedy ignores it: one sample at temperature 0, the baseline row.
"""

from __future__ import annotations

import random

from prmh import Candidate, Compute, Problem, SearchResult, hookimpl
from prmh.errors import PrmhError
from prmh.plugins.ias import n_ias
from prmh.plugins.step_search import level


def _scored(ctx, problems: list[Problem], pools) -> list[tuple[list[Candidate], list[Compute]]]:
    """Rank every solution of every pool in one batched call; per problem: (candidates, cost)."""
    ranked, costs = ctx.rank(
        [(p, s) for p, pool in zip(problems, pools, strict=True) for s in pool]
    )
    out, at = [], 0
    for pool in pools:
        cands, spent = ranked[at : at + len(pool)], costs[at : at + len(pool)]
        out.append(
            (
                cands,
                [
                    c + Compute(s.num_tokens, 0, 0, s.generation.seconds)
                    for c, s in zip(spent, pool, strict=True)
                ],
            )
        )
        at += len(pool)
    return out


class BestOfN:
    """Score the first N samples of the pool (every budget reads the same pool). With
    ``subsets`` > 0 and a pool larger than N, draw that many random N-subsets of the pool per
    problem instead; accuracy is then the mean over subsets, and the interval covers which
    samples were drawn."""

    def __init__(self, subsets: int = 0):
        if subsets < 0:
            raise PrmhError(f"subsets must be >= 0, got {subsets}.")
        self.subsets = subsets

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        resample = self.subsets > 0 and ctx.pool_size > budget
        n = ctx.pool_size if resample else budget
        pools = ctx.pool(problems, n, seed)
        results = []
        for problem, (cands, costs) in zip(problems, _scored(ctx, problems, pools), strict=True):
            finished = [i for i, c in enumerate(cands) if c.solution.finished]
            if not resample:
                results.append(
                    SearchResult(
                        problem.id, tuple(cands[i] for i in finished), sum(costs, Compute())
                    )
                )
                continue
            rng = random.Random(f"subsets:{seed}:{problem.id}:{budget}")
            draws = [sorted(rng.sample(range(n), budget)) for _ in range(self.subsets)]
            where = {i: k for k, i in enumerate(finished)}
            subsets = tuple(tuple(where[i] for i in d if i in where) for d in draws)
            mean = sum((sum((costs[i] for i in d), Compute()) for d in draws), Compute())
            k = len(draws)
            results.append(
                SearchResult(
                    problem.id,
                    tuple(cands[i] for i in finished),
                    Compute(
                        mean.generated_tokens // k,
                        mean.prm_tokens // k,
                        mean.prm_calls // k,
                        mean.wall_seconds / k,
                    ),
                    subsets=subsets,
                )
            )
        return results


class Greedy:
    """One sample at temperature 0, whatever the budget: the baseline."""

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        pools = ctx.pool(problems, 1, seed, temperature=0.0)
        return [
            SearchResult(
                p.id, tuple(c for c in cands if c.solution.finished), sum(costs, Compute())
            )
            for p, (cands, costs) in zip(problems, _scored(ctx, problems, pools), strict=True)
        ]


NO_QUANTILES = (
    "the PRM gives no quantiles, so each budget was decided on its uncalibrated probability, "
    "not on a calibrated lower quantile; calibrate the PRM (`prmh calibrate`) or use "
    "--search best-of-n"
)


class BonIAS:
    """Best-of-N with a per-problem budget N_i = min(N_IAS(p), N): p is the PRM's lower quantile
    (``decide_level``) for the empty solution, i.e. how likely the question is to be solved. A
    PRM without quantiles uses its plain probability."""

    def __init__(self, confidence: float = 0.99, decide_level: int = 0):
        if not 0 < confidence < 1:
            raise PrmhError(f"confidence must be in (0, 1), got {confidence}.")
        self.confidence, self.decide_level = confidence, decide_level

    def budgets(self, ctx, problems: list[Problem], budget: int) -> tuple[list[int], list]:
        questions = ctx.question_scores(problems)
        if any(q.quantiles is None for q in questions):
            ctx.warn(NO_QUANTILES)
        p = [level(q, self.decide_level).probs[0] for q in questions]
        return [min(n_ias(x, self.confidence), budget) for x in p], questions

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        sizes, questions = self.budgets(ctx, problems, budget)
        pools = [pool[:k] for pool, k in zip(ctx.pool(problems, budget, seed), sizes, strict=True)]
        results = []
        for p, q, (cands, costs) in zip(
            problems, questions, _scored(ctx, problems, pools), strict=True
        ):
            spent = sum(costs, Compute()) + Compute(prm_tokens=q.num_tokens, prm_calls=1)
            results.append(
                SearchResult(p.id, tuple(c for c in cands if c.solution.finished), spent)
            )
        return results


@hookimpl
def prmh_register_search(register):
    step = "prmh.plugins.step_search"
    register("best-of-n", BestOfN, description="Score N full solutions from one shared pool")
    register("greedy", Greedy, description="One sample at temperature 0 (the baseline)")
    register("bon-ias", BonIAS, description="Best-of-N with a per-problem IAS budget")
    register("beam", f"{step}:BeamSearch", description="Step-level beam search (keep N/M, M each)")
    register("dvts", f"{step}:DVTS", description="Diverse verifier tree search: N/M subtrees")
    register(
        "beam-ias", f"{step}:BeamIAS", description="Beam search with instance-adaptive K and M"
    )
