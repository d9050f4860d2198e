"""Step labelers: Math-Shepherd's Monte Carlo labels and UnPRM's searches for the first error.

Prefix k means the first k steps (k = 0: the question alone). Step i (0-based) is judged by the
prefix that ends with it, k = i + 1; the last step gets the solution's outcome.

- ``mc-hard`` / ``mc-soft`` (Math-Shepherd): every step from ``n`` rollouts of its prefix; hard
  labels are 1 when any rollout succeeds, soft labels are the success rate.
- UnPRM: only incorrect solutions are searched (correct ones are all 1). The threshold is the
  question's own value, theta = v(prefix 0), v the perplexity-weighted success rate; step i is
  wrong when v(prefix i + 1) < theta. Steps before the error are 1, the rest 0. Strategies:
  ``sequential`` (probe steps in order), ``binary`` (binary search), ``adaptive-binary``
  (binary search whose first probe moves earlier when theta < 0.3 and later when theta >= 0.9),
  ``uncertainty`` (probe steps by decreasing uncertainty; the first failing probe is the error)
  and ``uncertainty-delta`` (by decreasing rise in uncertainty from the previous step; step 0
  is never probed). ``sequential`` and ``binary`` use a fixed budget (48 rollouts per probe);
  the others an adaptive one: 72 rollouts at the root, the solution is skipped when at most 10
  succeed, else n = max(16, 8 * ceil(i / 8)) for i the 0-based index of the root rollout that
  brings the 10th success (as in UnPRM's ``generate_train_data.py``), and the root is
  re-estimated with n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

from prmh import Problem, RolloutValue, StepLabels, hookimpl
from prmh.errors import PrmhError

Rollout = Callable[[int, int], RolloutValue]


class Spend:
    """A rollout function that counts what it costs."""

    def __init__(self, rollout: Rollout):
        self.rollout, self.rollouts, self.tokens = rollout, 0, 0

    def __call__(self, k: int, n: int) -> RolloutValue:
        value = self.rollout(k, n)
        self.rollouts += n
        self.tokens += value.tokens
        return value


class MonteCarlo:
    """Math-Shepherd labels: ``hard`` (any rollout succeeds) or soft (the success rate)."""

    def __init__(self, hard: bool, n: int = 8):
        if n < 1:
            raise PrmhError(f"rollouts per prefix must be at least 1, got {n}.")
        self.hard, self.n = hard, n

    def label(
        self,
        problem: Problem,
        steps: Sequence[str],
        correct: bool,
        rollout: Rollout,
        uncertainty: Sequence[float] | None = None,
    ) -> StepLabels:
        spend = Spend(rollout)
        labels = []
        for i in range(len(steps) - 1):
            rate = spend(i + 1, self.n).rate
            labels.append(float(rate > 0) if self.hard else rate)
        labels.append(float(correct))
        wrong = [i for i, x in enumerate(labels) if x < 0.5]
        return StepLabels(tuple(labels), wrong[0] if wrong else None, spend.rollouts, spend.tokens)


class UnPRMSearch:
    """UnPRM's search for the first wrong step of an incorrect solution."""

    STRATEGIES = ("sequential", "binary", "adaptive-binary", "uncertainty", "uncertainty-delta")

    def __init__(self, strategy: str, n: int = 48, root_n: int = 72, min_correct: int = 10):
        if strategy not in self.STRATEGIES:
            raise PrmhError(f"unknown UnPRM strategy {strategy!r}.")
        self.strategy, self.n, self.root_n, self.min_correct = strategy, n, root_n, min_correct
        self.adaptive = strategy not in ("sequential", "binary")

    def label(
        self,
        problem: Problem,
        steps: Sequence[str],
        correct: bool,
        rollout: Rollout,
        uncertainty: Sequence[float] | None = None,
    ) -> StepLabels:
        count = len(steps)
        if correct:
            return StepLabels((1.0,) * count, None, 0, 0)
        if self.strategy.startswith("uncertainty") and (
            uncertainty is None or len(uncertainty) != count
        ):
            raise PrmhError(
                f"the {self.strategy} labeler needs one uncertainty per step; the generator "
                "must return token log-probabilities."
            )
        spend = Spend(rollout)
        n = self.n
        if self.adaptive:
            root = spend(0, self.root_n)
            successes = 0
            reached = None
            for i, ok in enumerate(root.outcomes):  # 0-based, as in the release
                successes += ok
                if successes >= self.min_correct:
                    reached = i
                    break
            if reached is None or sum(root.outcomes) <= self.min_correct:
                return StepLabels(None, None, spend.rollouts, spend.tokens)
            n = max(16, 8 * math.ceil(reached / 8))
        theta = spend(0, n).weighted

        def fails(i: int) -> bool:
            return spend(i + 1, n).weighted < theta

        error = self._search(count, fails, theta, uncertainty)
        labels = (*(1.0 if i < error else 0.0 for i in range(count - 1)), float(correct))
        return StepLabels(labels, error, spend.rollouts, spend.tokens)

    def _search(
        self,
        count: int,
        fails: Callable[[int], bool],
        theta: float,
        uncertainty: Sequence[float] | None,
    ) -> int:
        last = count - 1  # the answer step: wrong if nothing before it is
        if self.strategy == "sequential":
            return next((i for i in range(last) if fails(i)), last)
        if self.strategy in ("binary", "adaptive-binary"):
            low, high, first = 0, last - 1, True
            while low <= high:
                mid = (low + high) // 2
                if first and self.strategy == "adaptive-binary" and high >= 4:
                    rating = round(5 * theta)
                    if rating < 2:
                        mid -= high // 4
                    elif rating >= 5:
                        mid += high // 4
                    mid = min(max(mid, low), high)
                first = False
                if fails(mid):
                    high = mid - 1
                else:
                    low = mid + 1
            return low
        assert uncertainty is not None
        if self.strategy == "uncertainty":
            order = sorted(range(last), key=lambda i: (-uncertainty[i], i))
        else:
            order = sorted(
                range(1, last), key=lambda i: (-(uncertainty[i] - uncertainty[i - 1]), i)
            )
        return next((i for i in order if fails(i)), last)


@hookimpl
def prmh_register_labeler(register):
    register("mc-hard", partial(MonteCarlo, True), description="Math-Shepherd hard MC labels")
    register("mc-soft", partial(MonteCarlo, False), description="Math-Shepherd soft MC labels")
    for strategy in UnPRMSearch.STRATEGIES:
        register(
            strategy,
            partial(UnPRMSearch, strategy),
            description=f"UnPRM {strategy} search for the first wrong step",
        )
