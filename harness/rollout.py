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
from typing import Any

from prmh.engine import CacheStats, Workspace, grade_pairs
from prmh.grading import Grader, GraderPool
from prmh.types import Generation, Problem, RolloutValue, SampleRequest


@dataclass(frozen=True)
class Prefix:
    """The first ``k`` steps of a solution, to continue ``n`` times; ``text`` is the solution
    as written, when known, so the prefix is its own text up to where step k+1 begins."""

    problem: Problem
    steps: tuple[str, ...]
    k: int
    n: int
    text: str | None = None


def step_starts(text: str, steps: Sequence[str]) -> list[int] | None:
    """Where each step begins in the solution's text (found in order), or None when a step is
    not there as written (a splitter that rewrote the white space)."""
    starts, at = [], 0
    for step in steps:
        where = text.find(step, at)
        if where < 0:
            return None
        starts.append(where)
        at = where + len(step)
    return starts


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
        splitter: Any = None,
    ):
        self.workspace, self.grader, self.pool = workspace, grader, pool
        self.seed, self.separator, self.timeout = seed, separator, timeout
        self.splitter = splitter
        self.stats: CacheStats = workspace.stats

    def prefix_text(self, steps: Sequence[str], k: int, text: str | None = None) -> str:
        """The text the generator continues after the first k steps: the solution's own text
        up to where step k+1 begins (a mid-sentence boundary stays mid-sentence); without it,
        the splitter's join of k+1 steps cut before the last; without a splitter, the steps
        joined by ``separator``."""
        if k == 0:
            return ""
        starts = step_starts(text, steps) if text is not None else None
        if starts is not None:
            return text[: starts[k]] if k < len(steps) else text
        if self.splitter is not None:
            if k == len(steps):
                return self.splitter.join(list(steps))
            joined = self.splitter.join(list(steps[: k + 1]))
            if joined.endswith(steps[k]):
                return joined[: len(joined) - len(steps[k])]
        return self.separator.join(steps[:k]) + self.separator

    def values(self, prefixes: Sequence[Prefix]) -> list[RolloutValue]:
        task = self.workspace.task.instance
        requests = [
            SampleRequest(
                p.problem,
                task.prompt(p.problem),
                p.n,
                self.seed,
                prefix=self.prefix_text(p.steps, p.k, p.text),
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

    def for_solution(self, problem: Problem, steps: Sequence[str], text: str | None = None):
        """The ``rollout(k, n)`` function a labeler receives for one solution."""
        steps = tuple(steps)

        def rollout(k: int, n: int) -> RolloutValue:
            return self.values([Prefix(problem, steps, k, n, text)])[0]

        return rollout
