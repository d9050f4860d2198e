"""Step uncertainty from token log-probabilities (UnPRM), and the tokens of each step.

UnPRM's measures soften a step's sampled-token log-probabilities with temperature T = 5 into a
distribution over the step's positions (not over the vocabulary): pi = softmax(logprob / T).
``entropy`` is -sum pi log pi and ``log-sum`` is -sum log pi. Both grow with step length
(entropy is at most log L). ``token-entropy`` is the usual mean predictive entropy, for
generators that return whole distributions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prmh import Generation
from prmh.errors import PrmhError

TEMPERATURE = 5.0


def _log_softened(logprobs: Sequence[float], temperature: float) -> list[float]:
    """log softmax(logprob / T), computed in log space so that no weight underflows to 0."""
    scaled = [lp / temperature for lp in logprobs]
    top = max(scaled)
    log_total = top + math.log(sum(math.exp(x - top) for x in scaled))
    return [x - log_total for x in scaled]


def step_entropy(logprobs: Sequence[float], temperature: float = TEMPERATURE) -> float:
    if not logprobs:
        return 0.0
    return -sum(math.exp(lp) * lp for lp in _log_softened(logprobs, temperature))


def step_log_sum(logprobs: Sequence[float], temperature: float = TEMPERATURE) -> float:
    if not logprobs:
        return 0.0
    return -sum(_log_softened(logprobs, temperature))


def token_entropy(distributions: Sequence[Sequence[float]]) -> float:
    """Mean entropy of full next-token distributions (probabilities per token)."""
    if not distributions:
        return 0.0
    return sum(-sum(p * math.log(p) for p in d if p > 0) for d in distributions) / len(
        distributions
    )


MEASURES = {"entropy": step_entropy, "log-sum": step_log_sum}


def step_logprobs(generation: Generation, steps: Sequence[str]) -> list[list[float]]:
    """Each step's token log-probabilities. A token belongs to the step its first character
    falls in, so a new step starts at the token that opens it (UnPRM's ``split_by_step`` starts
    one at each ``Step`` token) and the token that ends a step (``.\n``) stays with it; tokens
    before the first step belong to the first."""
    if generation.tokens is None or generation.token_logprobs is None:
        raise PrmhError("uncertainty needs the generator's tokens and log-probabilities.")
    starts, at = [], 0
    for step in steps:
        found = generation.text.find(step, at)
        if found < 0:
            raise PrmhError("a step is not part of its generation's text.")
        starts.append(found)
        at = found + len(step)
    out: list[list[float]] = [[] for _ in steps]
    position, k = 0, 0
    for token, lp in zip(generation.tokens, generation.token_logprobs, strict=True):
        while k < len(starts) - 1 and position >= starts[k + 1]:
            k += 1
        out[k].append(lp)
        position += len(token)
    return out


def step_uncertainty(
    generation: Generation, steps: Sequence[str], measure: str = "entropy"
) -> list[float]:
    if measure not in MEASURES:
        raise PrmhError(f"unknown uncertainty {measure!r}; measures: {', '.join(MEASURES)}.")
    return [MEASURES[measure](lps) for lps in step_logprobs(generation, steps)]
