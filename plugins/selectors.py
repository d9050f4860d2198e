"""Answer selectors: which scored candidate's answer a search returns.

Answers are grouped by their vote key, the value the task's grader reads in them (``0.5``,
``\\frac12`` and ``1/2`` vote together; see ``prmh.votes``). Ties go to the answer seen first,
and within an answer to its best, then earliest, candidate.

UnPRM names two aggregations whose formulas its release does not give; prmh defines them from
their description:

- ``hybrid-vote`` (Hybrid Majority Reward Vote): majority vote when the vote is confident (the
  top answer holds at least ``threshold`` of the answered candidates), the PRM's best-scored
  candidate otherwise.
- ``frequency-vote`` (Weighted Reward Frequency Vote): answer a scores
  ``(n_a / N) ** alpha * mean reward of a``; alpha = 1 is ``weighted-vote`` up to a constant,
  alpha = 0 ranks answers by mean reward alone (default 0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prmh import Candidate, hookimpl
from prmh.answers import majority_index
from prmh.errors import PrmhError


def argmax(candidates: Sequence[Candidate], answer_key: Callable[[str], str]) -> int | None:
    """Best-of-N: the highest-scoring candidate, the first on ties (``max`` takes a later
    one only when it is greater; so a nan score is never taken after another)."""
    if not candidates:
        return None
    scores = [c.score for c in candidates]
    return max(range(len(scores)), key=scores.__getitem__)


def majority(candidates: Sequence[Candidate], answer_key: Callable[[str], str]) -> int | None:
    """Self-consistency: the most frequent answer (no PRM); its first candidate is returned."""
    return majority_index([c.solution.answer for c in candidates], answer_key)


def _vote(
    candidates: Sequence[Candidate],
    answer_key: Callable[[str], str],
    weigh: Callable[[list[Candidate]], float],
) -> int | None:
    """The best candidate of the answer class that ``weigh`` rates highest."""
    classes: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        if c.solution.answer is not None:
            classes.setdefault(answer_key(c.solution.answer), []).append(i)
    if not classes:
        return None
    best = max(classes.values(), key=lambda members: weigh([candidates[i] for i in members]))
    return max(best, key=lambda i: (candidates[i].score, -i))


def weighted_vote(candidates: Sequence[Candidate], answer_key: Callable[[str], str]) -> int | None:
    """The answer with the largest sum of solution scores."""
    return _vote(candidates, answer_key, lambda members: sum(c.score for c in members))


def pqm_combine(candidates: Sequence[Candidate], answer_key: Callable[[str], str]) -> int | None:
    """PQM's --combine: the answer with the largest sum of sigmoid(min step Q) = min step
    probability (sigmoid is monotone), whatever the aggregator."""
    return _vote(
        candidates,
        answer_key,
        lambda members: sum(min(c.scores.probs, default=0.0) for c in members),
    )


class HybridVote:
    """Majority when the top answer holds ``threshold`` of the votes, else the PRM's argmax."""

    def __init__(self, threshold: float = 0.5):
        if not 0 < threshold <= 1:
            raise PrmhError(f"hybrid-vote threshold must be in (0, 1], got {threshold}.")
        self.threshold = threshold

    def __call__(
        self, candidates: Sequence[Candidate], answer_key: Callable[[str], str]
    ) -> int | None:
        answered = [c for c in candidates if c.solution.answer is not None]
        top = majority(candidates, answer_key)
        if top is None:
            return None
        key = answer_key(candidates[top].solution.answer)
        share = sum(answer_key(c.solution.answer) == key for c in answered) / len(answered)
        return top if share >= self.threshold else argmax(candidates, answer_key)


class FrequencyVote:
    """Answer a scores (n_a / N) ** alpha times its mean solution score."""

    def __init__(self, alpha: float = 0.5):
        if alpha < 0:
            raise PrmhError(f"frequency-vote alpha must be >= 0, got {alpha}.")
        self.alpha = alpha

    def __call__(
        self, candidates: Sequence[Candidate], answer_key: Callable[[str], str]
    ) -> int | None:
        total = sum(c.solution.answer is not None for c in candidates) or 1
        return _vote(
            candidates,
            answer_key,
            lambda m: (len(m) / total) ** self.alpha * sum(c.score for c in m) / len(m),
        )


@hookimpl
def prmh_register_selector(register):
    register("argmax", lambda: argmax, description="Best-of-N: the highest-scoring solution")
    register("majority", lambda: majority, description="Most frequent answer; ignores the PRM")
    register(
        "weighted-vote", lambda: weighted_vote, description="Answer with the largest score sum"
    )
    register(
        "pqm-combine", lambda: pqm_combine, description="PQM: sum of min step scores per answer"
    )
    register("hybrid-vote", HybridVote, description="UnPRM hybrid: majority if confident, else PRM")
    register("frequency-vote", FrequencyVote, description="UnPRM: frequency^alpha x mean reward")
