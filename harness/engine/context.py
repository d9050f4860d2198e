"""The search context: everything a search may use, and nothing else.

A search (``Search`` in ``prmh.protocols``) receives one ``SearchContext`` per (task, generator,
PRM, splitter, aggregator): cached sampling, continuation and scoring through the workspace,
the splitter's reading of a generation, and the aggregator that ranks solutions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prmh.engine.workspace import Workspace, read_solution
from prmh.registry import Component
from prmh.types import (
    Candidate,
    Compute,
    Generation,
    Problem,
    SampleRequest,
    Solution,
    StepScores,
)


@dataclass
class SearchContext:
    """What a search may use: cached sampling and scoring of one (task, generator, PRM), the
    splitter, and the aggregator that turns step scores into a solution score."""

    workspace: Workspace
    prm: Component
    splitter: Component
    aggregate: Callable[[StepScores], float]
    pool_size: int = 0
    warnings: list[str] = field(default_factory=list)
    _ranked: set[tuple] = field(default_factory=set, repr=False)  # (problem, steps) ranked
    _earlier: list = field(default_factory=list, repr=False)  # items ranked, not yet in it

    def warn(self, message: str) -> None:
        """Say something the reader of the table must know (shown below it, kept in the
        record), such as a search that could not do what its name says."""
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def separator(self) -> str:
        """What ends a step in the text, where step searches stop: the splitter's
        ``separator`` if it has one, else a blank line."""
        return getattr(self.splitter.instance, "separator", None) or "\n\n"

    def read(self, generation: Generation) -> Solution:
        """A generation as the task and splitter read it: steps and final answer. Not kept: a
        pool's solutions are kept with the pool, a step search's drafts go with their round."""
        return read_solution(self.workspace.task.instance, self.splitter.instance, generation)

    def prompt(self, problem: Problem) -> str:
        return self.workspace.task.instance.prompt(problem)

    def pool(
        self, problems: Sequence[Problem], n: int, seed: int, temperature: float | None = None
    ) -> list[list[Solution]]:
        """The first ``n`` samples of each problem's pool (``temperature`` 0: greedy), read
        once per splitter: every cell of a table that reads the same pool gets it from the
        workspace."""
        key = ("pool", id(self.splitter), id(problems), n, seed, temperature)
        known = self.workspace.shared.get(key)
        if known is None or known[0] is not problems or known[1] is not self.splitter:
            requests = [
                SampleRequest(p, self.prompt(p), n, seed, temperature=temperature) for p in problems
            ]
            rows = [[self.read(g) for g in row] for row in self.workspace.sample(requests)]
            known = self.workspace.shared[key] = (problems, self.splitter, rows)
        return [list(row) for row in known[2]]

    def extend(
        self,
        items: Sequence[tuple[Problem, str, int, int] | tuple[Problem, str, int, int, float]],
        seed: int,
        stop: tuple[str, ...],
        *,
        top_logprobs: int = 0,
        pause_below: float = 0.0,
    ) -> list[list[Generation]]:
        """For each (problem, prefix, n, first index[, temperature]): continuations first..
        first+n-1 of the prefix, each ending at a stop string or the end of the solution; all
        problems in one batched, cached call."""
        extra = {"top_logprobs": top_logprobs, "pause_below": pause_below}
        requests = [
            SampleRequest(p, self.prompt(p), n, seed, first, prefix, stop, *temperature, **extra)
            for p, prefix, n, first, *temperature in items
        ]
        return self.workspace.sample(requests, stage="extend")

    def score(
        self, problems: Sequence[Problem], pools: Sequence[Sequence[Solution]]
    ) -> list[list[StepScores]]:
        return self.workspace.scores(self.prm, problems, pools)

    def score_steps(self, items: Sequence[tuple[Problem, tuple[str, ...]]]) -> list[StepScores]:
        return self.workspace.score_steps(self.prm, items)

    def question_scores(self, problems: Sequence[Problem]) -> list[StepScores]:
        """The PRM's score of each problem's empty solution: how likely it is to be solved."""
        return self.score_steps([(p, ("",)) for p in problems])

    def rank(
        self, items: Sequence[tuple[Problem, Solution]]
    ) -> tuple[list[Candidate], list[Compute]]:
        """Score and aggregate solutions (partial or whole), and what scoring each cost. The
        ``whole`` aggregator scores each solution's text as one step: a PRM call of its own."""
        return self._rank(items, shared=False)

    def _rank(
        self, items: Sequence[tuple[Problem, Solution]], shared: bool
    ) -> tuple[list[Candidate], list[Compute]]:
        scores, costs = self._scores_and_costs(items, shared)
        values = [self.aggregate(x) for x in scores]
        if getattr(self.aggregate, "whole", False):
            wholes = self.score_steps(
                [(p, (s.text.strip(),) if s.text.strip() else ()) for p, s in items]
            )
            values = [w.probs[0] if w.probs else 0.0 for w in wholes]
            costs = [
                c + Compute(prm_tokens=w.num_tokens, prm_calls=1, wall_seconds=w.seconds)
                for c, w in zip(costs, wholes, strict=True)
            ]
        candidates = [
            Candidate(s, x, v) for (_, s), x, v in zip(items, scores, values, strict=True)
        ]
        return candidates, costs

    def rank_pools(
        self, problems: Sequence[Problem], pools: Sequence[Sequence[Solution]]
    ) -> list[tuple[list[Candidate], list[Compute]]]:
        """Every solution of every pool ranked in one batched call; per problem, its
        candidates and what each cost, generating it included (the same for every aggregator:
        kept in the workspace with the ranking it extends)."""
        items = [(p, s) for p, pool in zip(problems, pools, strict=True) for s in pool]
        candidates, costs = self._rank(items, shared=True)
        bounds = list(itertools.pairwise([0, *itertools.accumulate(map(len, pools))]))
        known = self.workspace.shared.get(("spent", id(costs)))
        if known is None or known[0] is not costs:  # one cost list per pool, for every cell
            spent = [c + Compute(s.num_tokens, wall_seconds=s.generation.seconds)
                     for c, (_, s) in zip(costs, items, strict=True)]  # fmt: skip
            known = self.workspace.shared[("spent", id(costs))] = (
                costs, [spent[a:z] for a, z in bounds]
            )  # fmt: skip
        return [(candidates[a:z], paid) for (a, z), paid in zip(bounds, known[1], strict=True)]

    def _scores_and_costs(
        self, items: Sequence[tuple[Problem, Solution]], shared: bool
    ) -> tuple[list[StepScores], list[Compute]]:
        """Step scores and what reading them cost, the same for every aggregator: a search
        that ranks first the pools another cell of the table ranked first (best-of-N ranking
        one pool per aggregator) gets them from the workspace. Partial solutions (``shared``
        false) are not kept for others: no other cell holds the same objects."""
        fresh = shared and not self._ranked and not self._earlier
        key = (id(self.prm), *(id(s) for _, s in items)) if fresh else None
        known = self.workspace.shared.get(key) if fresh else None
        if known is not None and all(a is b for a, (_, b) in zip(known[0], items, strict=True)):
            self._earlier.append(items)  # added to _ranked if a later round needs it
            return known[1], known[2]
        for earlier in self._earlier:
            self._ranked.update((p.id, p.question, s.steps) for p, s in earlier)
        self._earlier.clear()
        scores = self.score_steps([(p, s.steps) for p, s in items])
        costs = [
            Compute(prm_tokens=self._prm_tokens(p, s.steps, x), prm_calls=1, wall_seconds=x.seconds)
            for (p, s), x in zip(items, scores, strict=True)
        ]
        if fresh:
            self.workspace.shared[key] = ([s for _, s in items], scores, costs)
        return scores, costs

    def _prm_tokens(self, problem: Problem, steps: tuple[str, ...], scores: StepScores) -> int:
        """The PRM tokens scoring ``steps`` costs: the new step's when the PRM keeps KV caches
        and this search ranked the steps before it (the previous round), else the whole."""
        parent_ranked = (problem.id, problem.question, steps[:-1]) in self._ranked
        self._ranked.add((problem.id, problem.question, steps))
        reuses = getattr(self.prm.instance, "reuses_prefixes", False)
        if parent_ranked and reuses and scores.tail_tokens is not None:
            return scores.tail_tokens
        return scores.num_tokens
