"""Runs an evaluation plan: pools, scores, searches, grading and metrics, all through the store.

Per (task, generator, seed) one pool of samples is generated at the pool size; every budget of
best-of-N reads a prefix of it. Each PRM scores each solution once. Aggregators and selectors
are post-processing over stored scores. Every final answer is graded in worker processes. What
is in the store is never computed again, so re-running a command resumes it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from prmh.answers import majority_index
from prmh.claims import Claims
from prmh.errors import PrmhError
from prmh.grading import Grader, GraderPool, get_grader
from prmh.matrix import EvalPlan, Spec
from prmh.metrics import bootstrap_mean, pass_at_k
from prmh.records import redact
from prmh.registry import Component, Registry
from prmh.store import Store, content_key
from prmh.types import (
    Candidate,
    Compute,
    Generation,
    Problem,
    SampleRequest,
    ScoreRequest,
    SearchResult,
    Solution,
    StepScores,
)
from prmh.votes import AnswerKeys

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: how far a long stage has got."""

GENERATION_BATCH = 32  # problems per generator call and per transaction
SCORE_BATCH = 64  # solutions per PRM call and per transaction


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def problem_fingerprint(problem: Problem) -> str:
    return content_key(
        [problem.id, problem.question, problem.answer, problem.steps, problem.metadata]
    )


@dataclass
class CacheStats:
    """How many entries of each kind came from the store and how many were computed."""

    hits: dict[str, int] = field(default_factory=dict)
    computed: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, hits: int, computed: int) -> None:
        self.hits[kind] = self.hits.get(kind, 0) + hits
        self.computed[kind] = self.computed.get(kind, 0) + computed

    def to_json(self) -> dict[str, dict[str, int]]:
        return {"from_store": self.hits, "computed": self.computed}


