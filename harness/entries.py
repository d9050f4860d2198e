"""What the store's entries and a PRM's outputs must look like before prmh uses or keeps them:
a stored generation or step scores of another shape is damaged (TypeError), and a PRM's scores
are one probability in [0, 1] per step."""

from __future__ import annotations

from typing import Any

from prmh.errors import PrmhError
from prmh.packing import unpack_generation
from prmh.types import Generation, ScoreRequest, StepScores


def stored_generation(value: Any) -> Generation:
    """A stored generation, or TypeError when the entry has another shape (damaged)."""
    generation = unpack_generation(value)
    if not isinstance(generation.text, str) or not isinstance(generation.finished, bool):
        raise TypeError("not a generation")
    return generation


def stored_scores(value: Any) -> StepScores:
    scores = StepScores.from_json(value)
    if not all(isinstance(p, int | float) for p in scores.probs):
        raise TypeError("not step scores")
    return scores


def check_scores(name: str, request: ScoreRequest, out: StepScores) -> None:
    """A PRM's output before it is stored: one probability in [0, 1] per step."""
    if len(out.probs) != len(request.steps):
        raise PrmhError(
            f"PRM {name!r} gave {len(out.probs)} scores for a solution of "
            f"{len(request.steps)} steps; this is a bug in the PRM."
        )
    values = [*out.probs, *(q for row in out.quantiles or () for q in row)]
    bad = next((p for p in values if not 0.0 <= p <= 1.0), None)  # nan fails too
    if bad is not None:
        raise PrmhError(
            f"PRM {name!r} returned {bad!r} for problem {request.problem.id!r}; a PRM's scores "
            "are probabilities in [0, 1]. Nothing of this batch was stored; fix the PRM."
        )
