"""What each kind of component must provide, as typed ``Protocol`` classes.

A factory registered through ``prmh_register_<kind>`` returns an object that satisfies the
kind's protocol (``KIND_PROTOCOLS``); the optional protocols are capabilities prmh uses when a
component has them. ``SearchContext`` is everything a search may call. ``docs/plugins.md``
documents every member here (a test keeps the two in step), and every built-in component is
checked against its protocol. Annotate a plugin's classes with them to let a type checker help::

    from prmh.protocols import SearchContext
    def run(self, ctx: SearchContext, problems, budget, seed): ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from prmh.types import (
    Candidate,
    Compute,
    Generation,
    Problem,
    RolloutValue,
    SampleRequest,
    ScoreRequest,
    SearchResult,
    Solution,
    StepLabels,
    StepScores,
)


@runtime_checkable
class Task(Protocol):
    """A set of problems with a prompt and a grader."""

    name: str
    grader: str  # a registered grader (prmh list grader) or an importable module:function

    def problems(self, limit: int | None) -> list[Problem]: ...

    def prompt(self, problem: Problem) -> str: ...

    def extract_answer(self, text: str) -> str | None: ...


@runtime_checkable
class Generator(Protocol):
    """What writes solutions."""

    def sample(self, requests: list[SampleRequest]) -> list[list[Generation]]: ...


@runtime_checkable
class Splitter(Protocol):
    """A solution's text to steps and back: ``split(join(steps)) == steps``."""

    def split(self, text: str) -> list[str]: ...

    def join(self, steps: list[str]) -> str: ...


@runtime_checkable
class SplitsGenerations(Protocol):
    """Optional for a splitter: steps from the whole generation (tokens, log-probabilities),
    used instead of ``split(text)``."""

    def split_generation(self, generation: Generation) -> list[str]: ...


@runtime_checkable
class FitsPool(Protocol):
    """Optional for a splitter: fitted once on every pooled generation of a table before any
    search runs (say, a confidence threshold); what it returns is kept in the table."""

    def fit(self, generations: list[Generation]) -> dict[str, Any]: ...


@runtime_checkable
class PRM(Protocol):
    """A process reward model: one ``StepScores`` per request, one probability per step."""

    def score(self, requests: list[ScoreRequest]) -> list[StepScores]: ...


@runtime_checkable
class Aggregator(Protocol):
    """A solution's step scores to one number; no steps scores the lowest."""

    def __call__(self, scores: StepScores) -> float: ...


@runtime_checkable
class ReusesPrefixes(Protocol):
    """Optional for a PRM: ``reuses_prefixes = True`` says it keeps recently scored
    solutions' KV caches, so scoring steps 1..k right after steps 1..k-1 reads only the new
    step; the search context then charges ``StepScores.tail_tokens`` for it."""

    reuses_prefixes: bool


@runtime_checkable
class WholeSolution(Protocol):
    """Optional for an aggregator: ``whole = True`` asks the search context to score each
    solution's text as one step (a PRM call of its own) instead of aggregating."""

    whole: bool


@runtime_checkable
class Selector(Protocol):
    """Scored candidates to the index of the chosen one (None when there is none);
    ``answer_key`` maps an answer to its vote key."""

    def __call__(
        self, candidates: list[Candidate], answer_key: Callable[[str], str]
    ) -> int | None: ...


@runtime_checkable
class SearchContext(Protocol):
    """Everything a search may use: cached sampling, continuation and scoring of one (task,
    generator, PRM, splitter, aggregator). A search never touches the store itself."""

    pool_size: int  # samples per problem in the run's shared pool (best-of-N reads prefixes)
    separator: str  # what ends a step in the text (the splitter's), where step searches stop

    def aggregate(self, scores: StepScores) -> float: ...

    def warn(self, message: str) -> None: ...

    def read(self, generation: Generation) -> Solution: ...

    def prompt(self, problem: Problem) -> str: ...

    def pool(
        self, problems: Sequence[Problem], n: int, seed: int, temperature: float | None = None
    ) -> list[list[Solution]]: ...

    def extend(
        self,
        items: Sequence[tuple[Problem, str, int, int]],
        seed: int,
        stop: tuple[str, ...],
        *,
        top_logprobs: int = 0,
        pause_below: float = 0.0,
    ) -> list[list[Generation]]: ...

    def score(
        self, problems: Sequence[Problem], pools: Sequence[Sequence[Solution]]
    ) -> list[list[StepScores]]: ...

    def score_steps(self, items: Sequence[tuple[Problem, tuple[str, ...]]]) -> list[StepScores]: ...

    def question_scores(self, problems: Sequence[Problem]) -> list[StepScores]: ...

    def rank(
        self, items: Sequence[tuple[Problem, Solution]]
    ) -> tuple[list[Candidate], list[Compute]]: ...

    def rank_pools(
        self, problems: Sequence[Problem], pools: Sequence[Sequence[Solution]]
    ) -> list[tuple[list[Candidate], list[Compute]]]: ...


