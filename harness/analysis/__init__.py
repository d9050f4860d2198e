"""PRM analyses, as library functions: ``processbench`` (step-error identification),
``calibration`` (scores against rollout success rates) and ``correlation`` (partial-solution
scores against final correctness), over PRMs scoring through a run's store (``prmh.engine``);
``measures`` holds the pure metrics they compute. ``prmh analyze`` calls them."""

from prmh.analysis.measures import (
    THRESHOLDS,
    calibration_scores,
    first_error,
    pearson,
    pearson_interval,
    processbench_scores,
    quantile_coverage,
)

__all__ = [
    "THRESHOLDS",
    "calibration_scores",
    "first_error",
    "pearson",
    "pearson_interval",
    "processbench_scores",
    "quantile_coverage",
]
