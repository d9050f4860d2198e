"""Training losses against values computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

E = 1e-5


def loss(registry, name, values, labels, mask=None, **options):
    values = torch.tensor(values, dtype=torch.float64)
    labels = torch.tensor(labels, dtype=torch.float64)
    mask = torch.ones_like(labels) if mask is None else torch.tensor(mask, dtype=torch.float64)
    return float(registry.create("loss", name, options).instance(values, labels, mask))


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_bce_mse_orm_ignore_padding(registry):
    values, labels, mask = [[2.0, -1.0, 9.0]], [[1.0, 0.0, 1.0]], [[1, 1, 0]]
    bce = (-math.log(sig(2.0)) - math.log(1 - sig(-1.0))) / 2
    assert loss(registry, "bce", values, labels, mask) == pytest.approx(bce)
    mse = ((sig(2.0) - 1) ** 2 + sig(-1.0) ** 2) / 2
    assert loss(registry, "mse", values, labels, mask) == pytest.approx(mse)
    # the last real step is -1.0 and the trajectory has a wrong step: target 0
    assert loss(registry, "orm", values, labels, mask) == pytest.approx(-math.log(1 - sig(-1.0)))
    assert loss(registry, "orm", [[0.5, 3.0]], [[1, 1]]) == pytest.approx(-math.log(sig(3.0)))


def test_rank_by_hand(registry):
    # One trajectory: correct (Q=1), correct (Q=2), wrong (Q=-1); zeta = 4.
    q1, q2, qw, z = 1.0, 2.0, -1.0, 4.0
    wrong = math.exp(qw + z)
    l0 = math.log(1 + wrong + E)
    l1 = -(q1 - math.log(math.exp(q1) + 1 + wrong + E))
    l2 = -(q2 - math.log(math.exp(q2) + 1 + math.exp(q1) + wrong + E))
    expected = (l0 + l1 + l2) / 3
    assert loss(registry, "rank", [[q1, q2, qw]], [[1, 1, 0]]) == pytest.approx(expected)
    # padding changes nothing
    padded = loss(registry, "rank", [[q1, q2, qw, 50.0]], [[1, 1, 0, 1]], [[1, 1, 1, 0]])
    assert padded == pytest.approx(expected)


def test_rank_without_wrong_steps_has_no_q0_term(registry):
    q1, q2 = 0.5, 1.5
    l1 = -(q1 - math.log(math.exp(q1) + 1 + E))
    l2 = -(q2 - math.log(math.exp(q2) + 1 + math.exp(q1) + E))
    assert loss(registry, "rank", [[q1, q2]], [[1, 1]]) == pytest.approx((l1 + l2) / 2)
    # all wrong: only the Q0 term
    assert loss(registry, "rank", [[0.0, 1.0]], [[0, 0]], zeta=2.0) == pytest.approx(
        math.log(1 + math.exp(2.0) + math.exp(3.0) + E)
    )


def test_rank_batch_mean_and_standardize(registry):
    a = loss(registry, "rank", [[1.0, -1.0]], [[1, 0]])
    b = loss(registry, "rank", [[0.2, 0.3]], [[1, 1]])
    assert loss(registry, "rank", [[1.0, -1.0], [0.2, 0.3]], [[1, 0], [1, 1]]) == pytest.approx(
        (a + b) / 2
    )
    raw = torch.tensor([[1.0, -1.0], [0.2, 0.3]], dtype=torch.float64)
    z = ((raw - raw.mean()) / (raw.std() + E)).tolist()
    assert loss(registry, "rank", raw.tolist(), [[1, 0], [1, 1]], standardize=True) == (
        pytest.approx(loss(registry, "rank", z, [[1, 0], [1, 1]]))
    )


def test_ablate_and_theory_rank(registry):
    q1, qw1, qw2 = 1.0, -1.0, -2.0
    first = math.exp(qw1)
    expected = (math.log(1 + first + E) - (q1 - math.log(math.exp(q1) + 1 + first + E))) / 2
    assert loss(registry, "ablate-rank", [[q1, qw1, qw2]], [[1, 0, 0]]) == pytest.approx(expected)
    z = 4.0
    wrong = math.exp(qw1 + z) + math.exp(qw2 + z)
    positive = -(q1 - math.log(1 + math.exp(q1) + wrong + E))
    ranking = -(qw1 - math.log(math.exp(qw1) + math.exp(qw2) + E)) - (
        qw2 - math.log(math.exp(qw2) + E)
    )
    assert loss(registry, "theory-rank", [[q1, qw1, qw2]], [[1, 0, 0]]) == pytest.approx(
        (positive + ranking) / 3
    )


def test_wql_pinball(registry):
    # one step, target 0.5, heads at logits 0 (0.5), 2, -2
    values, target = [[[0.0, 2.0, -2.0]]], [[0.5]]
    preds = [0.5, sig(2.0), sig(-2.0)]
    taus = [0.1, 0.5, 0.9]
    expected = (
        sum(max((t - 1) * (0.5 - p), t * (0.5 - p)) for t, p in zip(taus, preds, strict=True)) / 3
    )
    assert loss(registry, "wql", values, target) == pytest.approx(expected)
    # a perfect prediction costs nothing; padding is ignored
    assert loss(
        registry, "wql", [[[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]], [[0.5, 0.0]], [[1, 0]]
    ) == pytest.approx(0.0)
