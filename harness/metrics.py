"""Accuracy with bootstrap confidence intervals, and pass@k.

Intervals come from a percentile bootstrap over problems (and over seeds when a run has
several): each resample draws problems with replacement, and seeds with replacement, and takes
the mean. The resampling generator is seeded, so a table is reproducible to the last digit.
"""

from __future__ import annotations

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
    import numpy as np

    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    n_seeds, n_problems = values.shape
    if n_problems == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    seed_counts, problem_counts = _draw_counts(n_seeds, n_problems, samples, seed)
    sums = ((problem_counts @ values.T) * seed_counts).sum(axis=1)
    means = sums / (n_seeds * n_problems)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(float(values.mean()), float(low), float(high))


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
    over seeds; problems resampled) lies above zero."""
    import numpy as np

    x, y = a.get("per_problem"), b.get("per_problem")
    if not x or not y or len(x) != len(y):
        return False
    return bootstrap_mean(np.asarray(x, dtype=float) - np.asarray(y, dtype=float)).low > 0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)
