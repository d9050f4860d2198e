"""Runs an evaluation plan: pools, scores, searches, grading and metrics, all through the store.

Per (task, generator, seed) one pool of samples is generated at the pool size; every budget of
best-of-N reads a prefix of it. Each PRM scores each solution once. Aggregators and selectors
are post-processing over stored scores. Every final answer is graded in worker processes. What
is in the store is never computed again, so re-running a command resumes it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prmh.engine.context import SearchContext
from prmh.engine.run import Run
from prmh.engine.tables import result_table
from prmh.engine.workspace import Progress, Workspace
from prmh.errors import PrmhError
from prmh.grading import Grader, GraderPool, get_grader
from prmh.masking import redact
from prmh.matrix import EvalPlan, Spec
from prmh.pool_checks import one_step_warnings
from prmh.protocols import SharesBudgets
from prmh.registry import Component, Registry
from prmh.samples import SampleLog, samples_path
from prmh.store import content_key
from prmh.types import Compute, Generation, Problem, SearchResult, Solution
from prmh.verdicts import grade_pairs
from prmh.votes import AnswerKeys


@dataclass(frozen=True)
class Row:
    prm: Spec
    splitter: Spec
    agg: Spec
    selector: Spec


@dataclass(frozen=True)
class Prepared:
    """A plan with every component built: all names and options checked, nothing run yet."""

    plan: EvalPlan
    components: dict[str, list[Component]]
    graders: list[Grader]
    plugins: list[dict[str, str]]
    problems: list[list[Problem]]

    def resolved_config(self) -> dict[str, Any]:
        """The plan with each component's full arguments (defaults filled) and version."""
        config = self.plan.to_json()
        for key, kind in PLAN_KINDS.items():
            config[key] = [
                {"label": spec.label, **c.identity, "args": redact(c.args)}
                for spec, c in zip(getattr(self.plan, key), self.components[kind], strict=True)
            ]
        config["graders"] = [{"name": g.name, "version": g.version} for g in self.graders]
        config["plugins"] = self.plugins
        return config


PLAN_KINDS = {
    "task": "task",
    "generator": "generator",
    "prm": "prm",
    "splitter": "splitter",
    "agg": "aggregator",
    "selector": "selector",
    "search": "search",
}


def prepare(plan: EvalPlan, registry: Registry) -> Prepared:
    """Build every component of the plan, so bad names and options fail before any work."""
    components = {
        kind: [registry.create(kind, s.name, s.args) for s in getattr(plan, key)]
        for key, kind in PLAN_KINDS.items()
    }
    graders = [get_grader(t.instance.grader, registry) for t in components["task"]]
    problems = []
    for spec, task in zip(plan.task, components["task"], strict=True):
        problems.append(task.instance.problems(plan.limit))
        if not problems[-1]:
            raise PrmhError(f"task {spec.label!r} has no problems.")
    used = {c.entry.plugin for built in components.values() for c in built}
    plugins = [
        {"name": p.name, "distribution": p.distribution, "version": p.version}
        for p in registry.plugins
        if p.name in used
    ]
    return Prepared(plan, components, graders, plugins, problems)


def run_eval(prepared: Prepared, run: Run, grading_timeout: float = 5.0) -> dict[str, Any]:
    """Run the whole plan in ``run`` and return its metrics (the run record's ``metrics``)."""
    started = time.perf_counter()
    plan, built = prepared.plan, prepared.components
    tables, log = [], SampleLog()
    with GraderPool() as pool:  # workers start on the first answer to grade or key
        for task_spec, task, grader, problems in zip(
            plan.task, built["task"], prepared.graders, prepared.problems, strict=True
        ):
            for gen_spec, generator in zip(plan.generator, built["generator"], strict=True):
                workspace = run.workspace(task, generator)
                keys = AnswerKeys(grader, run.store, run.run_id, pool, grading_timeout, run.stats)
                table = _Table(plan, built, problems, workspace, keys, log)
                tables.append(table.evaluate(task_spec, gen_spec, run.progress))
    samples = samples_path(run.record.path)
    metrics = {
        "tables": tables,
        "samples": samples.name,
        "samples_sha256": log.write(samples),
        "cache": run.stats.to_json(),
        "wall_seconds": time.perf_counter() - started,
    }
    if run.store.damaged:
        metrics["damaged_entries"] = dict(run.store.damaged)
    return metrics


