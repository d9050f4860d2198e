"""Monte Carlo rollouts: continue a solution's step prefixes and measure how often they succeed.

The prefix of the first k steps (k = 0: the question alone) is continued ``n`` times to the
end; each continuation's answer is graded. A prefix's value is its success rate, and UnPRM's
perplexity-weighted rate weighs each continuation by exp(mean token log-probability). Every
continuation and grade goes through the store, so rollouts resume and are never recomputed;
``values`` batches many prefixes into one generator call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from prmh.engine import CacheStats, Workspace, grade_pairs
from prmh.grading import Grader, GraderPool
from prmh.types import Generation, Problem, RolloutValue, SampleRequest


@dataclass(frozen=True)
class Prefix:
    problem: Problem
    steps: tuple[str, ...]
    k: int
    n: int


def continuation_weight(g: Generation) -> float:
    """exp(mean log-probability): 1/perplexity; 1 when the generator gives no log-probs."""
    if not g.token_logprobs:
        return 1.0
    return math.exp(sum(g.token_logprobs) / len(g.token_logprobs))


class Rollouts:
    """Rollout values through a workspace's cached generator and a grading pool."""

    def __init__(
        self,
        workspace: Workspace,
        grader: Grader,
        pool: GraderPool,
        seed: int,
        separator: str = "\n\n",
        timeout: float = 5.0,
    ):
        self.workspace, self.grader, self.pool = workspace, grader, pool
        self.seed, self.separator, self.timeout = seed, separator, timeout
        self.stats: CacheStats = workspace.stats

    def prefix_text(self, steps: Sequence[str], k: int) -> str:
        return self.separator.join(steps[:k]) + self.separator if k else ""

    def values(self, prefixes: Sequence[Prefix]) -> list[RolloutValue]:
        task = self.workspace.task.instance
        requests = [
            SampleRequest(
                p.problem,
                task.prompt(p.problem),
                p.n,
                self.seed,
                prefix=self.prefix_text(p.steps, p.k),
            )
            for p in prefixes
        ]
        continuations = self.workspace.sample(requests, stage="rollout")
        answers = [
            [task.extract_answer(r.prefix + g.text) if g.finished else None for g in row]
            for r, row in zip(requests, continuations, strict=True)
        ]
        pairs = {
            (a, p.problem.answer)
            for p, row in zip(prefixes, answers, strict=True)
            for a in row
            if a is not None
        }
        verdicts, _ = grade_pairs(
            self.workspace.store,
            self.workspace.run_id,
            self.grader,
            pairs,
            self.pool,
            self.stats,
            timeout=self.timeout,
        )
        out = []
        for p, row, generations in zip(prefixes, answers, continuations, strict=True):
            outcomes = tuple(a is not None and verdicts[(a, p.problem.answer)] for a in row)
            weights = [continuation_weight(g) for g in generations]
            weighted = sum(w for w, ok in zip(weights, outcomes, strict=True) if ok)
            out.append(
                RolloutValue(
                    rate=sum(outcomes) / len(outcomes),
                    weighted=weighted / sum(weights),
                    outcomes=outcomes,
                    tokens=sum(g.num_tokens for g in generations),
                )
            )
        return out

    def for_solution(self, problem: Problem, steps: Sequence[str]):
        """The ``rollout(k, n)`` function a labeler receives for one solution."""
        steps = tuple(steps)

        def rollout(k: int, n: int) -> RolloutValue:
            return self.values([Prefix(problem, steps, k, n)])[0]

        return rollout
