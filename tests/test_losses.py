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


def test_ablate_rank_reads_the_true_first_wrong_step(registry):
    q1, qw1, qw2 = 1.0, -1.0, -2.0
    first = math.exp(qw1)
    expected = (math.log(1 + first + E) - (q1 - math.log(math.exp(q1) + 1 + first + E))) / 2
    assert loss(registry, "ablate-rank", [[q1, qw1, qw2]], [[1, 0, 0]]) == pytest.approx(expected)
    # labels 1 0 1 0: the first wrong step is index 1 (the release's index would be 2)
    q = [0.5, -1.0, 2.0, -3.0]
    first = math.exp(q[1])
    l0 = math.log(1 + first + E)
    l1 = -(q[0] - math.log(math.exp(q[0]) + 1 + first + E))
    l2 = -(q[2] - math.log(math.exp(q[2]) + 1 + math.exp(q[0]) + first + E))
    assert loss(registry, "ablate-rank", [q], [[1, 0, 1, 0]]) == pytest.approx((l0 + l1 + l2) / 3)
    assert "true first wrong step" in registry.get("loss", "ablate-rank").description


def released_theory_rank(rows, zeta):
    """PQM's ``theory_ranking_loss`` as written in WindyLee0822/Process_Q_Model
    ``train_ablation.py`` at c5a2a02, re-derived column by column on plain lists (labels 1, 0 or
    -100 for padding; every row has the batch's padded length T).

    Wrong part: on the reversed row, column j >= 1 compares e^Q (1 for a step that is not wrong)
    with the sum of e^Q of wrong steps at reversed columns < j; counted where the step is
    wrong; summed and divided by the count of labels != -100; averaged over rows.
    Correct part: T + 1 columns, column 0 the initial state (e^0 = 1, running sum 0), column
    t + 1 the step t: current = e^Q if correct else 1, running = 1 + (0 if t == 0 else the sum of
    e^Q of correct steps at columns <= t); loss = -log(cur / (cur + running + sum over wrong
    steps of e^(Q + zeta) + 1e-5)); kept where [has_neg] + labels == 1; divided by the count of
    those labels != -100 (T_valid + 1); averaged over rows. The loss is the sum of both parts."""
    negative, positive = [], []
    for q, y in rows:
        T = len(q)
        valid = sum(1 for label in y if label != -100)
        rq, ry = q[::-1], y[::-1]
        total = 0.0
        for j in range(1, T):
            if ry[j] != 0:
                continue
            before = sum(math.exp(rq[i]) for i in range(j) if ry[i] == 0)
            cur = math.exp(rq[j])
            total += -math.log(cur / (cur + before + E))
        negative.append(total / valid)
        neg_sum = sum(math.exp(q[t] + zeta) for t in range(T) if y[t] == 0)
        has_neg = 1 if any(label == 0 for label in y) else 0
        keep = [has_neg, *y]
        total = 0.0
        for c in range(T + 1):
            if keep[c] != 1:
                continue
            if c == 0:
                cur, running = 1.0, 0.0
            else:
                t = c - 1
                cur = math.exp(q[t])
                running = 1.0 + (
                    0.0 if t == 0 else sum(math.exp(q[i]) for i in range(t + 1) if y[i] == 1)
                )
            total += -math.log(cur / (cur + running + neg_sum + E))
        positive.append(total / (valid + 1))
    return sum(positive) / len(positive) + sum(negative) / len(negative)


def test_theory_rank_equals_the_release(registry):
    """theory-rank equals PQM's released ``theory_ranking_loss`` to 1e-6 on random batches
    with padding, mixed labels, all-correct and all-wrong rows (reference: the docstring of
    ``released_theory_rank``)."""
    import random

    rng = random.Random(7)
    for _ in range(20):
        T = rng.randint(1, 6)
        rows, values, labels, mask = [], [], [], []
        for _ in range(rng.randint(1, 4)):
            n = rng.randint(1, T)
            q = [rng.uniform(-3, 3) for _ in range(T)]
            y = [rng.choice([0, 1]) for _ in range(n)] + [-100] * (T - n)
            rows.append((q, y))
            values.append(q)
            labels.append([max(label, 0) for label in y])
            mask.append([1] * n + [0] * (T - n))
        zeta = rng.choice([0.0, 4.0, 2.5])
        expected = released_theory_rank(rows, zeta)
        got = loss(registry, "theory-rank", values, labels, mask, zeta=zeta)
        assert got == pytest.approx(expected, abs=1e-6, rel=1e-9)


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
