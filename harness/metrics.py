"""Accuracy with bootstrap confidence intervals, and pass@k.

Intervals come from a percentile bootstrap over problems (and over seeds when a run has
several): each resample draws problems with replacement, and seeds with replacement, and takes
the mean. The resampling generator is seeded, so a table is reproducible to the last digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where intervals are computed (54 ms off a read-back run)
    import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval."""

    mean: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}


def bootstrap_mean(
    values: np.ndarray,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """Mean of a [seeds, problems] array with a percentile-bootstrap interval. A resample's
    mean is its draws' counts applied to the values (what averaging the drawn values gives,
    and the same number for 0/1 values), so a table's cells cost a matrix product each."""
    return bootstrap_means([values], samples=samples, level=level, seed=seed)[0]


def bootstrap_means(
    arrays: Sequence[np.ndarray] | np.ndarray,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> list[Estimate]:
    """``bootstrap_mean`` of each of several arrays of one shape (a table's cells) at once:
    each is resampled with the same draws, to the same numbers as alone."""
    import numpy as np

    if len(arrays) == 0:
        return []
    values = np.asarray(arrays, dtype=float)
    if values.ndim == 2:  # [arrays, problems]: one seed each
        values = values[:, None, :]
    n_arrays, n_seeds, n_problems = values.shape
    if n_problems == 0:
        return [Estimate(float("nan"), float("nan"), float("nan"))] * n_arrays
    seed_counts, problem_counts = _draw_counts(n_seeds, n_problems, samples, seed)
    # one product per array: a single one over all of them sums fractions in another order
    drawn = np.stack([problem_counts @ v.T for v in values], axis=1)  # [samples, arrays, seeds]
    sums = (drawn * seed_counts[:, None, :]).sum(axis=2)
    means = sums / (n_seeds * n_problems)
    alpha = (1 - level) / 2
    lows, highs = np.quantile(means, [alpha, 1 - alpha], axis=0)
    return [
        Estimate(float(v.mean()), float(low), float(high))
        for v, low, high in zip(values, lows, highs, strict=True)
    ]


@lru_cache(maxsize=4)
def _draw_counts(
    n_seeds: int, n_problems: int, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """How often each seed and each problem is drawn in each of the bootstrap's resamples
    ([samples, seeds], [samples, problems]): the same for every cell of a table, so counted
    once per shape. The draws are made in chunks of 250, problems then seeds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    seed_counts = np.zeros((samples, n_seeds))
    problem_counts = np.zeros((samples, n_problems))
    for start in range(0, samples, 250):
        size = min(samples, start + 250) - start
        p = rng.integers(0, n_problems, size=(size, n_problems))
        s = rng.integers(0, n_seeds, size=(size, n_seeds))
        problem_counts[start : start + size] = _counted(np, p, n_problems)
        seed_counts[start : start + size] = _counted(np, s, n_seeds)
    return seed_counts, problem_counts


def _counted(np: Any, draws: np.ndarray, n: int) -> np.ndarray:
    """How often each of 0..n-1 is drawn in each row of ``draws``."""
    offsets = (np.arange(len(draws)) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=len(draws) * n).reshape(-1, n)


def paired_above(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether cell ``a`` is above cell ``b`` at 95% on the same problems: the percentile
    bootstrap of the per-problem difference of their accuracies (``per_problem``, averaged
    over seeds: a record's list in problem order, or ``EvalResult.accuracy()``'s mapping from
    problem id; problems resampled) lies above zero."""
    return paired_above_each(a, [b])[0]


def paired_above_each(a: dict[str, Any], others: Sequence[dict[str, Any]]) -> list[bool]:
    """``paired_above(a, b)`` for each b of ``others``, resampled together."""
    pairs = {
        i: pair
        for i, b in enumerate(others)
        if (pair := aligned(a.get("per_problem"), b.get("per_problem"))) is not None
    }
    above = [False] * len(others)
    for i, e in zip(pairs, bootstrap_means([x - y for x, y in pairs.values()]), strict=True):
        above[i] = e.low > 0
    return above


def aligned(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Two cells' per-problem values, aligned: lists of one length, or mappings with the same
    problems; None when they are not on the same problems."""
    import numpy as np

    if isinstance(x, dict) and isinstance(y, dict) and x and x.keys() == y.keys():
        x, y = list(x.values()), [y[k] for k in x]
    if not isinstance(x, list) or not isinstance(y, list) or not x or len(x) != len(y):
        return None
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)