class _Table:
    """One (task, generator) of a plan: its pools, every search cell's chosen answers and
    compute, then the graded table."""

    def __init__(
        self,
        plan: EvalPlan,
        built: dict[str, list[Component]],
        problems: list[Problem],
        workspace: Workspace,
        keys: AnswerKeys,
        log: SampleLog,
    ):
        self.plan, self.built, self.problems = plan, built, problems
        self.workspace, self.keys, self.log = workspace, keys, log
        self.where: dict[str, Any] = {}  # the table's task and generator labels
        # answers[(row, search label, budget)][seed index][problem index] = chosen answers
        self.answers: dict[tuple, list[list[tuple[str | None, ...]]]] = {}
        self.compute: dict[tuple, list[list[Compute]]] = {}
        self.warnings: set[str] = set()
        self.candidates: set[tuple[str, str]] = set()  # (answer, gold) of every candidate
        self.solutions: dict[int, Solution] = {}  # every candidate's, by id
        self.golds = {p.id: p.answer for p in problems}

    def pairs(self, key: str, kind: str) -> list[tuple[Spec, Component]]:
        return list(zip(getattr(self.plan, key), self.built[kind], strict=True))

    def pools(self) -> tuple[list[list[list[str | None]]], list[Generation]]:
        """Each seed's pool answers ([seed][problem][sample]) and every pooled generation."""
        extract = self.workspace.task.instance.extract_answer
        answers, pooled = [], []
        for seed in self.plan.seed:
            pool = self.workspace.generations(self.problems, self.plan.pool, seed)
            answers.append([[extract(g.text) if g.finished else None for g in r] for r in pool])
            pooled += [g for row in pool for g in row]
        self.keys.ensure(a for rows in answers for row in rows for a in row)
        return answers, pooled

    def search_cell(
        self, prm: tuple, splitter: tuple, agg: tuple, search: tuple, seed: tuple[int, int]
    ) -> None:
        """Run one search at every budget (in one call when it shares work across budgets) and
        record each selector's answers and the compute."""
        (prm_spec, prm), (split_spec, split), (agg_spec, aggregator) = prm, splitter, agg
        (search_spec, searcher), seed_value = search, seed[1]
        ctx = SearchContext(self.workspace, prm, split, aggregator.instance, self.plan.pool)
        budgets = list(self.plan.budget)
        if isinstance(searcher.instance, SharesBudgets):
            per_budget = searcher.instance.run_budgets(ctx, self.problems, budgets, seed_value)
            if len(per_budget) != len(budgets):
                raise PrmhError(
                    f"search {search_spec.label!r} returned results for {len(per_budget)} "
                    f"budgets of {len(budgets)}; this is a bug in the search."
                )
        else:
            per_budget = [searcher.instance.run(ctx, self.problems, b, seed_value) for b in budgets]
        self.warnings.update(
            f"{search_spec.label} with {prm_spec.label}: {w}" for w in ctx.warnings
        )
        self._add_candidates(per_budget)
        row = (prm_spec, split_spec, agg_spec)
        for budget, results in zip(budgets, per_budget, strict=True):
            self.record(row, search_spec.label, budget, seed, results)

    def _add_candidates(self, per_budget: list[list[SearchResult]]) -> None:
        """Vote keys and (answer, gold) pairs to grade for solutions new to the table (a
        pool's recur in every cell that reads it: each is looked at once)."""
        known, fresh = self.solutions, []  # kept: their ids stay their own
        results = [r for rs in per_budget for r in rs]
        new = {id(c.solution) for r in results for c in r.candidates} - known.keys()
        for r in results if new else ():  # most cells read solutions another cell read
            for s in (c.solution for c in r.candidates if id(c.solution) in new):
                if id(s) not in known:
                    known[id(s)] = s
                    fresh.append((s.answer, self.golds[r.problem_id]))
        self.keys.ensure(answer for answer, _ in fresh)
        self.candidates.update(pair for pair in fresh if pair[0] is not None)

    def record(
        self, row: tuple[Spec, Spec, Spec], search: str, budget: int, seed: tuple[int, int],
        results: list[SearchResult],
    ) -> None:  # fmt: skip
        """One budget's results: each selector's answers, the compute and the sample log."""
        if len(results) != len(self.problems):
            raise PrmhError(
                f"search {search!r} returned {len(results)} results for "
                f"{len(self.problems)} problems; this is a bug in the search."
            )
        (s_i, seed_value), seeds, chosen = seed, self.plan.seed, {}
        for sel_spec, selector in self.pairs("selector", "selector"):
            key = (Row(*row, sel_spec), search, budget)
            picked = self.answers.setdefault(key, [[] for _ in seeds])[s_i]
            spent = self.compute.setdefault(key, [[] for _ in seeds])[s_i]
            pick, keys = selector.instance, self.keys
            picks = [
                (pick(list(r.candidates), keys),) if r.subsets is None else _subsets(r, pick, keys)
                for r in results
            ]
            chosen[sel_spec.label] = picks
            picked += [
                tuple([_answer(r, i) for i in ps]) for r, ps in zip(results, picks, strict=True)
            ]
            spent += [r.compute for r in results]
        labels = dict(zip(("prm", "splitter", "agg"), (s.label for s in row), strict=True))
        where = {**self.where, **labels, "search": search, "budget": budget, "seed": seed_value}
        self.log.add_cell(where, results, chosen)

    def evaluate(self, task_spec: Spec, gen_spec: Spec, progress: Progress) -> dict[str, Any]:
        self.where = {"task": task_spec.label, "generator": gen_spec.label}
        self.log.add_problems(task_spec.label, self.problems)
        pool_answers, pooled = self.pools()
        fitted = {}
        for spec, splitter in self.pairs("splitter", "splitter"):
            if hasattr(splitter.instance, "fit"):  # e.g. a confidence threshold over the pool
                fitted[spec.label] = splitter.instance.fit(pooled)
        for cell in itertools.product(
            self.pairs("prm", "prm"),
            self.pairs("splitter", "splitter"),
            self.pairs("agg", "aggregator"),
            self.pairs("search", "search"),
            enumerate(self.plan.seed),
        ):
            self.search_cell(*cell)
        golds = [p.answer for p in self.problems]
        outcomes: dict[tuple[str, str], str] = {}
        verdicts, grading = _grade(
            self.keys, golds, self.answers, pool_answers, progress, self.candidates, outcomes
        )
        self.log.add_grades(task_spec.label, verdicts, outcomes)
        table = result_table(
            self.plan,
            task_spec,
            gen_spec,
            self.problems,
            self.keys,
            self.answers,
            self.compute,
            pool_answers,
            verdicts,
        )
        table["fitted_splitters"] = fitted
        table["warnings"] = sorted(self.warnings.union(one_step_warnings(self.workspace.shared)))
        table["grading"] = grading
        table["truncated_solutions"] = {
            spec.label: len(self.workspace.truncated.get(content_key(prm.identity), ()))
            for spec, prm in self.pairs("prm", "prm")
        }
        return table


