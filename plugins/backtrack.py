"""tt_scale's hybrid searchers: step-by-step generation that keeps a step only when the PRM
scores it above a threshold, and otherwise goes back and samples it again, hotter. Batched
across problems like beam search: each round one generator call and one PRM call serve every
problem. Rules as in minhpham160603/tt_scale ``tt_scale/searcher/collective_backtrack.py``
(27d9dbe) and ``independent_backtrack.py`` (1c83541); defaults from its ``config.py``.

- ``backtrack`` (collective): the branches of a problem advance together. Each round every
  active branch gets m = max(1, floor(N / branches)) children (one per branch while nothing has
  been retried, unless ``always_expand``); a child passes when its score (the run's aggregator
  over its steps) exceeds ``tau``. With ``passing_minimum`` passing children (counting those
  kept from earlier retries) the best ``keep`` go on; otherwise the parents are retried: they
  are ranked by their children's summed scores, the passing children are kept aside, and
  ceil(keep - r/(R+1) keep) parents stay (r the retry, R ``max_backtracks``). After R retries
  the next round accepts any child (a "jump"). It stops at ``finished`` finished branches.
- ``backtrack-independent``: every branch advances alone with one child per round; a child
  passes at ``tau - 0.05 r``; a failing branch is retried (``expansion_factor`` copies while
  fewer than N branches live) up to R times, then dropped; if every branch is dropped the best
  one is rescued. At most N branches live; it stops at ``finished`` finished branches.

Retry r samples at temperature ``temperature + temperature_step * r`` (collective counts its
first attempt as r = 1, as the release does); ``temperature=-1`` keeps the generator's own.
Empty continuations fail (the release would score the unchanged prefix again).
Budget N: the children sampled per round (collective) or the live branches (independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prmh import Candidate, Compute, Problem, SearchResult
from prmh.errors import PrmhError
from prmh.plugins.step_search import continued
from prmh.types import Generation


@dataclass
class Branch:
    text: str
    score: float = 0.0
    retries: int = 0
    children: float = 0.0  # the summed scores of this round's children (collective)
    candidate: Candidate | None = None


@dataclass
class Child:
    parent: Branch
    branch: Branch
    finished: bool  # the solution ended
    open: bool  # it ended at a step boundary, so it can go on


@dataclass
class State:
    problem: Problem
    active: list[Branch] = field(default_factory=lambda: [Branch("")])
    protected: list[Branch] = field(default_factory=list)
    finished: list[Branch] = field(default_factory=list)
    used: dict[str, int] = field(default_factory=dict)  # samples drawn per prefix
    compute: Compute = field(default_factory=Compute)
    retries: int = 1  # collective: the attempt at the current step
    jumping: bool = False
    threshold: float = 0.0
    stopped: bool = False


class Backtracking:
    """The shared loop; ``expand`` and ``judge`` are each searcher's rules."""

    def __init__(
        self,
        tau: float = 0.6,
        max_backtracks: int = 3,
        finished: int = 4,
        max_steps: int = 30,
        separator: str | None = None,
        temperature: float = 0.7,
        temperature_step: float = 0.1,
    ):
        if max_backtracks < 0 or finished < 1 or max_steps < 1 or separator == "":
            raise PrmhError(
                "backtracking needs max_backtracks >= 0, finished and max_steps >= 1 and a "
                "non-empty separator."
            )
        self.tau, self.max_backtracks, self.finished = tau, max_backtracks, finished
        self.max_steps, self.separator = max_steps, separator  # None: the splitter's
        self.step_end = separator or "\n\n"
        self.temperature, self.temperature_step = temperature, temperature_step

    def heat(self, attempt: int) -> float | None:
        if self.temperature < 0:
            return None
        return self.temperature + self.temperature_step * attempt

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        states = [State(p) for p in problems]
        self.step_end = self.separator or getattr(ctx, "separator", "\n\n")
        for _ in range(self.max_steps):
            work = [(s, *w) for s in states if not s.stopped for w in self.expand(s, budget)]
            if not work:
                break
            children = ctx.extend([self._item(*w) for w in work], seed, (self.step_end,))
            born: list[tuple[State, Branch, Generation]] = []
            for (state, parent, _, _), generations in zip(work, children, strict=True):
                state.compute = state.compute + Compute(
                    generated_tokens=sum(g.num_tokens for g in generations),
                    wall_seconds=sum(g.seconds for g in generations),
                )
                before = parent.candidate.solution.generation if parent.candidate else None
                born += [(state, parent, continued(before, self.step_end, g))
                         for g in generations if g.text.strip()]  # fmt: skip
            ranked, costs = ctx.rank([(s.problem, ctx.read(g)) for s, _, g in born])
            outcomes: dict[int, list[Child]] = {id(s): [] for s in states}
            for (state, parent, g), candidate, cost in zip(born, ranked, costs, strict=True):
                state.compute = state.compute + cost
                branch = Branch(g.text, candidate.score, candidate=candidate)
                child = Child(parent, branch, g.finished, g.stop is not None)
                outcomes[id(state)].append(child)
            for state in states:
                if not state.stopped:
                    self.judge(state, outcomes[id(state)], budget)
        return [
            SearchResult(
                s.problem.id,
                tuple(b.candidate for b in s.finished if b.candidate.solution.finished),
                s.compute,
            )
            for s in states
        ]

    def _item(self, state: State, branch: Branch, n: int, temperature: float | None) -> tuple:
        """Retries of one prefix draw new samples: each prefix counts what it has drawn."""
        prefix = self._prefix(branch)
        first = state.used.get(prefix, 0)
        state.used[prefix] = first + n
        item = (state.problem, prefix, n, first)
        return item if temperature is None else (*item, temperature)

    def _prefix(self, branch: Branch) -> str:
        return branch.text + self.step_end if branch.text else ""

    def expand(self, state: State, budget: int) -> list[tuple[Branch, int, float | None]]:
        raise NotImplementedError

    def judge(self, state: State, children: list[Child], budget: int) -> None:
        raise NotImplementedError