class Workspace:
    """Cached generation and scoring for one (task, generator), shared by every search."""

    def __init__(
        self,
        task: Component,
        generator: Component,
        store: Store,
        run_id: str,
        stats: CacheStats,
        progress: Progress,
    ):
        self.task, self.generator, self.store = task, generator, store
        self.run_id, self.stats, self.progress = run_id, stats, progress
        self._generations: dict[str, Generation] = {}
        self._scores: dict[str, StepScores] = {}
        self.truncated: dict[str, set[str]] = {}  # PRM identity key -> truncated solutions
        self._fingerprints: dict[str, str] = {}
        self.claims = Claims(store, run_id)

    def fingerprint(self, problem: Problem) -> str:
        fp = self._fingerprints.get(problem.id)
        if fp is None:
            fp = self._fingerprints[problem.id] = problem_fingerprint(problem)
        return fp

    def _generation_key(self, request: SampleRequest, index: int) -> str:
        key: dict[str, Any] = {
            "generator": self.generator.identity,
            "problem": self.fingerprint(request.problem),
            "prompt": request.prompt,
            "seed": request.seed,
            "index": index,
        }
        if request.prefix:
            key["prefix"] = request.prefix
        if request.stop:
            key["stop"] = list(request.stop)
        if request.temperature is not None:
            key["temperature"] = request.temperature
        return content_key(key)

    def generations(self, problems: Sequence[Problem], n: int, seed: int) -> list[list[Generation]]:
        """Samples 0..n-1 of each problem's prompt (a pool)."""
        task = self.task.instance
        return self.sample([SampleRequest(p, task.prompt(p), n, seed) for p in problems])

    def sample(
        self, requests: Sequence[SampleRequest], stage: str = "generate"
    ) -> list[list[Generation]]:
        """What each request asks for: from memory, else the store, else the generator, in
        batches that are each one transaction."""
        keys = [[self._generation_key(r, r.first_index + i) for i in range(r.n)] for r in requests]
        wanted = [k for row in keys for k in row if k not in self._generations]
        stored = self.store.get_many("generation", wanted, parse=_generation)
        self._generations.update(stored)
        missing = [
            replace(r, n=len(run), first_index=r.first_index + run[0])
            for r, row in zip(requests, keys, strict=True)
            for run in _runs([i for i, k in enumerate(row) if k not in self._generations])
        ]
        units = {self._generation_key(r, r.first_index): r for r in missing}
        total = sum(r.n for r in units.values())
        label = f"{stage} {self.generator.name}"
        if total:
            self.progress(label, 0, total)
        computed = 0

        def generate(requests: list[SampleRequest]) -> None:
            nonlocal computed
            for start in range(0, len(requests), GENERATION_BATCH):
                fresh = self._generate(requests[start : start + GENERATION_BATCH])
                self.store.put_many("generation", fresh, self.run_id)
                computed += len(fresh)
                self.progress(label, computed, total)

        def stored_by_others(unit_keys: list[str]) -> set[str]:
            rows = {u: self._unit_keys(units[u]) for u in unit_keys}
            found = self.store.get_many(
                "generation", [k for ks in rows.values() for k in ks], parse=_generation
            )
            self._generations.update(found)
            return {u for u, ks in rows.items() if all(k in found for k in ks)}

        self.claims.share("generation", units, stored_by_others, generate, GENERATION_BATCH)
        self.stats.add("generation", len(stored) + total - computed, computed)
        return [[self._generations[k] for k in row] for row in keys]

    def _unit_keys(self, request: SampleRequest) -> list[str]:
        return [self._generation_key(request, request.first_index + i) for i in range(request.n)]

    def _generate(self, batch: list[SampleRequest]) -> dict[str, Any]:
        """One generator call for ``batch``; what to store."""
        fresh: dict[str, Any] = {}
        outputs = self.generator.instance.sample(batch)
        for request, samples in zip(batch, outputs, strict=True):
            if len(samples) != request.n:
                raise PrmhError(
                    f"generator {self.generator.name!r} returned {len(samples)} samples "
                    f"for a request of {request.n}; this is a bug in the generator."
                )
            for key, sample in zip(self._unit_keys(request), samples, strict=True):
                self._generations[key] = sample
                fresh[key] = sample.to_json()
        return fresh

    def scores(
        self, prm: Component, problems: Sequence[Problem], pools: Sequence[Sequence[Solution]]
    ) -> list[list[StepScores]]:
        """Each solution's step scores under ``prm``."""
        flat = self.score_steps(
            prm, [(p, s.steps) for p, pool in zip(problems, pools, strict=True) for s in pool]
        )
        out, at = [], 0
        for pool in pools:
            out.append(flat[at : at + len(pool)])
            at += len(pool)
        return out

    def score_steps(
        self, prm: Component, items: Sequence[tuple[Problem, tuple[str, ...]]]
    ) -> list[StepScores]:
        """Step scores of (problem, steps) pairs: memory, else the store, else one PRM pass per
        distinct pair, in batches that are each one transaction."""
        keys = [
            content_key({"prm": prm.identity, "problem": self.fingerprint(p), "steps": list(steps)})
            for p, steps in items
        ]
        wanted = [k for k in keys if k not in self._scores]
        stored = self.store.get_many("score", wanted, parse=_step_scores)
        self._scores.update(stored)
        todo: dict[str, ScoreRequest] = {}
        for (p, steps), k in zip(items, keys, strict=True):
            if k not in self._scores and k not in todo:
                todo[k] = ScoreRequest(p, tuple(steps))
        cut = self.truncated.setdefault(content_key(prm.identity), set())
        stage, computed = f"score {prm.name}", 0

        def score(batches: list[tuple[str, ScoreRequest]]) -> None:
            nonlocal computed
            for start in range(0, len(batches), SCORE_BATCH):
                batch = batches[start : start + SCORE_BATCH]
                self.store.put_many("score", self._score(prm, batch), self.run_id)
                computed += len(batch)
                self.progress(stage, computed, len(todo))

        def stored_by_others(unit_keys: list[str]) -> set[str]:
            found = self.store.get_many("score", unit_keys, parse=_step_scores)
            self._scores.update(found)
            return set(found)

        work = {k: (k, r) for k, r in todo.items()}
        self.claims.share("score", work, stored_by_others, score, SCORE_BATCH)
        self.stats.add("score", len(stored) + len(todo) - computed, computed)
        cut.update(k for k in keys if self._scores[k].truncated)
        return [self._scores[k] for k in keys]

    def _score(self, prm: Component, batch: list[tuple[str, ScoreRequest]]) -> dict[str, Any]:
        """One PRM call for ``batch``; what to store."""
        outputs = prm.instance.score([r for _, r in batch])
        if len(outputs) != len(batch):
            raise PrmhError(
                f"PRM {prm.name!r} returned {len(outputs)} results for {len(batch)} "
                "solutions; this is a bug in the PRM."
            )
        fresh = {}
        for (key, request), out in zip(batch, outputs, strict=True):
            _check_scores(prm.name, request, out)
            self._scores[key] = out
            fresh[key] = out.to_json()
        return fresh


