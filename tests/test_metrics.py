"""Bootstrap intervals and pass@k against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from prmh.metrics import bootstrap_mean, pass_at_k


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


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
