"""Answer selectors: which scored candidate's answer a search returns.

Ties go to the earliest candidate in sample order, for every selector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prmh import Candidate, hookimpl
from prmh.answers import majority_index


def argmax(candidates: Sequence[Candidate], answer_key: Callable[[str], str]) -> int | None:
    """Best-of-N: the highest-scoring candidate."""
    best = None
    for i, c in enumerate(candidates):
        if best is None or c.score > candidates[best].score:
            best = i
    return best


def majority(candidates: Sequence[Candidate], answer_key: Callable[[str], str]) -> int | None:
    """Self-consistency: the most frequent answer (no PRM); its first candidate is returned."""
    return majority_index([c.solution.answer for c in candidates], answer_key)


@hookimpl
def prmh_register_selector(register):
    register("argmax", lambda: argmax, description="Best-of-N: the highest-scoring solution")
    register("majority", lambda: majority, description="Most frequent answer; ignores the PRM")