def _generation(value: Any) -> Generation:
    """A stored generation, or TypeError when the entry has another shape (damaged)."""
    generation = Generation.from_json(value)
    if not isinstance(generation.text, str) or not isinstance(generation.finished, bool):
        raise TypeError("not a generation")
    return generation


def _step_scores(value: Any) -> StepScores:
    scores = StepScores.from_json(value)
    if not all(isinstance(p, int | float) for p in scores.probs):
        raise TypeError("not step scores")
    return scores


def _grade_entry(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("correct"), bool):
        raise TypeError("not a grade")
    return value


def _check_scores(name: str, request: ScoreRequest, out: StepScores) -> None:
    """A PRM's output before it is stored: one probability in [0, 1] per step."""
    if len(out.probs) != len(request.steps):
        raise PrmhError(
            f"PRM {name!r} gave {len(out.probs)} scores for a solution of "
            f"{len(request.steps)} steps; this is a bug in the PRM."
        )
    values = [*out.probs, *(q for row in out.quantiles or () for q in row)]
    bad = next((p for p in values if not 0.0 <= p <= 1.0), None)  # nan fails too
    if bad is not None:
        raise PrmhError(
            f"PRM {name!r} returned {bad!r} for problem {request.problem.id!r}; a PRM's scores "
            "are probabilities in [0, 1]. Nothing of this batch was stored; fix the PRM."
        )


