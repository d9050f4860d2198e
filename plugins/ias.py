"""Instance-adaptive sampling (IAS): how many samples a problem or a beam needs.

From the PRM-calibration release: with success probability p per sample, N samples give at
least one success with probability 1 - (1 - p)^N, so

    N_IAS(p; C, d) = ceil( log(1 - C) / (d * log(1 - p~)) ),   p~ = clip(p, 1e-4, 1 - 1e-4)

samples reach confidence C. p should be a lower quantile of a calibrated PRM's estimate. The
result is always capped by the caller's budget (with p clipped at 1e-4 it can reach ~46,000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EPSILON = 1e-4


def n_ias(p: float, confidence: float = 0.99, d: float = 1.0) -> int:
    """Samples needed for at least one success with probability ``confidence``."""
    clipped = min(max(p, EPSILON), 1 - EPSILON)
    needed = math.log(1 - confidence) / (d * math.log(1 - clipped))
    return max(1, math.ceil(needed - 1e-9))  # 2.0000000000000004 from rounding means 2


def ias_of_k(lower_scores: Sequence[float], m_max: int, k_max: int, confidence: float) -> int:
    """Beams to keep: the fewest k whose expansion budget k * m_max covers the IAS need of the
    k-th best beam (scores sorted best first); at most ``k_max``."""
    ordered = sorted(lower_scores, reverse=True)
    limit = max(1, min(k_max, len(ordered)))
    for k in range(1, limit + 1):
        if k == limit or k * m_max >= n_ias(ordered[k - 1], confidence):
            return k
    return limit


def ias_of_m(kept_lower_scores: Sequence[float], k_max: int, m_max: int, confidence: float) -> int:
    """Children per kept beam: IAS for the weakest kept beam spread over ``k_max`` beams (the
    release divides by the maximum beam count, not by how many were kept); at most ``m_max``."""
    weakest = min(kept_lower_scores)
    return max(1, min(m_max, n_ias(weakest, confidence, d=k_max)))
