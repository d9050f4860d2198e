"""PRM training losses, each a function ``(values, labels, mask) -> scalar tensor``.

``values`` are the model's raw per-step outputs (logits, "Q-values") of shape [B, T] (or
[B, T, 3] for ``wql``), ``labels`` per-step targets in [0, 1] of shape [B, T], ``mask`` 1 for
real steps and 0 for padding. A trajectory's wrong steps are those labelled below 0.5.

- ``bce``, ``mse``: per step, on sigmoid(value); averaged over real steps.
- ``orm``: BCE of the last step's sigmoid(value) against "no wrong step".
- ``rank``: PQM's comparative loss (its Eq. 10): an implicit initial state Q0 = 0, a margin
  ``zeta`` added to wrong steps' values, the Q0 term only when the trajectory has a wrong step,
  epsilon 1e-5 in the denominator; per trajectory the mean over its terms, then over the batch.
  ``standardize`` first standardises values over the whole padded batch (UnPRM's variant).
- ``theory-rank`` (Eq. 9, approximate as in the release): the positive terms with an inclusive
  running sum, plus a ranking among wrong steps (earlier wrong steps above later ones).
- ``ablate-rank`` (Eq. 12): only the first wrong step in the denominator, no margin.
- ``wql``: mean pinball loss of sigmoid(head) for quantiles 0.1, 0.5, 0.9 (calibration).
"""

from __future__ import annotations

from typing import Any

from prmh import hookimpl

EPSILON = 1e-5
QUANTILES = (0.1, 0.5, 0.9)


def _masked_mean(x: Any, mask: Any) -> Any:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def bce(values: Any, labels: Any, mask: Any) -> Any:
    import torch

    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        values, labels.float(), reduction="none"
    )
    return _masked_mean(loss, mask.float())


def mse(values: Any, labels: Any, mask: Any) -> Any:
    import torch

    return _masked_mean((torch.sigmoid(values) - labels.float()) ** 2, mask.float())


def _last(values: Any, mask: Any) -> Any:
    import torch

    last = mask.long().sum(1).clamp(min=1) - 1
    return values[torch.arange(values.shape[0]), last]


def _has_wrong(labels: Any, mask: Any) -> Any:
    return ((labels < 0.5) & mask.bool()).any(1)


def orm(values: Any, labels: Any, mask: Any) -> Any:
    import torch

    target = (~_has_wrong(labels, mask)).float()
    return torch.nn.functional.binary_cross_entropy_with_logits(_last(values, mask), target)


class Rank:
    """PQM's comparative loss (Eq. 10)."""

    def __init__(self, zeta: float = 4.0, standardize: bool = False):
        self.zeta, self.standardize = zeta, standardize

    def __call__(self, values: Any, labels: Any, mask: Any) -> Any:
        import torch

        if self.standardize:
            values = (values - values.mean()) / (values.std() + EPSILON)
        losses = []
        for q, y, m in zip(values, labels, mask.bool(), strict=True):
            q, y = q[m], y[m]
            correct, wrong = q[y >= 0.5], q[y < 0.5]
            wrong_mass = torch.exp(wrong + self.zeta).sum()
            has_wrong = len(wrong) > 0
            terms = []
            if has_wrong:  # t = 0: log(1 + sum_w exp(Q_w + zeta))
                terms.append(torch.log(1 + wrong_mass + EPSILON))
            earlier = torch.ones((), dtype=q.dtype)  # e^{Q0} = 1
            for q_t in correct:
                denominator = torch.exp(q_t) + earlier + wrong_mass + EPSILON
                terms.append(-(q_t - torch.log(denominator)))
                earlier = earlier + torch.exp(q_t)
            losses.append(torch.stack(terms).mean() if terms else q.sum() * 0)
        return torch.stack(losses).mean()


class TheoryRank:
    """PQM Eq. 9 as released: inclusive running sum over correct steps, ranking among wrong."""

    def __init__(self, zeta: float = 4.0):
        self.zeta = zeta

    def __call__(self, values: Any, labels: Any, mask: Any) -> Any:
        import torch

        losses = []
        for q, y, m in zip(values, labels, mask.bool(), strict=True):
            q, y = q[m], y[m]
            correct, wrong = q[y >= 0.5], q[y < 0.5]
            wrong_mass = torch.exp(wrong + self.zeta).sum()
            terms = []
            running = torch.ones((), dtype=q.dtype)
            for q_t in correct:
                running = running + torch.exp(q_t)  # inclusive, as in the release
                terms.append(-(q_t - torch.log(running + wrong_mass + EPSILON)))
            for k in range(len(wrong)):
                later = torch.exp(wrong[k:]).sum()
                terms.append(-(wrong[k] - torch.log(later + EPSILON)))
            losses.append(torch.stack(terms).sum() / max(1, int(m.sum())) if terms else q.sum() * 0)
        return torch.stack(losses).mean()


def ablate_rank(values: Any, labels: Any, mask: Any) -> Any:
    """PQM Eq. 12: the first wrong step alone in the denominator, no margin."""
    import torch

    losses = []
    for q, y, m in zip(values, labels, mask.bool(), strict=True):
        q, y = q[m], y[m]
        correct, wrong = q[y >= 0.5], q[y < 0.5]
        first_wrong = torch.exp(wrong[0]) if len(wrong) else torch.zeros((), dtype=q.dtype)
        terms = []
        if len(wrong):
            terms.append(torch.log(1 + first_wrong + EPSILON))
        earlier = torch.ones((), dtype=q.dtype)
        for q_t in correct:
            terms.append(-(q_t - torch.log(torch.exp(q_t) + earlier + first_wrong + EPSILON)))
            earlier = earlier + torch.exp(q_t)
        losses.append(torch.stack(terms).mean() if terms else q.sum() * 0)
    return torch.stack(losses).mean()


def wql(values: Any, labels: Any, mask: Any) -> Any:
    """Mean pinball loss of sigmoid(values[..., j]) at quantile QUANTILES[j]."""
    import torch

    predicted = torch.sigmoid(values)
    taus = torch.tensor(QUANTILES, dtype=predicted.dtype, device=predicted.device)
    u = labels.float().unsqueeze(-1) - predicted
    pinball = torch.maximum((taus - 1) * u, taus * u).mean(-1)
    return _masked_mean(pinball, mask.float())


@hookimpl
def prmh_register_loss(register):
    register("bce", lambda: bce, description="Per-step binary cross-entropy")
    register("mse", lambda: mse, description="Per-step squared error of sigmoid(value)")
    register("orm", lambda: orm, description="Outcome loss on the last step")
    register("rank", Rank, description="PQM comparative Q-value ranking loss (zeta margin)")
    register("theory-rank", TheoryRank, description="PQM Eq. 9 with ranking among wrong steps")
    register("ablate-rank", lambda: ablate_rank, description="PQM Eq. 12 ablation")
    register("wql", lambda: wql, description="Pinball loss on 0.1/0.5/0.9 quantile heads")
