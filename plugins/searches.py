"""Search strategies that score a pool of full solutions (best-of-N)."""

from __future__ import annotations

from prmh import Candidate, Compute, Problem, SearchResult, hookimpl


class BestOfN:
    """Score the first ``budget`` samples of the pool; every budget reads the same pool."""

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        pools = ctx.pool(problems, budget, seed)
        scored = ctx.score(problems, pools)
        results = []
        for problem, solutions, scores in zip(problems, pools, scored, strict=True):
            compute = Compute(
                generated_tokens=sum(s.num_tokens for s in solutions),
                prm_tokens=sum(s.num_tokens for s in scores),
                prm_calls=len(solutions),
                wall_seconds=sum(s.generation.seconds for s in solutions)
                + sum(s.seconds for s in scores),
            )
            candidates = tuple(
                Candidate(sol, sc, ctx.aggregate(sc))
                for sol, sc in zip(solutions, scores, strict=True)
                if sol.finished
            )
            results.append(SearchResult(problem.id, candidates, compute))
        return results


@hookimpl
def prmh_register_search(register):
    register("best-of-n", BestOfN, description="Score N full solutions from one shared pool")
