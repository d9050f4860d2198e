"""The values that flow between components: problems, solutions, step scores, search results.

All are frozen dataclasses of plain data so they hash, compare, cross process boundaries and
round-trip through JSON (``to_json``/``from_json``) for the store and run records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def _tuple(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer (and gold steps when the task knows them)."""

    id: str
    question: str
    answer: str
    steps: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Generation:
    """What a generator returns: raw text and what producing it cost.

    ``tokens`` (the text of each generated token, joining to ``text``) and ``token_logprobs``
    (the log-probability of each sampled token) are optional; confidence-based splitting and
    uncertainty measures need them. ``finished`` says the solution ended (end of sequence or one
    of the generator's end markers); ``stop`` is the request's stop string that ended it
    instead, if any (then ``text`` ends before it). ``top_logprobs``, when asked for, holds
    each token's likeliest (token, log-probability) alternatives.
    """

    text: str
    finished: bool
    num_tokens: int
    token_logprobs: tuple[float, ...] | None = None
    tokens: tuple[str, ...] | None = None
    stop: str | None = None
    seconds: float = field(default=0.0, compare=False)
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out = _fields(self)
        if self.top_logprobs is None:  # absent unless asked for, as in older stores
            del out["top_logprobs"]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Generation:
        out = {k: _tuple(v) for k, v in d.items()}
        if d.get("top_logprobs") is not None:
            out["top_logprobs"] = tuple(tuple(map(tuple, a)) for a in d["top_logprobs"])
        return cls(**out)


@dataclass(frozen=True)
class Solution:
    """A generation read by a task and a splitter: its steps and final answer."""

    generation: Generation
    steps: tuple[str, ...]
    answer: str | None

    @property
    def text(self) -> str:
        return self.generation.text

    @property
    def finished(self) -> bool:
        return self.generation.finished and self.answer is not None

    @property
    def num_tokens(self) -> int:
        return self.generation.num_tokens


@dataclass(frozen=True)
class StepScores:
    """A PRM's verdict on each step: P(step k is still on a good path), optional quantiles.

    ``quantiles[k]`` holds one value per level in ``quantile_levels`` for step k.
    ``truncated`` says the solution was cut to fit the PRM's maximum length. ``num_tokens`` is
    what reading the solution alone costs; ``tail_tokens`` what a PRM that keeps the previous
    steps' KV cache (``reuses_prefixes``) reads when the same steps but the last were scored
    just before (None: it cannot say).
    """

    probs: tuple[float, ...]
    quantiles: tuple[tuple[float, ...], ...] | None = None
    quantile_levels: tuple[float, ...] | None = None
    num_tokens: int = 0
    truncated: bool = False
    tail_tokens: int | None = None
    seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepScores:
        d = dict(d)
        if d.get("quantiles") is not None:
            d["quantiles"] = tuple(tuple(q) for q in d["quantiles"])
        return cls(**{k: _tuple(v) for k, v in d.items()})


@dataclass(frozen=True)
class Compute:
    """What a search spent: tokens generated, tokens the PRM read, PRM calls, wall seconds;
    each solution or beam it scored is charged its PRM call, the same one two equal beams
    share included (what the search costs without prmh's cache)."""

    generated_tokens: int = 0
    prm_tokens: int = 0
    prm_calls: int = 0
    wall_seconds: float = 0.0

    def __add__(self, other: Compute) -> Compute:
        return Compute(
            self.generated_tokens + other.generated_tokens,
            self.prm_tokens + other.prm_tokens,
            self.prm_calls + other.prm_calls,
            self.wall_seconds + other.wall_seconds,
        )

    @classmethod
    def total(cls, items: Iterable[Compute]) -> Compute:
        """The sum of ``items`` (``Compute()`` for none), in one pass."""
        tokens = prm_tokens = calls = 0
        seconds = 0.0
        for c in items:
            tokens += c.generated_tokens
            prm_tokens += c.prm_tokens
            calls += c.prm_calls
            seconds += c.wall_seconds
        return cls(tokens, prm_tokens, calls, seconds)


@dataclass(frozen=True)
class Candidate:
    """A finished solution with its step scores, as a search hands it to selectors."""

    solution: Solution
    scores: StepScores
    score: float


@dataclass(frozen=True)
class SearchResult:
    """A search's outcome for one problem: scored candidates and what finding them cost.

    ``chosen`` is the index of the candidate a selector picked; searches leave it None and
    prmh sets it per selector, since selection is post-processing. ``subsets`` (optional) are
    groups of candidate indices to select from separately, e.g. random N-subsets of a larger
    pool; the problem's accuracy is then the mean over them.
    """

    problem_id: str
    candidates: tuple[Candidate, ...]
    compute: Compute
    chosen: int | None = None
    subsets: tuple[tuple[int, ...], ...] | None = None

    @property
    def solution(self) -> Solution | None:
        return None if self.chosen is None else self.candidates[self.chosen].solution

    @property
    def answer(self) -> str | None:
        solution = self.solution
        return None if solution is None else solution.answer


@dataclass(frozen=True)
class SampleRequest:
    """Ask a generator for samples ``first_index .. first_index + n - 1`` of one prompt.

    ``prefix`` is solution text already written (the generator continues after it); ``stop``
    strings end a sample early, e.g. at the end of the next step for step-level search;
    ``temperature`` overrides the generator's (0 is greedy decoding). ``top_logprobs`` asks
    for each token's most likely alternatives; ``pause_below`` lets a generator end a sample
    right after its first token of lower probability (TVD's low-confidence tokens).
    """

    problem: Problem
    prompt: str
    n: int
    seed: int
    first_index: int = 0
    prefix: str = ""
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    top_logprobs: int = 0
    pause_below: float = 0.0


@dataclass(frozen=True)
class ScoreRequest:
    """Ask a PRM to score the steps of one solution to one problem."""

    problem: Problem
    steps: tuple[str, ...]


@dataclass(frozen=True)
class RolloutValue:
    """What continuing a prefix ``n`` times gave: the success rate, UnPRM's perplexity-weighted
    rate (each continuation weighted by exp(mean token log-probability)), each continuation's
    outcome in order, and the tokens generated."""

    rate: float
    weighted: float
    outcomes: tuple[bool, ...]
    tokens: int


@dataclass(frozen=True)
class StepLabels:
    """A labeler's verdict on a solution: one label per step in [0, 1] (None when the labeler
    skipped the solution), the first wrong step if it found one, and what it spent."""

    labels: tuple[float, ...] | None
    error_step: int | None
    rollouts: int
    tokens: int


def _fields(obj: Any) -> dict[str, Any]:
    """A flat dataclass's fields as a dict (tuples kept, not deep-copied as ``asdict`` does:
    it cost a second per 3,200 generations)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