class CollectiveBacktrack(Backtracking):
    def __init__(
        self,
        tau: float = 0.6,
        max_backtracks: int = 3,
        finished: int = 4,
        keep: int = 3,
        passing_minimum: int = 3,
        always_expand: bool = False,
        max_steps: int = 30,
        separator: str | None = None,
        temperature: float = 0.7,
        temperature_step: float = 0.1,
    ):
        super().__init__(
            tau, max_backtracks, finished, max_steps, separator, temperature, temperature_step
        )
        if keep < 1 or passing_minimum < 1:
            raise PrmhError("keep and passing_minimum must be at least 1.")
        self.keep, self.passing_minimum, self.always_expand = keep, passing_minimum, always_expand

    def expand(self, state: State, budget: int) -> list[tuple[Branch, int, float | None]]:
        state.threshold = self.tau
        if state.jumping:  # after max_backtracks retries, the next round takes any child
            state.threshold, state.jumping, state.retries = 0.0, False, 1
        if not state.active:
            return []
        m = max(1, budget // len(state.active))
        if not self.always_expand and state.retries == 1:
            m = 1
        return [(b, m, self.heat(state.retries)) for b in state.active]

    def judge(self, state: State, children: list[Child], budget: int) -> None:
        keep, minimum = min(self.keep, budget), min(self.passing_minimum, budget)
        passing, going_on = 0, []
        for child in children:
            child.parent.children += child.branch.score
            if child.branch.score > state.threshold:
                passing += 1
                if child.finished:
                    state.finished.append(child.branch)
                elif child.open:
                    going_on.append(child.branch)
        if len(state.finished) >= self.finished:
            state.stopped = True
        elif passing + len(state.protected) >= minimum:
            pool = sorted(going_on + state.protected, key=lambda b: b.score, reverse=True)
            state.active, state.retries, state.protected = pool[:keep], 1, []
        else:  # go back: retry the parents whose children scored best
            parents = sorted(state.active, key=lambda b: b.children, reverse=True)
            state.protected += going_on
            kept = math.ceil(keep - state.retries / (self.max_backtracks + 1) * keep)
            state.active = [Branch(b.text, b.score, candidate=b.candidate) for b in parents[:kept]]
            state.retries += 1
            if state.retries > self.max_backtracks:
                state.jumping, state.retries = True, 1


class IndependentBacktrack(Backtracking):
    def __init__(
        self,
        tau: float = 0.6,
        max_backtracks: int = 3,
        finished: int = 2,
        expansion_factor: int = 2,
        max_steps: int = 30,
        separator: str | None = None,
        temperature: float = 0.7,
        temperature_step: float = 0.1,
    ):
        super().__init__(
            tau, max_backtracks, finished, max_steps, separator, temperature, temperature_step
        )
        if expansion_factor < 1:
            raise PrmhError("expansion_factor must be at least 1.")
        self.expansion_factor = expansion_factor

    def expand(self, state: State, budget: int) -> list[tuple[Branch, int, float | None]]:
        return [(b, 1, self.heat(b.retries)) for b in state.active]

    def judge(self, state: State, children: list[Child], budget: int) -> None:
        by_parent = {id(c.parent): c for c in children}
        going_on: list[Branch] = []
        rejected: list[tuple[float, Branch]] = []
        for parent in state.active:
            child = by_parent.get(id(parent))
            score = child.branch.score if child else -1.0
            if child and child.finished:
                state.finished.append(child.branch)
                continue
            if child and child.open and score >= self.tau - 0.05 * parent.retries:
                going_on.append(Branch(child.branch.text, score, candidate=child.branch.candidate))
            elif parent.retries < self.max_backtracks:
                copies = self.expansion_factor if len(going_on) < budget else 1
                going_on += [self._retry(parent) for _ in range(copies)]
            else:
                rejected.append((score, parent))
        if not going_on and rejected:  # rescue the best of the dropped branches
            going_on.append(self._retry(max(rejected, key=lambda r: r[0])[1]))
        if len(going_on) > budget:
            going_on.sort(key=lambda b: (b.score, -b.retries), reverse=True)
        state.active = going_on[:budget]
        state.stopped = len(state.finished) >= self.finished

    @staticmethod
    def _retry(branch: Branch) -> Branch:
        return Branch(branch.text, branch.score, branch.retries + 1, candidate=branch.candidate)
