"""PRM analysis metrics: step-error identification (ProcessBench), calibration against rollout
success rates, and correlation of partial-solution scores with final correctness.

Pure functions over numbers; the analyses beside this module feed them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from prmh.errors import PrmhError
from prmh.metrics import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def first_error(probs: Sequence[float], threshold: float) -> int:
    """The predicted earliest wrong step: the first step scored below ``threshold``, or -1."""
    return next((i for i, p in enumerate(probs) if p < threshold), -1)


def processbench_scores(
    step_probs: Sequence[Sequence[float]], labels: Sequence[int], threshold: float
) -> dict[str, float]:
    """ProcessBench: accuracy on erroneous samples (the earliest wrong step found exactly), on
    correct samples (no error predicted), and their harmonic mean F1. F1 is undefined (nan) when
    either subset is empty or both accuracies are 0, as ProcessBench's formula divides by zero
    there."""
    predicted = [first_error(p, threshold) for p in step_probs]
    erroneous = [p == y for p, y in zip(predicted, labels, strict=True) if y != -1]
    correct = [p == -1 for p, y in zip(predicted, labels, strict=True) if y == -1]
    a = sum(erroneous) / len(erroneous) if erroneous else float("nan")
    b = sum(correct) / len(correct) if correct else float("nan")
    f1 = 2 * a * b / (a + b) if a + b > 0 else float("nan")
    return {
        "threshold": threshold,
        "error_accuracy": a,
        "correct_accuracy": b,
        "f1": f1,
        "erroneous": len(erroneous),
        "correct": len(correct),
    }


def calibration_scores(
    predicted: Sequence[float], observed: Sequence[float], bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error (equal-width bins, weighted by bin size), Brier score (mean
    squared difference to the observed success rate) and the reliability diagram's points,
    each with its count and a 95% interval of its observed rate."""
    if bins < 1:  # no bin would report an error of 0: perfect calibration
        raise PrmhError(f"calibration needs at least 1 bin, got {bins}.")
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(observed, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    diagram, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            mean_p, mean_y = float(p[inside].mean()), float(y[inside].mean())
            ece += inside.mean() * abs(mean_p - mean_y)
            # a 95% normal interval of the bin's mean observed rate
            half = 1.96 * float(y[inside].std()) / math.sqrt(int(inside.sum()))
            diagram.append(
                {
                    "bin": b,
                    "predicted": mean_p,
                    "observed": mean_y,
                    "count": int(inside.sum()),
                    "low": max(0.0, mean_y - half),
                    "high": min(1.0, mean_y + half),
                }
            )
    return {
        "ece": float(ece),
        "brier": float(((p - y) ** 2).mean()),
        "count": len(p),
        "diagram": diagram,
    }


def quantile_coverage(
    quantiles: Sequence[Sequence[float]], observed: Sequence[float], levels: Sequence[float]
) -> dict[str, float]:
    """For each quantile level: the fraction of observed rates at or below that quantile (a
    calibrated 10% quantile covers about 10%)."""
    q = np.asarray(quantiles, dtype=float)
    y = np.asarray(observed, dtype=float)
    return {f"{level:g}": float((y <= q[:, i]).mean()) for i, level in enumerate(levels)}


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r; nan when either input is constant (as scipy's ``pearsonr``: with rounding,
    ``std()`` of a constant input is not always 0, and r would come out as +-1)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pearson_interval(
    x: Sequence[float], y: Sequence[float], groups: Sequence[str] | None = None
) -> dict[str, float]:
    """Pearson r with a 95% bootstrap interval; resampling whole groups (problems) when given,
    since the solutions of one problem are not independent."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keys = list(groups) if groups is not None else [str(i) for i in range(len(a))]
    names = sorted(set(keys))
    members = {n: [] for n in names}
    for i, k in enumerate(keys):
        members[k].append(i)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = []
    for _ in range(BOOTSTRAP_SAMPLES // 4):
        pick = rng.integers(0, len(names), len(names))
        index = [i for j in pick for i in members[names[j]]]
        r = pearson(a[index], b[index])
        if not math.isnan(r):
            values.append(r)
    low, high = np.quantile(values, [0.025, 0.975]) if values else (math.nan, math.nan)
    return {"r": pearson(a, b), "low": float(low), "high": float(high)}
