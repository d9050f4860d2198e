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
- ``theory-rank`` (Eq. 9, equal to the release's ``theory_ranking_loss`` with its quirks, see
  ``TheoryRank``): the positive terms plus a ranking among wrong steps.
- ``ablate-rank`` (Eq. 12): only the first wrong step in the denominator, no margin; the true
  first wrong step, where the release takes the step at index "number of correct labels".
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
    """PQM's Eq. 9 as released (``theory_ranking_loss`` in PQM's ``train_ablation.py``).

    Three quirks of the release are kept, so numbers match it: the Q0 term is counted whenever
    the trajectory has a wrong step; a correct step after the first one has its own exp(Q) twice
    in its denominator (the running sum is inclusive); and the correct part is divided by the
    number of steps plus one (the Q0 slot). The ranking part sums, for each wrong step except
    one in the padded tensor's last column, -log(e^Q / (e^Q + sum of e^Q of later wrong
    steps)), divided by the number of steps; the two parts are averaged over the batch apart.
    """

    def __init__(self, zeta: float = 4.0):
        self.zeta = zeta

    def __call__(self, values: Any, labels: Any, mask: Any) -> Any:
        import torch

        valid = mask.bool()
        correct, wrong = valid & (labels >= 0.5), valid & (labels < 0.5)
        steps = valid.sum(1).clamp(min=1).to(values.dtype)
        exp_q = values.exp()
        # ranking among wrong steps: each against the wrong steps after it
        wrong_exp = torch.where(wrong, exp_q, 0)
        later = wrong_exp.flip(-1).cumsum(-1).flip(-1) - wrong_exp
        current = torch.where(wrong, exp_q, 1)
        ranking = -torch.log(current / (current + later + EPSILON))
        ranked = wrong.clone()
        ranked[:, -1] = False
        negative = (torch.where(ranked, ranking, 0).sum(1) / steps).mean()
        # the correct steps and Q0 against every wrong step with margin zeta
        wrong_mass = torch.where(wrong, (values + self.zeta).exp(), 0).sum(1, keepdim=True)
        inclusive = torch.where(correct, exp_q, 0).cumsum(1)
        inclusive[:, 0] = 0
        current = torch.where(correct, exp_q, 1)
        terms = -torch.log(current / (current + 1 + inclusive + wrong_mass + EPSILON))
        q0 = torch.log(1 + wrong_mass[:, 0] + EPSILON) * wrong.any(1)
        positive = ((q0 + torch.where(correct, terms, 0).sum(1)) / (steps + 1)).mean()
        return positive + negative


def ablate_rank(values: Any, labels: Any, mask: Any) -> Any:
    """PQM Eq. 12: the first wrong step alone in the denominator, no margin.

    The first wrong step is the true one. PQM's release takes the step at index "number of
    correct labels", which is the first wrong step only when labels read 1...1 0...0; for
    labels such as 1 0 1 0 it would read a later step (a correct one here)."""
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
    register("theory-rank", TheoryRank, description="PQM Eq. 9 as released")
    register(
        "ablate-rank",
        lambda: ablate_rank,
        description="PQM Eq. 12 ablation (the true first wrong step, not the release's index)",
    )
    register("wql", lambda: wql, description="Pinball loss on 0.1/0.5/0.9 quantile heads")
