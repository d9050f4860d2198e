"""Bootstrap intervals and pass@k against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from prmh.metrics import (
    bootstrap_mean,
    bootstrap_means,
    paired_above,
    paired_above_each,
    pass_at_k,
)


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_pass_at_k_is_human_evals_estimator():
    """openai/human-eval at 9d3aa8b, human_eval/evaluation.py, ``estimate_pass_at_k``: 1.0 when
    n - c < k, else 1 - prod(1 - k / arange(n - c + 1, n + 1)) (the stable form of
    1 - C(n-c, k) / C(n, k)); derived here over every c <= n <= 64 and k <= n."""
    for n in range(1, 65):
        for c in range(n + 1):
            for k in range(1, n + 1):
                official = (
                    1.0 if n - c < k else 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))
                )
                assert pass_at_k(n, c, k) == pytest.approx(official, abs=1e-12), (n, c, k)


def test_constant_data_has_a_zero_width_interval():
    est = bootstrap_mean(np.ones((1, 50)))
    assert (est.mean, est.low, est.high) == (1.0, 1.0, 1.0)


def test_interval_covers_the_mean_and_shrinks_with_more_problems():
    rng = np.random.default_rng(1)
    small = bootstrap_mean(rng.random(40) < 0.5)
    large = bootstrap_mean(rng.random(4000) < 0.5)
    assert small.low <= small.mean <= small.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    # The normal approximation of a proportion's 95% interval at p=0.5, n=4000 is about +-1.55%.
    assert large.high - large.low == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(4000), rel=0.15)


def test_bootstrap_is_reproducible_and_uses_seeds():
    data = np.array([[1, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    assert bootstrap_mean(data) == bootstrap_mean(data)
    assert bootstrap_mean(data).mean == pytest.approx(5 / 8)


@pytest.mark.parametrize("shape", [(1, 200), (3, 50), (2, 7), (4, 1)])
def test_bootstrap_is_the_percentile_bootstrap_of_the_drawn_values(shape):
    """Each resample draws problems, then seeds, with replacement (numpy's default_rng(0), in
    chunks of 250) and averages the drawn values; the interval is the 2.5% and 97.5%
    quantiles of those means (Efron & Tibshirani, An Introduction to the Bootstrap, 1993,
    section 13.3). Drawn and averaged explicitly here: the same numbers for 0/1 values (prmh
    applies the draws' counts instead of gathering them), to 1e-12 for fractions."""
    rng = np.random.default_rng(7)
    for values in ((rng.random(shape) < 0.6).astype(float), rng.random(shape)):
        draws = np.random.default_rng(0)
        means = []
        for _ in range(8):  # 2,000 resamples
            p = draws.integers(0, shape[1], size=(250, shape[1]))
            s = draws.integers(0, shape[0], size=(250, shape[0]))
            means += list(values[s[:, :, None], p[:, None, :]].mean(axis=(1, 2)))
        low, high = np.quantile(means, [0.025, 0.975])
        got = bootstrap_mean(values)
        if set(np.unique(values)) <= {0.0, 1.0}:
            assert (got.low, got.high) == (low, high)
        else:
            assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)
        assert got.mean == values.mean()


@pytest.mark.parametrize("shape", [(1, 200), (3, 50), (2, 7)])
def test_a_tables_cells_resampled_together_are_each_resampled_alone(shape):
    """``bootstrap_means`` (a table's cells at once) gives each array the interval
    ``bootstrap_mean`` gives it alone, to the last bit, fractions (pass@N, subsets) too; so
    does ``paired_above_each`` with ``paired_above``."""
    rng = np.random.default_rng(3)
    binary = [(rng.random(shape) < p).astype(float) for p in (0.2, 0.5, 0.9, 0.5)]
    fractions = [rng.random(shape) for _ in range(3)]
    for arrays in (binary, fractions, [rng.integers(0, 7, shape) / 7 for _ in range(5)]):
        assert bootstrap_means(arrays) == [bootstrap_mean(a) for a in arrays]
    best = {"per_problem": list(binary[2].mean(axis=0))}
    cells = [{"per_problem": list(b.mean(axis=0))} for b in binary] + [{}, {"per_problem": [1]}]
    expected = [paired_above(best, c) for c in cells]
    assert paired_above_each(best, cells) == expected
    assert expected[:2] == [True, True] and expected[-2:] == [False, False]
    empty = bootstrap_means(np.zeros((2, 0)))  # no problems: no interval
    assert len(empty) == 2 and all(np.isnan([e.mean, e.low, e.high]).all() for e in empty)
