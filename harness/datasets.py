"""Solutions to learn from and the training data made of them.

``Source``: a task's problems sampled by a generator, read by a splitter and graded, all through
a run's store (so ``prmh rollout``, ``prmh label`` and the analyses resume and share what
``prmh eval`` computed). ``write_rollouts`` writes rollout files (``prmh rollout``) and
``write_labelled`` step-labelled files (``prmh label``), atomically.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prmh.engine import Run, grade_pairs
from prmh.engine.workspace import read_solution
from prmh.errors import PrmhError
from prmh.files import write_text_atomic
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
        from prmh.matrix import MAX_SAMPLES
        from prmh.registry import load_registry

        if samples < 1 or limit < 1:
            raise PrmhError("--samples and --limit must be at least 1.")
        if samples > MAX_SAMPLES:  # 10**11 filled memory with requests before any was sent
            raise PrmhError(f"--samples must be at most {MAX_SAMPLES} per problem, not {samples}.")
        registry = load_registry()
        self.task = registry.create("task", task, task_args or {})
        self.generator = registry.create("generator", generator, generator_args or {})
        self.splitter = registry.create("splitter", splitter).instance
        self.grader = get_grader(self.task.instance.grader, registry)
        self.problems = self.task.instance.problems(limit)
        self.samples, self.seed = samples, seed
        self.fitted: Any = None  # what a fitted splitter chose (a threshold), for the record

    @contextlib.contextmanager
    def opened(self, run: Run) -> Iterator[Source]:
        """This source working in ``run`` (its ``workspace``, ``pool`` and ``rollouts``)."""
        from prmh.grading import GraderPool
        from prmh.rollout import Rollouts

        self.workspace = run.workspace(self.task, self.generator)
        with GraderPool() as self.pool:
            self.rollouts = Rollouts(
                self.workspace, self.grader, self.pool, self.seed, splitter=self.splitter
            )
            yield self

    def solutions(self) -> list[Graded]:
        """Every finished solution with steps, graded. A splitter that fits on samples (say,
        adaptive-confidence's threshold) is fitted on all of them first, as ``eval`` does."""
        pools = self.workspace.generations(self.problems, self.samples, self.seed)
        if hasattr(self.splitter, "fit"):
            self.fitted = self.splitter.fit([g for pool in pools for g in pool])
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


def write_rollouts(source: Source, rollouts: int, out: Path) -> dict[str, Any]:
    """Each step prefix of each solution (the empty prefix included) continued ``rollouts``
    times; one JSON line per solution with each prefix's success rate (the full solution's
    value is its own verdict). Returns what was done and the cache statistics."""
    from prmh.rollout import Prefix

    solutions = source.solutions()
    prefixes = [
        Prefix(x.problem, x.solution.steps, k, rollouts, x.solution.text)
        for x in solutions
        for k in range(len(x.solution.steps))
    ]
    values = iter(source.rollouts.values(prefixes))
    lines = []
    for x in solutions:
        steps = x.solution.steps
        rows = []
        for k in range(len(steps)):
            value = next(values)
            rows.append({"k": k, "rate": value.rate, "weighted": value.weighted})
        rows.append({"k": len(steps), "rate": float(x.correct), "weighted": float(x.correct)})
        row = {
            "problem_id": x.problem.id,
            "question": x.problem.question,
            "answer": x.problem.answer,
            "sample": x.sample,
            "steps": list(steps),
            "correct": x.correct,
            "values": rows,
        }
        if x.problem.steps is not None:  # for PRMs that check steps against them (oracle)
            row["gold_steps"] = list(x.problem.steps)
        lines.append(json.dumps(row))
    write_text_atomic(out, "".join(line + "\n" for line in lines))
    return {
        "solutions": len(solutions),
        "prefixes": len(prefixes),
        "fitted_splitter": source.fitted,
        "cache": source.workspace.stats.to_json(),
    }


def write_labelled(
    source: Source,
    labeler: Any,
    uncertainty: str | None,
    out: Path,
    fmt: str,
    select: str = "all",
    measure: str = "entropy",
) -> dict[str, Any]:
    """Label the solutions of ``source`` with ``labeler`` and write them in ``fmt``
    (``uncertainty``: the measure the labeler needs, if any; ``select``: all solutions, or
    UnPRM's 2 correct + 6 incorrect per problem by uncertainty (``measure``) or diversity);
    returns what it cost."""
    from prmh.labels import LabelledSolution, write_labels
    from prmh.plugins.solution_select import select_solutions
    from prmh.plugins.uncertainty import step_uncertainty

    items, skipped, rollouts, tokens = [], 0, 0, 0
    every = source.solutions()
    chosen = select_solutions(every, select, source.seed, measure)
    for x in chosen:
        p, steps = x.problem, x.solution.steps
        u = step_uncertainty(x.generation, steps, uncertainty) if uncertainty else None
        rollout = source.rollouts.for_solution(p, steps, x.solution.text)
        result = labeler.label(p, steps, x.correct, rollout, u)
        rollouts, tokens = rollouts + result.rollouts, tokens + result.tokens
        if result.labels is None:
            skipped += 1
            continue
        items.append(LabelledSolution(p.question, steps, result.labels, p.answer))
    return {
        "labelled": write_labels(out, items, fmt),
        "selected": {"how": select, "from": len(every), "chosen": len(chosen)},
        "skipped": skipped,
        "rollouts": rollouts,
        "generated_tokens": tokens,
        "fitted_splitter": source.fitted,
    }
