"""Runs an evaluation plan: pools, scores, searches, grading and metrics, all through the store.

Per (task, generator, seed) one pool of samples is generated at the pool size; every budget of
best-of-N reads a prefix of it. Each PRM scores each solution once. Aggregators and selectors
are post-processing over stored scores. Every final answer is graded in worker processes. What
is in the store is never computed again, so re-running a command resumes it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prmh.errors import PrmhError
from prmh.grading import Grader, GraderPool, get_grader
from prmh.matrix import EvalPlan, Spec
from prmh.records import redact
from prmh.registry import Component, Registry
from prmh.store import Store, content_key
from prmh.tables import result_table
from prmh.types import (
    Candidate,
    Compute,
    Generation,
    Problem,
    SampleRequest,
    SearchResult,
    Solution,
    StepScores,
)
from prmh.verdicts import grade_pairs
from prmh.votes import AnswerKeys
from prmh.workspace import (
    CacheStats,
    Progress,
    Workspace,
    no_progress,
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

    def warn(self, message: str) -> None:
        """Say something the reader of the table must know (shown below it, kept in the
        record), such as a search that could not do what its name says."""
        if message not in self.warnings:
            self.warnings.append(message)

    def read(self, generation: Generation) -> Solution:
        """A generation as the task and splitter read it: steps and final answer."""
        splitter = self.splitter.instance
        if hasattr(splitter, "split_generation"):
            steps = tuple(splitter.split_generation(generation))
        else:
            steps = tuple(splitter.split(generation.text))
        answer = self.workspace.task.instance.extract_answer(generation.text)
        return Solution(generation, steps, answer)

    def prompt(self, problem: Problem) -> str:
        return self.workspace.task.instance.prompt(problem)

    def pool(
        self, problems: Sequence[Problem], n: int, seed: int, temperature: float | None = None
    ) -> list[list[Solution]]:
        """The first ``n`` samples of each problem's pool (``temperature`` 0: greedy)."""
        requests = [
            SampleRequest(p, self.prompt(p), n, seed, temperature=temperature) for p in problems
        ]
        return [[self.read(g) for g in row] for row in self.workspace.sample(requests)]

    def extend(
        self,
        items: Sequence[tuple[Problem, str, int, int]],
        seed: int,
        stop: tuple[str, ...],
    ) -> list[list[Generation]]:
        """For each (problem, prefix, n, first index): continuations first..first+n-1 of the
        prefix, each ending at a stop string or the end of the solution; all problems in one
        batched, cached call."""
        requests = [
            SampleRequest(p, self.prompt(p), n, seed, first, prefix=prefix, stop=stop)
            for p, prefix, n, first in items
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
        scores = self.score_steps([(p, s.steps) for p, s in items])
        costs = [
            Compute(prm_tokens=x.num_tokens, prm_calls=1, wall_seconds=x.seconds) for x in scores
        ]
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
    graders = [get_grader(t.instance.grader) for t in components["task"]]
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


def run_eval(
    prepared: Prepared,
    store: Store,
    run_id: str,
    progress: Progress = no_progress,
    grading_timeout: float = 5.0,
) -> dict[str, Any]:
    """Run the whole plan and return its metrics (the run record's ``metrics``)."""
    started = time.perf_counter()
    plan, built = prepared.plan, prepared.components
    stats = CacheStats()
    tables = []
    with GraderPool() as pool:  # workers start on the first answer to grade or key
        for task_spec, task, grader, problems in zip(
            plan.task, built["task"], prepared.graders, prepared.problems, strict=True
        ):
            for gen_spec, generator in zip(plan.generator, built["generator"], strict=True):
                workspace = Workspace(task, generator, store, run_id, stats, progress)
                keys = AnswerKeys(grader, store, run_id, pool, grading_timeout, stats)
                tables.append(
                    _evaluate_table(
                        plan,
                        task_spec,
                        gen_spec,
                        problems,
                        workspace,
                        built,
                        keys,
                        progress,
                    )
                )
    metrics = {
        "tables": tables,
        "cache": stats.to_json(),
        "wall_seconds": time.perf_counter() - started,
    }
    if store.damaged:
        metrics["damaged_entries"] = dict(store.damaged)
    return metrics


def _evaluate_table(
    plan: EvalPlan,
    task_spec: Spec,
    gen_spec: Spec,
    problems: list[Problem],
    workspace: Workspace,
    built: dict[str, list[Component]],
    keys: AnswerKeys,
    progress: Progress,
) -> dict[str, Any]:
    seeds = plan.seed
    # answers[(row key, search label, budget)][seed index][problem index] = chosen answers
    answers: dict[tuple, list[list[tuple[str | None, ...]]]] = {}
    compute: dict[tuple, list[list[Compute]]] = {}
    pool_answers: list[list[list[str | None]]] = []  # [seed][problem][sample]
    extract = workspace.task.instance.extract_answer
    pooled: list[Generation] = []
    for seed in seeds:
        pool = workspace.generations(problems, plan.pool, seed)
        pool_answers.append(
            [[extract(g.text) if g.finished else None for g in row] for row in pool]
        )
        pooled += [g for row in pool for g in row]
    keys.ensure(a for rows in pool_answers for row in rows for a in row)
    fitted = {}
    for spec, splitter in zip(plan.splitter, built["splitter"], strict=True):
        if hasattr(splitter.instance, "fit"):  # e.g. a confidence threshold over the whole pool
            fitted[spec.label] = splitter.instance.fit(pooled)

    def pairs(key: str, kind: str) -> list[tuple[Spec, Component]]:
        return list(zip(getattr(plan, key), built[kind], strict=True))

    cells = itertools.product(
        pairs("prm", "prm"),
        pairs("splitter", "splitter"),
        pairs("agg", "aggregator"),
        pairs("search", "search"),
        plan.budget,
        enumerate(seeds),
    )
    warnings: set[str] = set()
    for (prm_spec, prm), (split_spec, splitter), (agg_spec, agg), (
        search_spec,
        search,
    ), budget, (s_i, seed) in cells:
        ctx = SearchContext(workspace, prm, splitter, agg.instance, plan.pool)
        results: list[SearchResult] = search.instance.run(ctx, problems, budget, seed)
        warnings.update(f"{search_spec.label} with {prm_spec.label}: {w}" for w in ctx.warnings)
        keys.ensure(c.solution.answer for r in results for c in r.candidates)
        if len(results) != len(problems):
            raise PrmhError(
                f"search {search_spec.label!r} returned {len(results)} results for "
                f"{len(problems)} problems; this is a bug in the search."
            )
        for sel_spec, selector in pairs("selector", "selector"):
            key = (Row(prm_spec, split_spec, agg_spec, sel_spec), search_spec.label, budget)
            picked = answers.setdefault(key, [[] for _ in seeds])[s_i]
            spent = compute.setdefault(key, [[] for _ in seeds])[s_i]
            for result in results:
                picked.append(_select(result, selector.instance, keys))
                spent.append(result.compute)
    golds = [p.answer for p in problems]
    verdicts, grading = _grade(keys, golds, answers, pool_answers, progress)
    table = result_table(
        plan, task_spec, gen_spec, problems, keys, answers, compute, pool_answers, verdicts
    )
    table["fitted_splitters"] = fitted
    table["warnings"] = sorted(warnings)
    table["grading"] = grading
    table["truncated_solutions"] = {
        spec.label: len(workspace.truncated.get(content_key(prm.identity), ()))
        for spec, prm in pairs("prm", "prm")
    }
    return table


def _grade(
    keys: AnswerKeys,
    golds: list[str],
    answers: dict[tuple, list[list[tuple[str | None, ...]]]],
    pool_answers: list[list[list[str | None]]],
    progress: Progress,
) -> tuple[dict[tuple[str, str], bool], dict[str, int]]:
    """Grade every distinct (answer, gold) pair of a table once; see ``grade_pairs``."""
    pairs: set[tuple[str, str]] = set()
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
    )


def _select(
    result: SearchResult, selector: Callable, keys: Callable[[str], str]
) -> tuple[str | None, ...]:
    """The selected answer, or one per subset when the search drew several subsets."""
    groups = (
        [result]
        if result.subsets is None
        else [
            replace(result, candidates=tuple(result.candidates[i] for i in subset))
            for subset in result.subsets
        ]
    )
    return tuple(replace(g, chosen=selector(list(g.candidates), keys)).answer for g in groups)
