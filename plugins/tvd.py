"""TVD: token-level value-guided decoding (AdaptiveStep, ``--search tvd``).

Greedy decoding, one token at a time: at a token whose confidence (the greedy token's
probability in percent, rounded to two decimals) is below ``kappa``, each of the ``top_k``
likeliest tokens is appended to the text so far and scored by the PRM as one step (the
release's ``question + generated + candidate + " ки"``: the recipe adds its own step tag), and
the best-scored token is taken instead; decoding stops at the end of the sequence, when the
chosen token is the end (an empty token), or after ``max_tokens`` tokens. On code problems
(``language = "python"`` in a problem's metadata) guidance happens only inside a fenced
```` ```python ```` block, and ``kappa`` defaults to 28 (55 for math), as released.

Batched across problems: each round asks the generator to continue every unfinished problem
greedily, pausing after the first low-confidence token (``pause_below``; a generator that does
not pause is read up to that token, which is the same text), then scores every problem's
candidates in one PRM call. The budget N does not change TVD (one decoding per problem).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from prmh import Compute, Generation, Problem, SearchResult
from prmh.errors import PrmhError

KAPPA_MATH, KAPPA_CODE = 55.0, 28.0
NO_ALTERNATIVES = (
    "the generator reports no top log-probabilities, so TVD had no tokens to choose from and "
    "decoded greedily; use a generator that gives them (hf, vllm, openai, or sim on the code "
    "task: on arith it gives none)"
)


def confidence(logprob: float) -> float:
    """The release's confidence: 100 p, rounded to two decimals."""
    return round(math.exp(logprob) * 100, 2)


def inside_code(text: str) -> bool:
    """The text ends inside a ```python block: its last fence opens one."""
    start = text.rfind("```python")
    return start != -1 and text.rfind("```") == start


@dataclass
class _State:
    problem: Problem
    kappa: float
    code: bool
    text: str = ""  # "".join(pieces), kept as it grows
    pieces: list[str] = field(default_factory=list)  # the text's tokens, and their
    logprobs: list[float] = field(default_factory=list)  # log-probabilities
    guided: int = 0
    done: bool = False
    finished: bool = False
    candidates: tuple[tuple[str, float], ...] = ()  # (token, log-probability)
    compute: Compute = field(default_factory=Compute)


class TVD:
    """Token-level value-guided decoding; ``kappa`` in percent (None: 55 math, 28 code)."""

    def __init__(self, kappa: float | None = None, top_k: int = 8, max_tokens: int = 1024):
        if kappa is not None and not 0 < kappa <= 100:
            raise PrmhError(f"tvd option kappa is a percentage in (0, 100], got {kappa}.")
        if top_k < 2 or max_tokens < 1:
            raise PrmhError("tvd needs top_k >= 2 candidates and max_tokens >= 1.")
        self.kappa, self.top_k, self.max_tokens = kappa, top_k, max_tokens

    def run(self, ctx, problems: list[Problem], budget: int, seed: int) -> list[SearchResult]:
        states = [self._state(p) for p in problems]
        while live := [s for s in states if not s.done]:
            lowest = min(s.kappa for s in live) / 100
            generations = ctx.extend(
                [(s.problem, s.text, 1, 0, 0.0) for s in live],
                seed,
                (),
                top_logprobs=self.top_k,
                pause_below=lowest,
            )
            for state, (g,) in zip(live, generations, strict=True):
                if g.top_logprobs is None and g.text:
                    ctx.warn(NO_ALTERNATIVES)
                self.advance(state, g)
            asking = [s for s in live if s.candidates]
            if asking:
                self.choose(ctx, asking)
        return self.results(ctx, states)

    def _state(self, problem: Problem) -> _State:
        code = problem.metadata.get("language") == "python"
        kappa = self.kappa if self.kappa is not None else (KAPPA_CODE if code else KAPPA_MATH)
        return _State(problem, kappa, code)

    def advance(self, state: _State, g: Generation) -> None:
        """Take the generation up to its first token TVD guides (whose alternatives become
        the state's candidates), or all of it."""
        tokens, logprobs, tops = g.tokens, g.token_logprobs, g.top_logprobs
        if tokens is None or logprobs is None or tops is None:  # nothing to choose from
            tokens = (g.text,) if g.text else ()
            logprobs, tops = (0.0,) * len(tokens), (((g.text, 0.0),),) * len(tokens)
        state.compute = state.compute + Compute(generated_tokens=g.num_tokens)
        for i, logprob in enumerate(logprobs):
            if len(state.pieces) + i >= self.max_tokens:
                self.take(state, tokens[:i], logprobs[:i])
                state.done = True
                return
            guided = not state.code or inside_code(state.text + "".join(tokens[:i]))
            if guided and confidence(logprob) < state.kappa and len(tops[i]) > 1:
                self.take(state, tokens[:i], logprobs[:i])
                state.candidates = tops[i][: self.top_k]
                return
        self.take(state, tokens, logprobs)
        state.finished = g.finished
        state.done = g.finished or not tokens or len(state.pieces) >= self.max_tokens

    @staticmethod
    def take(state: _State, tokens: Sequence[str], logprobs: Sequence[float]) -> None:
        state.text += "".join(tokens)
        state.pieces += tokens
        state.logprobs += logprobs

    def choose(self, ctx, states: list[_State]) -> None:
        """One PRM call for every state's candidates; each appends its best (the first of
        equal scores, as the release's ``list.index(max)``)."""
        items = [(s.problem, (s.text + c,)) for s in states for c, _ in s.candidates]
        scores = ctx.score_steps(items)
        at = 0
        for state in states:
            mine = scores[at : at + len(state.candidates)]
            at += len(state.candidates)
            values = [s.probs[-1] if s.probs else 0.0 for s in mine]
            best, logprob = state.candidates[values.index(max(values))]
            state.compute = state.compute + Compute(
                prm_tokens=sum(s.num_tokens for s in mine), prm_calls=len(mine)
            )
            self.take(state, [best], [logprob])
            state.guided += 1
            state.candidates = ()
            if not best:  # the end of the sequence was the best token
                state.done = state.finished = True

    def results(self, ctx, states: list[_State]) -> list[SearchResult]:
        solutions = [
            (s.problem, ctx.read(Generation(s.text, s.finished, len(s.pieces), tuple(s.logprobs),
                                            tuple(s.pieces))))
            for s in states
        ]  # fmt: skip
        ranked, costs = ctx.rank(solutions)
        out = []
        for state, candidate, cost in zip(states, ranked, costs, strict=True):
            kept = (candidate,) if candidate.solution.finished else ()
            out.append(SearchResult(state.problem.id, kept, state.compute + cost))
        return out
