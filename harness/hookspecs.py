"""Every hook prmh calls, in one file; each hook's docstring is its reference manual.

All hooks have the same shape: prmh calls ``prmh_register_<kind>(register)`` once per plugin
manager and the plugin calls ``register`` for each component it provides. Built-in plugins use
exactly these hooks. ``docs/plugins.md`` documents every hook too (a test keeps the two in step).

``register(name, factory, *, description="", version="0", speed_args=())``:

- ``name``: what users type (``--prm NAME``). Names are unique per kind across all plugins.
- ``factory``: a callable taking keyword arguments (the ``-P key=value`` options) and returning
  the component, or a lazy ``"module:attr"`` string so the plugin module stays cheap to import.
- ``description``: one line for ``prmh list``.
- ``version``: bump it when the component's output changes; it is part of every cache key.
- ``speed_args``: argument names that change only speed or placement (device, batch size),
  never output; they are left out of cache keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("prmh")


class Register(Protocol):
    """The callback every ``prmh_register_<kind>`` hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any] | str,
        *,
        description: str = "",
        version: str = "0",
        speed_args: tuple[str, ...] = (),
    ) -> None: ...


@hookspec
def prmh_register_task(register: Register) -> None:
    """Register tasks: sets of problems with a prompt and a grader.

    The factory returns an object with:

    - ``name: str`` and ``grader: str`` (a registered grader, ``prmh list grader``, or an
      importable ``module:function``);
    - ``problems(limit: int | None) -> list[Problem]``: deterministic, in a fixed order;
    - ``prompt(problem: Problem) -> str``: the text a generator continues;
    - ``extract_answer(text: str) -> str | None``: the final answer in a solution, or None.
    """


@hookspec
def prmh_register_generator(register: Register) -> None:
    """Register generators: what writes solutions.

    The factory returns an object with:

    - ``sample(requests: list[SampleRequest]) -> list[list[Generation]]``: for each request,
      ``request.n`` solutions numbered from ``request.first_index``. Sample ``i`` must depend
      only on (problem, prompt, seed, i) and the generator's arguments, so a pool can grow
      later without changing the samples it already holds. A request may carry a ``prefix``
      to continue and ``stop`` strings (step boundaries) that end a sample early; the
      generation then has ``finished=False`` and ``stop`` set. The task's answer extraction and
      the splitter turn each ``Generation`` into a ``Solution`` afterwards.
    """


@hookspec
def prmh_register_splitter(register: Register) -> None:
    """Register step splitters.

    The factory returns an object with ``split(text: str) -> list[str]`` (the steps of a
    solution, nothing lost but the separators) and ``join(steps: list[str]) -> str`` (the text
    again). ``split(join(steps)) == steps`` for every list ``split`` can produce.
    """


@hookspec
def prmh_register_prm(register: Register) -> None:
    """Register process reward models.

    The factory returns an object with
    ``score(requests: list[ScoreRequest]) -> list[StepScores]``: one ``StepScores`` per request,
    with one probability in [0, 1] per step. The score of step k may depend only on the problem
    and steps 1..k (a prefix scored alone gets the same scores). Batching is the PRM's business.
    """


@hookspec
def prmh_register_aggregator(register: Register) -> None:
    """Register aggregators: step scores to one solution score.

    The factory returns a callable ``(scores: StepScores) -> float``. A solution with no steps
    gets the lowest possible score.
    """


@hookspec
def prmh_register_selector(register: Register) -> None:
    """Register answer selectors: scored candidates to one final answer.

    The factory returns a callable
    ``(candidates: list[Candidate], answer_key: Callable[[str], str]) -> int | None``: the index
    of the chosen candidate (None when there is none). ``answer_key`` maps an answer to its
    vote key (its value, computed by the grader in a worker) so equivalent answers vote
    together. Candidates arrive in sample order and
    ties go to the earliest candidate.
    """


@hookspec
def prmh_register_search(register: Register) -> None:
    """Register search strategies.

    The factory returns an object with
    ``run(ctx: SearchContext, problems: list[Problem], budget: int, seed: int)
    -> list[SearchResult]``: one result per problem, in order, holding only finished candidates
    and the compute spent. ``ctx`` gives cached sampling (``ctx.pool``) and scoring
    (``ctx.score``); a search never touches the store directly.
    """


@hookspec
def prmh_register_labeler(register: Register) -> None:
    """Register step labelers: solutions to per-step correctness labels.

    The factory returns an object with
    ``label(problem, steps, correct, rollout, uncertainty=None) -> StepLabels``: ``correct`` is
    whether the solution's final answer is right, ``rollout(k, n) -> RolloutValue`` continues the
    prefix of the first ``k`` steps ``n`` times (``k = 0``: the question alone), and
    ``uncertainty`` is one number per step for uncertainty-guided labelers.
    """


@hookspec
def prmh_register_loss(register: Register) -> None:
    """Register PRM training losses.

    The factory returns a callable ``(values, labels, mask) -> loss`` over batched tensors of
    per-step model outputs, 0/1 (or soft) labels and a mask of real steps.
    """


@hookspec
def prmh_register_grader(register: Register) -> None:
    """Register answer graders: does a final answer equal the gold one?

    The factory takes no arguments and returns an object with
    ``grade(prediction: str, gold: str) -> bool`` and, optionally, ``canonical(answer) -> str``
    (a cheap text form), ``key(answer) -> str`` (the form equivalent answers share for votes)
    and ``version: str`` (added to the registered version; say, an installed package's). Grading
    runs in worker processes that import the factory, so register it as a ``"module:function"``
    string or a module-level function. A task names its grader in its ``grader`` attribute.
    """


@hookspec
def prmh_register_command(register: Register) -> None:
    """Register extra ``prmh`` subcommands.

    The factory takes no arguments and returns a ``click.Command``; its name on the command line
    is the registered name.
    """
