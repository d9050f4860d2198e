"""The workspace of one (task, generator): cached generation and PRM scoring through the store.

Everything a search or a command asks for goes through here: from memory, else the store,
else the generator or PRM, in batches that are each one transaction, claimed first so that
several processes on one results directory split the work (``prmh.claims``). A damaged store
entry is computed again; a PRM's scores are checked before they are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prmh.claims import Claims
from prmh.entries import check_scores, stored_generation, stored_scores
from prmh.errors import PrmhError
from prmh.packing import as_stored, pack_generation
from prmh.registry import Component
from prmh.store import Store, content_key
from prmh.types import Generation, Problem, SampleRequest, ScoreRequest, Solution, StepScores

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: how far a long stage has got."""

GENERATION_BATCH = 32  # problems per generator call and per transaction
SCORE_BATCH = 64  # solutions per PRM call and per transaction


def no_progress(stage: str, done: int, total: int) -> None:
    pass


def read_solution(task: Any, splitter: Any, generation: Generation) -> Solution:
    """A generation as a task and a splitter read it: steps and final answer."""
    if hasattr(splitter, "split_generation"):
        steps = tuple(splitter.split_generation(generation))
    else:
        steps = tuple(splitter.split(generation.text))
    return Solution(generation, steps, task.extract_answer(generation.text))


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
        task: Component | None,
        generator: Component | None,
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
        self._fingerprints: dict[tuple[str, str], str] = {}
        self._keys: dict[tuple, str] = {}  # content keys already computed, by what they hash
        self.shared: dict[tuple, tuple] = {}  # what cells share: pools as read, first rankings
        self.claims = Claims(store, run_id)

    def fingerprint(self, problem: Problem) -> str:
        memo = (problem.id, problem.question)  # ids alone may repeat across an analysis' tasks
        fp = self._fingerprints.get(memo)
        if fp is None:
            fp = self._fingerprints[memo] = problem_fingerprint(problem)
        return fp

    def _generation_key(self, request: SampleRequest, index: int) -> str:
        memo = (request.problem.id, request.prompt, request.seed, index, request.prefix,
                tuple(request.stop), request.temperature, request.top_logprobs,
                request.pause_below)  # fmt: skip
        known = self._keys.get(memo)
        if known is None:
            known = self._keys[memo] = self._new_generation_key(request, index)
        return known

    def _new_generation_key(self, request: SampleRequest, index: int) -> str:
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
        for name in ("top_logprobs", "pause_below"):  # part of the key only when asked for
            if getattr(request, name):
                key[name] = getattr(request, name)
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
        stored = self.store.get_many("generation", wanted, parse=stored_generation)
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
                "generation", [k for ks in rows.values() for k in ks], parse=stored_generation
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
                self._generations[key] = sample = as_stored(sample)
                fresh[key] = pack_generation(sample)
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
        keys = [self._score_key(prm, p, steps) for p, steps in items]
        wanted = [k for k in keys if k not in self._scores]
        stored = self.store.get_many("score", wanted, parse=stored_scores)
        self._scores.update(stored)
        todo: dict[str, ScoreRequest] = {}
        for (p, steps), k in zip(items, keys, strict=True):
            if k not in self._scores and k not in todo:
                todo[k] = ScoreRequest(p, tuple(steps))
        cut = self.truncated.setdefault(content_key(prm.identity), set())
        stage, computed = f"score {prm.name}", 0
        if todo:  # the clock starts here, not when the first batch is scored
            self.progress(stage, 0, len(todo))

        def score(batches: list[tuple[str, ScoreRequest]]) -> None:
            nonlocal computed
            for start in range(0, len(batches), SCORE_BATCH):
                batch = batches[start : start + SCORE_BATCH]
                self.store.put_many("score", self._score(prm, batch), self.run_id)
                computed += len(batch)
                self.progress(stage, computed, len(todo))

        def stored_by_others(unit_keys: list[str]) -> set[str]:
            found = self.store.get_many("score", unit_keys, parse=stored_scores)
            self._scores.update(found)
            return set(found)

        work = {k: (k, r) for k, r in todo.items()}
        self.claims.share("score", work, stored_by_others, score, SCORE_BATCH)
        self.stats.add("score", len(stored) + len(todo) - computed, computed)
        cut.update(k for k in keys if self._scores[k].truncated)
        return [self._scores[k] for k in keys]

    def _score_key(self, prm: Component, problem: Problem, steps: tuple[str, ...]) -> str:
        memo = (id(prm), problem.id, problem.question, tuple(steps))
        known = self._keys.get(memo)
        if known is None:
            key = {"prm": prm.identity, "problem": self.fingerprint(problem), "steps": list(steps)}
            known = self._keys[memo] = content_key(key)
        return known

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
            check_scores(prm.name, request, out)
            self._scores[key] = out
            fresh[key] = out.to_json()
        return fresh


def _runs(indices: list[int]) -> list[list[int]]:
    """Split sorted indices into runs of consecutive numbers."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
