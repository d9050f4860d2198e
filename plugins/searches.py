"""Search strategies over full solutions (best-of-N, greedy, BoN-IAS), and the registration of
the step-level ones (``prmh.plugins.step_search``).

Budget N: the number of full samples for best-of-N and BoN-IAS (its cap); the beams per round
for step-level searches. Greedy ignores it: one sample at temperature 0, the baseline row.
"""

from __future__ import annotations

import random
from itertools import compress
from operator import is_

from prmh import Candidate, Compute, Problem, SearchResult, hookimpl
from prmh.errors import PrmhError
from prmh.plugins.ias import n_ias
from prmh.plugins.step_search import level


def _finished(problem: Problem, cands: list[Candidate], spent: Compute) -> SearchResult:
    return SearchResult(problem.id, tuple(c for c in cands if c.solution.finished), spent)


def prefix_totals(costs: list[Compute], sizes: set[int]) -> dict[int, Compute]:
    """``Compute.total(costs[:n])`` for every n in ``sizes`` (the same sums), in one pass."""
    totals = dict.fromkeys(sizes & {0}, Compute())
    tokens = prm_tokens = calls = 0
    seconds = 0.0
    for n, c in enumerate(costs, 1):
        tokens, prm_tokens = tokens + c.generated_tokens, prm_tokens + c.prm_tokens
        calls, seconds = calls + c.prm_calls, seconds + c.wall_seconds
        if n in sizes:
            totals[n] = Compute(tokens, prm_tokens, calls, seconds)
    whole = Compute(tokens, prm_tokens, calls, seconds)
    return {n: totals.get(n, whole) for n in sizes}


class BestOfN:
    """Score the first N samples of the pool (every budget reads the same pool). With
    ``subsets`` > 0 and a pool larger than N, draw that many random N-subsets of the pool per
    problem instead; accuracy is then the mean over subsets, and the interval covers which
    samples were drawn."""

    def __init__(self, subsets: int = 0):
        if subsets < 0:
            raise PrmhError(f"subsets must be >= 0, got {subsets}.")
        self.subsets = subsets
        self._totals: tuple = ((), set(), [])  # the last cost lists, sizes and their totals

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        return self.run_budgets(ctx, problems, [budget], seed)[0]

    def run_budgets(
        self, ctx, problems: list[Problem], budgets: list[int], seed: int
    ) -> list[list[SearchResult]]:
        """The largest pool any budget reads is ranked once; each budget reads its prefix."""
        sizes = [self._pool_size(ctx, b) for b in budgets]
        scored = ctx.rank_pools(problems, ctx.pool(problems, max(sizes), seed))
        finished = [[c.solution.finished for c in cands] for cands, _ in scored]
        prefixes = {n for b, n in zip(budgets, sizes, strict=True) if n == b}
        totals = self._prefix_totals([costs for _, costs in scored], prefixes)
        return [
            [
                SearchResult(p.id, tuple(compress(cands[:n], done)), total[n])
                if n == budget
                else self._subsets(p, cands[:n], costs[:n], budget, seed)
                for p, (cands, costs), done, total in zip(
                    problems, scored, finished, totals, strict=True
                )
            ]
            for budget, n in zip(budgets, sizes, strict=True)
        ]

    def _prefix_totals(self, costs: list[list[Compute]], sizes: set[int]) -> list[dict]:
        """Each problem's ``prefix_totals``; the cells that rank one pool (one per aggregator)
        get the same cost lists from ``rank_pools``, which are added up once."""
        last, last_sizes, totals = self._totals
        if last_sizes != sizes or len(last) != len(costs) or not all(map(is_, last, costs)):
            totals = [prefix_totals(c, sizes) for c in costs]
            self._totals = (costs, sizes, totals)
        return totals

    def _pool_size(self, ctx, budget: int) -> int:
        """The samples a budget reads: the whole pool when it draws subsets of it."""
        return ctx.pool_size if self.subsets > 0 and ctx.pool_size > budget else budget

    def _subsets(self, problem, cands, costs, budget: int, seed: int) -> SearchResult:
        n = len(cands)
        rng = random.Random(f"subsets:{seed}:{problem.id}:{budget}")
        draws = [sorted(rng.sample(range(n), budget)) for _ in range(self.subsets)]
        finished = [i for i, c in enumerate(cands) if c.solution.finished]
        where = {i: k for k, i in enumerate(finished)}
        subsets = tuple(tuple(where[i] for i in d if i in where) for d in draws)
        mean = Compute.total(Compute.total(costs[i] for i in d) for d in draws)
        k = len(draws)
        spent = Compute(
            mean.generated_tokens // k, mean.prm_tokens // k, mean.prm_calls // k,
            mean.wall_seconds / k,
        )  # fmt: skip
        return SearchResult(problem.id, tuple(cands[i] for i in finished), spent, subsets=subsets)


class Greedy:
    """One sample at temperature 0, whatever the budget: the baseline."""

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        pools = ctx.pool(problems, 1, seed, temperature=0.0)
        return [
            _finished(p, cands, Compute.total(costs))
            for p, (cands, costs) in zip(problems, ctx.rank_pools(problems, pools), strict=True)
        ]

    def run_budgets(
        self, ctx, problems: list[Problem], budgets: list[int], seed: int
    ) -> list[list[SearchResult]]:
        results = self.run(ctx, problems, budgets[0], seed)
        return [results for _ in budgets]


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
        return self.run_budgets(ctx, problems, [budget], seed)[0]

    def run_budgets(
        self, ctx, problems: list[Problem], budgets: list[int], seed: int
    ) -> list[list[SearchResult]]:
        """The largest budget's pool is ranked once; each problem's IAS budget N_i under each
        cap reads its prefix."""
        caps, questions = self.budgets(ctx, problems, max(budgets))
        most = max(caps)
        pools = [pool[:k] for pool, k in zip(ctx.pool(problems, most, seed), caps, strict=True)]
        scored = ctx.rank_pools(problems, pools)
        out = []
        for budget in budgets:
            results = []
            for p, q, (cands, costs), cap in zip(problems, questions, scored, caps, strict=True):
                k = min(cap, budget)
                asked = Compute(prm_tokens=q.num_tokens, prm_calls=1)
                results.append(_finished(p, cands[:k], Compute.total(costs[:k]) + asked))
            out.append(results)
        return out


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
    register(
        "tvd",
        "prmh.plugins.tvd:TVD",
        description="AdaptiveStep's token-level value-guided decoding: the PRM picks among "
        "the top-k tokens where greedy decoding is unsure",
    )
    back = "prmh.plugins.backtrack"
    register(
        "backtrack",
        f"{back}:CollectiveBacktrack",
        description="tt_scale's collective backtracking: retry a step whose children score low",
    )
    register(
        "backtrack-independent",
        f"{back}:IndependentBacktrack",
        description="tt_scale's independent backtracking: each branch retries its own step",
    )