def _runs(indices: list[int]) -> list[list[int]]:
    """Split sorted indices into runs of consecutive numbers."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


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
    progress: Progress = _no_progress,
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
    table = _table(
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


def grade_pairs(
    store: Store,
    run_id: str,
    grader: Grader,
    pairs: Iterable[tuple[str, str]],
    pool: GraderPool,
    stats: CacheStats,
    progress: Progress = _no_progress,
    timeout: float = 5.0,
) -> tuple[dict[tuple[str, str], bool], dict[str, int]]:
    """Verdicts for (answer, gold) pairs: from the store, else graded in the worker pool and
    stored; also how many answers were graded, timed out or broke the grader."""
    ordered = sorted(set(pairs))
    keys = {
        pair: content_key(
            {
                "grader": grader.name,
                "version": grader.version,
                "prediction": pair[0],
                "gold": pair[1],
            }
        )
        for pair in ordered
    }
    stored = store.get_many("grade", keys.values(), parse=_grade_entry)
    # a grade that timed out under a shorter limit than this run's is graded again
    stored = {
        k: v
        for k, v in stored.items()
        if not (v.get("timed_out") and v.get("timeout", 0.0) < timeout)
    }
    verdicts = {pair: stored[k]["correct"] for pair, k in keys.items() if k in stored}
    outcomes = [stored[k] for k in keys.values() if k in stored]
    todo = [pair for pair in ordered if pair not in verdicts]
    stats.add("grade", len(verdicts), len(todo))
    if todo:
        graded = pool.grade(
            [(grader.name, a, g) for a, g in todo],
            timeout=timeout,
            on_progress=lambda done: progress("grade", done, len(todo)),
        )
        fresh = {}
        for pair, verdict in zip(todo, graded, strict=True):
            verdicts[pair] = verdict.correct
            fresh[keys[pair]] = {
                "correct": verdict.correct,
                "timed_out": verdict.timed_out,
                "timeout": timeout,
                "error": verdict.error,
            }
        store.put_many("grade", fresh, run_id, replace=True)
        outcomes += fresh.values()
    counts = {
        "answers": len(outcomes),
        "timed_out": sum(bool(o.get("timed_out")) for o in outcomes),
        "errors": sum(o.get("error") is not None for o in outcomes),
    }
    return verdicts, counts


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


def _fraction_correct(
    picks: tuple[str | None, ...], gold: str, verdicts: dict[tuple[str, str], bool]
) -> float:
    return sum(_correct(a, gold, verdicts) for a in picks) / len(picks)


def _correct(answer: str | None, gold: str, verdicts: dict[tuple[str, str], bool]) -> bool:
    return answer is not None and verdicts[(answer, gold)]


def _table(
    plan: EvalPlan,
    task_spec: Spec,
    gen_spec: Spec,
    problems: list[Problem],
    keys: AnswerKeys,
    answers: dict[tuple, list[list[tuple[str | None, ...]]]],
    compute: dict[tuple, list[list[Compute]]],
    pool_answers: list[list[list[str | None]]],
    verdicts: dict[tuple[str, str], bool],
) -> dict[str, Any]:
    golds, grader = [p.answer for p in problems], keys.grader
    columns = [{"search": s.label, "budget": b} for s in plan.search for b in plan.budget]
    rows: list[dict[str, Any]] = []
    # Reference rows from the pool alone: unbiased pass@N and majority vote over the first N.
    pass_cells, majority_cells = [], []
    for budget in plan.budget:
        passes = np.array(
            [
                [
                    pass_at_k(len(samples), sum(_correct(a, g, verdicts) for a in samples), budget)
                    for samples, g in zip(seed_rows, golds, strict=True)
                ]
                for seed_rows in pool_answers
            ]
        )
        majority = np.array(
            [
                [
                    _correct(_majority(samples[:budget], keys), g, verdicts)
                    for samples, g in zip(seed_rows, golds, strict=True)
                ]
                for seed_rows in pool_answers
            ]
        )
        pass_cells.append({"budget": budget, **bootstrap_mean(passes).to_json()})
        majority_cells.append({"budget": budget, **bootstrap_mean(majority).to_json()})
    rows.append({"kind": "reference", "label": "pass@N", "cells": pass_cells})
    rows.append({"kind": "reference", "label": "majority@N", "cells": majority_cells})
    row_keys = list(dict.fromkeys(k[0] for k in answers))
    for row in row_keys:
        cells = []
        for column in columns:
            key = (row, column["search"], column["budget"])
            correct = np.array(
                [
                    [
                        _fraction_correct(a, g, verdicts)
                        for a, g in zip(seed_row, golds, strict=True)
                    ]
                    for seed_row in answers[key]
                ]
            )
            spent = [c for seed_row in compute[key] for c in seed_row]
            n = max(1, len(spent))
            cells.append(
                {
                    **column,
                    **bootstrap_mean(correct).to_json(),
                    "compute": {
                        "generated_tokens": sum(c.generated_tokens for c in spent) / n,
                        "prm_tokens": sum(c.prm_tokens for c in spent) / n,
                        "prm_calls": sum(c.prm_calls for c in spent) / n,
                        "wall_seconds": sum(c.wall_seconds for c in spent) / n,
                    },
                    # per problem (mean over seeds): what paired comparisons between rows need
                    "per_problem": [round(float(x), 6) for x in correct.mean(axis=0)],
                }
            )
        rows.append(
            {
                "kind": "prm",
                "prm": row.prm.label,
                "splitter": row.splitter.label,
                "agg": row.agg.label,
                "selector": row.selector.label,
                "cells": cells,
            }
        )
    return {
        "task": task_spec.label,
        "generator": gen_spec.label,
        "grader": {"name": grader.name, "version": grader.version},
        "problems": len(problems),
        "problem_ids": [p.id for p in problems],
        "seeds": list(plan.seed),
        "pool": plan.pool,
        "columns": columns,
        "rows": rows,
    }


def _majority(samples: Sequence[str | None], keys: Callable[[str], str]) -> str | None:
    i = majority_index(samples, keys)
    return None if i is None else samples[i]
