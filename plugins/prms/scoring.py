"""From score requests to StepScores: a recipe encodes each solution, a scorer reads them
(in smaller batches where the GPU runs out of memory), and each result is wrapped."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from prmh import ScoreRequest, StepScores
from prmh.plugins.hf_models import halved_on_oom
from prmh.plugins.kv_cache import tail_tokens

OOM_FLOOR = 512  # tokens a batch below which halving it on running out of memory stops


def to_step_scores(
    result: tuple[list, bool, int],
    started: float,
    count: int,
    levels: tuple[float, ...] | None = None,
    tail: int | None = None,
) -> StepScores:
    """Wrap a scorer result; with quantile heads the probability is the median quantile."""
    values, truncated, tokens = result
    quantiles = None
    if levels:
        quantiles = tuple(tuple(v) for v in values)
        values = [v[levels.index(0.5)] for v in values]
    return StepScores(
        tuple(values),
        quantiles=quantiles,
        quantile_levels=levels if quantiles is not None else None,
        num_tokens=tokens,
        truncated=truncated,
        tail_tokens=None if truncated else tail,
        seconds=(time.perf_counter() - started) / max(1, count),
    )


def score_requests(scorer: Any, recipe: Any, requests: Sequence[ScoreRequest]) -> list[StepScores]:
    """Encode with the recipe, score in one pass each, and wrap as StepScores."""
    started = time.perf_counter()
    encoded = [recipe.encode(r.problem.question, list(r.steps)) for r in requests]
    good_bad = getattr(recipe, "good_bad", None)
    run = functools.partial(scorer.score, encoded, good_bad)
    results = halved_on_oom(scorer, "max_tokens_per_batch", run, OOM_FLOOR)
    return [
        to_step_scores(r, started, len(requests), scorer.quantile_levels, tail_tokens(scorer, e))
        for r, e in zip(results, encoded, strict=True)
    ]
