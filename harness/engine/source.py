"""Solutions to work on: a task's problems, sampled by a generator and read by a splitter, each
graded, all through a run's store (so ``prmh rollout``, ``prmh label`` and the analyses resume
and share what ``prmh eval`` computed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prmh.engine.context import read_solution
from prmh.engine.run import Run
from prmh.engine.verdicts import grade_pairs
from prmh.errors import PrmhError
from prmh.types import Generation, Problem, Solution


@dataclass(frozen=True)
class Graded:
    """One finished solution of a problem: its sample index, text, reading and verdict."""

    problem: Problem
    sample: int
    generation: Generation
    solution: Solution
    correct: bool


class Source:
    """``samples`` solutions per problem of the first ``limit`` problems of a task, from a
    generator at ``seed``. Building one checks every name and option; ``opened(run)`` then
    works through a run's store, with grading workers of its own."""

    def __init__(
        self,
        task: str,
        generator: str,
        *,
        splitter: str = "double-newline",
        limit: int = 50,
        samples: int = 4,
        seed: int = 0,
        task_args: dict[str, Any] | None = None,
        generator_args: dict[str, Any] | None = None,
    ):
        from prmh.grading import get_grader
        from prmh.registry import load_registry

        if samples < 1 or limit < 1:
            raise PrmhError("--samples and --limit must be at least 1.")
        registry = load_registry()
        self.task = registry.create("task", task, task_args or {})
        self.generator = registry.create("generator", generator, generator_args or {})
        self.splitter = registry.create("splitter", splitter).instance
        self.grader = get_grader(self.task.instance.grader, registry)
        self.problems = self.task.instance.problems(limit)
        self.samples, self.seed = samples, seed

    @contextlib.contextmanager
    def opened(self, run: Run) -> Iterator[Source]:
        """This source working in ``run`` (its ``workspace``, ``pool`` and ``rollouts``)."""
        from prmh.grading import GraderPool
        from prmh.rollout import Rollouts

        self.workspace = run.workspace(self.task, self.generator)
        with GraderPool() as self.pool:
            self.rollouts = Rollouts(self.workspace, self.grader, self.pool, self.seed)
            yield self

    def solutions(self) -> list[Graded]:
        """Every finished solution with steps, graded."""
        pools = self.workspace.generations(self.problems, self.samples, self.seed)
        rows = [
            (p, i, g, read_solution(self.task.instance, self.splitter, g))
            for p, pool in zip(self.problems, pools, strict=True)
            for i, g in enumerate(pool)
        ]
        rows = [r for r in rows if r[3].finished and r[3].steps]
        verdicts, _ = grade_pairs(
            self.workspace.store,
            self.workspace.run_id,
            self.grader,
            {(s.answer, p.answer) for p, _, _, s in rows},
            self.pool,
            self.workspace.stats,
        )
        return [Graded(p, i, g, s, verdicts[(s.answer, p.answer)]) for p, i, g, s in rows]