def _grade(
    keys: AnswerKeys,
    golds: list[str],
    answers: dict[tuple, list[list[tuple[str | None, ...]]]],
    pool_answers: list[list[list[str | None]]],
    progress: Progress,
    candidates: set[tuple[str, str]],
    outcomes: dict[tuple[str, str], str],
) -> tuple[dict[tuple[str, str], bool], dict[str, int]]:
    """Grade every distinct (answer, gold) pair of a table once (chosen answers, the pool's and
    every candidate's); see ``grade_pairs``."""
    pairs = set(candidates)
    for per_seed in answers.values():
        for row in per_seed:
            for picks, gold in zip(row, golds, strict=True):
                pairs.update((a, gold) for a in picks if a is not None)
    for seed_rows in pool_answers:
        for samples, gold in zip(seed_rows, golds, strict=True):
            pairs.update((a, gold) for a in samples if a is not None)
    return grade_pairs(
        keys.store,
        keys.run_id,
        keys.grader,
        pairs,
        keys.pool,
        keys.stats,
        progress,
        keys.timeout,
        outcomes,
    )


def _subsets(
    result: SearchResult, selector: Callable, keys: Callable[[str], str]
) -> tuple[int | None, ...]:
    """The index of the candidate selected in each subset the search drew (None where
    nothing was chosen)."""
    picks = []
    for subset in result.subsets or ():
        i = selector([result.candidates[j] for j in subset], keys)
        picks.append(None if i is None else subset[i])
    return tuple(picks)


def _answer(result: SearchResult, index: int | None) -> str | None:
    return None if index is None else result.candidates[index].solution.answer
