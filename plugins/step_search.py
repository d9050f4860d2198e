"""Step-level searches: beam search, diverse verifier tree search (DVTS) and beam search with
instance-adaptive sampling (beam-ias), batched across all problems of a run.

Each round asks the generator, for every problem at once, to continue each selected beam up to
the end of its next step (the ``separator``), scores every new partial solution with the PRM
(cached, so a surviving beam is never scored twice), and lets a policy choose which beams go on
and how many children each gets. Beams that finish are kept; the search of a problem ends when
it holds ``budget`` finished beams, has no live beam, or reaches ``max_steps``. Only finished
solutions are returned. Budget N means at most N beams are expanded per round per problem.

- ``beam``: keep the best N/M beams, M children each (width M).
- ``dvts``: N/M independent subtrees; each keeps its best beam and gives it M children.
- ``beam-ias``: every ``freq`` rounds, keep K beams and give each M children, K and M from a
  calibrated PRM's lower quantile (IAS-of-K, IAS-of-M); between those rounds every beam rolls
  forward with one child. With a PRM that gives no quantiles it is exactly ``beam``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prmh import Candidate, Compute, Problem, SearchResult, Solution, StepScores
from prmh.errors import PrmhError
from prmh.plugins.ias import ias_of_k, ias_of_m
from prmh.types import Generation


@dataclass
class Beam:
    text: str
    group: int = 0
    candidate: Candidate | None = None


@dataclass
class ProblemState:
    problem: Problem
    active: list[Beam] = field(default_factory=lambda: [Beam("")])
    done: list[Candidate] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    compute: Compute = field(default_factory=Compute)


def continued(parent: Generation | None, separator: str, g: Generation) -> Generation:
    """A partial solution (None: none yet), the separator and its continuation ``g`` as one
    generation, with their tokens and log-probabilities when both have them (the separator
    a sure token), so a splitter that reads tokens reads it as it read them."""
    if parent is None or not parent.text:
        return Generation(g.text, g.finished, g.num_tokens, g.token_logprobs, g.tokens, g.stop)
    tokens = logprobs = None
    if None not in (parent.tokens, parent.token_logprobs, g.tokens, g.token_logprobs):
        tokens = (*parent.tokens, separator, *g.tokens)  # type: ignore[misc]
        logprobs = (*parent.token_logprobs, 0.0, *g.token_logprobs)  # type: ignore[misc]
    text = parent.text + separator + g.text
    return Generation(text, g.finished, g.num_tokens, logprobs, tokens, stop=g.stop)


def level(scores: StepScores, index: int) -> StepScores:
    """The step scores of one quantile level (the plain probabilities when there are none)."""
    if scores.quantiles is None:
        return scores
    return StepScores(tuple(q[index] for q in scores.quantiles))


class StepSearch:
    """The shared loop; ``choose`` decides which beams continue and with how many children."""

    def __init__(
        self,
        width: int = 4,
        freq: int = 1,
        max_steps: int = 40,
        separator: str | None = None,
        dedupe: bool = False,
    ):
        if width < 1 or freq < 1 or max_steps < 1:
            raise PrmhError("beam searches need width, freq and max_steps of at least 1.")
        if separator == "":
            raise PrmhError("the step separator must not be empty.")
        self.width, self.freq, self.max_steps = width, freq, max_steps
        self.separator, self.dedupe = separator, dedupe  # None: the splitter's (ctx.separator)
        self.step_end = separator or "\n\n"

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        states = [ProblemState(p) for p in problems]
        self.step_end = self.separator or getattr(ctx, "separator", "\n\n")
        self._check_separator(ctx)
        if budget % min(self.width, budget):
            kept = budget // self.width
            ctx.warn(
                f"N={budget} is not a multiple of the width {self.width}: after the first step "
                f"at most {kept} beam(s) of {self.width} children, {kept * self.width} samples "
                "a round (the releases take N as a multiple of the width)"
            )
        for round_ in range(self.max_steps):
            work = [(s, b, n) for s in states for b, n in self.expansions(ctx, s, budget, round_)]
            if not work:
                break
            if any(sum(n for t, _, n in work if t is s) > budget for s in states):
                raise AssertionError("a search expanded more beams than its budget")
            children = ctx.extend(self._requests(work), seed, (self.step_end,))
            born: list[tuple[ProblemState, Beam, Solution]] = []
            for (state, parent, _), generations in zip(work, children, strict=True):
                state.compute = state.compute + Compute(
                    generated_tokens=sum(g.num_tokens for g in generations),
                    wall_seconds=sum(g.seconds for g in generations),
                )
                for g in generations:
                    child = self._child(ctx, parent, g)
                    if child is not None and not (self.dedupe and child[0].text in state.seen):
                        state.seen.add(child[0].text)
                        born.append((state, *child))
            ranked, costs = ctx.rank([(s.problem, solution) for s, _, solution in born])
            for state in states:
                state.active = []
            for (state, beam, solution), candidate, cost in zip(born, ranked, costs, strict=True):
                state.compute = state.compute + cost
                beam.candidate = candidate
                if solution.generation.finished:
                    if solution.finished:  # has an answer
                        state.done.append(candidate)
                elif solution.generation.stop is not None:
                    state.active.append(beam)
            for state in states:
                if len(state.done) >= budget:
                    state.active = []
        return [SearchResult(s.problem.id, tuple(s.done[:budget]), s.compute) for s in states]

    def _check_separator(self, ctx) -> None:
        """Warn when the search ends steps elsewhere than the splitter the PRM reads them with."""
        splitter = getattr(getattr(ctx, "splitter", None), "instance", None)
        declared = getattr(splitter, "separator", None)
        if self.separator and isinstance(declared, str) and declared != self.separator:
            ctx.warn(
                f"steps end at {self.separator!r} in the search but at {declared!r} in the "
                "splitter, so the PRM scores the steps the splitter cuts (each partial solution "
                "may read as one step, re-read every round); use a splitter that ends steps at "
                f"{self.separator!r} (--splitter 'separator:at=...') and no separator= option"
            )

    def _requests(self, work: list[tuple[ProblemState, Beam, int]]) -> list[tuple]:
        """(problem, prefix, n, first index): copies of one beam draw different samples."""
        used: dict[tuple[str, str], int] = {}
        requests = []
        for state, beam, n in work:
            prefix = self._prefix(beam)
            key = (state.problem.id, prefix)
            requests.append((state.problem, prefix, n, used.get(key, 0)))
            used[key] = used.get(key, 0) + n
        return requests

    def _prefix(self, beam: Beam) -> str:
        return beam.text + self.step_end if beam.text else ""

    def _child(self, ctx, parent: Beam, g: Generation) -> tuple[Beam, Solution] | None:
        if not g.text.strip() and not g.finished:
            return None  # an empty step makes no progress
        before = parent.candidate.solution.generation if parent.candidate else None
        generation = continued(before, self.step_end, g)
        return Beam(generation.text, parent.group), ctx.read(generation)

    def expansions(
        self, ctx, state: ProblemState, budget: int, round_: int
    ) -> list[tuple[Beam, int]]:
        """(beam, children) for this round; the first round samples ``budget`` first steps."""
        if round_ == 0:
            return [(state.active[0], budget)]
        if not state.active:
            return []
        if round_ % self.freq:
            return [(b, 1) for b in state.active]  # roll forward between pruning rounds
        return self.choose(ctx, state.active, budget)

    def choose(self, ctx, active: list[Beam], budget: int) -> list[tuple[Beam, int]]:
        raise NotImplementedError


def _best(beams: Sequence[Beam], key=lambda b: b.candidate.score) -> list[Beam]:
    """Best first; ties keep the earlier beam."""
    return sorted(beams, key=key, reverse=True)


class BeamSearch(StepSearch):
    """Keep the best budget/width beams; each gets ``width`` children."""

    def choose(self, ctx, active: list[Beam], budget: int) -> list[tuple[Beam, int]]:
        width = min(self.width, budget)
        return [(b, width) for b in _best(active)[: max(1, budget // width)]]


class DVTS(StepSearch):
    """budget/width independent subtrees, each expanded greedily: its best beam, width children."""

    def expansions(
        self, ctx, state: ProblemState, budget: int, round_: int
    ) -> list[tuple[Beam, int]]:
        if round_ == 1:  # assign the first steps to subtrees, round-robin
            trees = max(1, budget // min(self.width, budget))
            for i, beam in enumerate(state.active):
                beam.group = i % trees
        return super().expansions(ctx, state, budget, round_)

    def choose(self, ctx, active: list[Beam], budget: int) -> list[tuple[Beam, int]]:
        width = min(self.width, budget)
        best: dict[int, Beam] = {}
        for beam in _best(active):
            best.setdefault(beam.group, beam)
        return [(b, width) for b in best.values()][: max(1, budget // width)]


UNCALIBRATED = (
    "the PRM gives no quantiles, so every problem kept every beam: this is beam search by "
    "another name; calibrate the PRM (`prmh calibrate`) or use --search beam"
)


class BeamIAS(StepSearch):
    """Beam search whose beam count (IAS-of-K) and children per beam (IAS-of-M) follow a
    calibrated PRM's lower quantile; beams are ranked by the median quantile."""

    def __init__(
        self,
        width: int = 8,
        freq: int = 5,
        max_steps: int = 40,
        separator: str | None = None,
        dedupe: bool = False,
        confidence: float = 0.99,
        ias_k: bool = True,
        ias_m: bool = False,
        rank_level: int = 1,
        decide_level: int = 0,
    ):
        super().__init__(width, freq, max_steps, separator, dedupe)
        if not 0 < confidence < 1:
            raise PrmhError(f"confidence must be in (0, 1), got {confidence}.")
        self.confidence, self.ias_k, self.ias_m = confidence, ias_k, ias_m
        self.rank_level, self.decide_level = rank_level, decide_level

    def _level_score(self, ctx, beam: Beam, index: int) -> float:
        return ctx.aggregate(level(beam.candidate.scores, index))

    def choose(self, ctx, active: list[Beam], budget: int) -> list[tuple[Beam, int]]:
        m_max = min(self.width, budget)
        k_max = max(1, budget // m_max)
        if active[0].candidate.scores.quantiles is None:  # uncalibrated: plain beam search
            ctx.warn(UNCALIBRATED)
            return [(b, m_max) for b in _best(active)[:k_max]]
        ranked = _best(active, key=lambda b: self._level_score(ctx, b, self.rank_level))
        lower = [self._level_score(ctx, b, self.decide_level) for b in ranked]
        k = ias_of_k(lower, m_max, k_max, self.confidence) if self.ias_k else k_max
        kept = ranked[:k]
        m = ias_of_m(lower[:k], k_max, m_max, self.confidence) if self.ias_m else m_max
        return [(b, m) for b in kept]