@runtime_checkable
class Search(Protocol):
    """A search strategy: one ``SearchResult`` per problem, in order."""

    def run(
        self, ctx: SearchContext, problems: list[Problem], budget: int, seed: int
    ) -> list[SearchResult]: ...


@runtime_checkable
class SharesBudgets(Protocol):
    """Optional for a search: every budget of a cell in one call, one list of results per
    budget in the order given (best-of-N scores the largest pool once and reads each budget
    as its prefix). The engine calls it instead of ``run`` once per budget; the results must
    be the ones ``run`` gives."""

    def run_budgets(
        self, ctx: SearchContext, problems: list[Problem], budgets: list[int], seed: int
    ) -> list[list[SearchResult]]: ...


Rollout = Callable[[int, int], RolloutValue]
"""``rollout(k, n)``: the prefix of the first ``k`` steps continued ``n`` times."""


@runtime_checkable
class Labeler(Protocol):
    """Per-step correctness labels for one solution."""

    def label(
        self,
        problem: Problem,
        steps: Sequence[str],
        correct: bool,
        rollout: Rollout,
        uncertainty: Sequence[float] | None = None,
    ) -> StepLabels: ...


@runtime_checkable
class Loss(Protocol):
    """A PRM training loss over batched per-step outputs, labels and a mask of real steps."""

    def __call__(self, values: Any, labels: Any, mask: Any) -> Any: ...


@runtime_checkable
class Grader(Protocol):
    """Does a final answer equal the gold one? Runs in grading worker processes. It may also
    say why, as ``(correct, detail)``: the detail is stored with the grade and shown in the
    per-sample results (the code grader names the tests that failed)."""

    def grade(self, prediction: str, gold: str) -> bool | tuple[bool, str]: ...


@runtime_checkable
class CanonicalAnswers(Protocol):
    """Optional for a grader: ``canonical`` (a cheap text form, default: stripped text),
    ``key`` (the form equivalent answers share for votes, computed in the workers; default:
    ``canonical``) and ``version`` (added to the registered version)."""

    version: str

    def canonical(self, answer: str) -> str: ...

    def key(self, answer: str) -> str: ...


@runtime_checkable
class Identified(Protocol):
    """Optional for any component: ``identity_extra``, what its options alone do not pin down
    (say, a fingerprint of the weights it loaded); part of every cache key."""

    identity_extra: dict[str, Any]


CommandFactory = Callable[[], Any]
"""A command factory takes no arguments and returns a ``click.Command``."""

KIND_PROTOCOLS: dict[str, type] = {
    "task": Task,
    "generator": Generator,
    "splitter": Splitter,
    "prm": PRM,
    "aggregator": Aggregator,
    "selector": Selector,
    "search": Search,
    "labeler": Labeler,
    "loss": Loss,
    "grader": Grader,
}
"""Every kind but ``command`` (whose factory is a ``CommandFactory``), to its protocol."""

OPTIONAL: dict[str, tuple[type, ...]] = {
    "splitter": (SplitsGenerations, FitsPool),
    "prm": (ReusesPrefixes,),
    "aggregator": (WholeSolution,),
    "search": (SharesBudgets,),
    "grader": (CanonicalAnswers,),
    "*": (Identified,),
}
"""Optional capabilities by kind (``*``: any kind)."""


def members(protocol: type) -> list[str]:
    """The names a protocol asks for: its attributes and methods."""
    names = [n for n in vars(protocol) if not n.startswith("_") or n == "__call__"]
    names += list(getattr(protocol, "__annotations__", {}))
    return sorted(set(names))
