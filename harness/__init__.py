"""prmh: an evaluation harness for Process Reward Models.

Plugins write ``from prmh import hookimpl`` and implement the hooks in ``prmh.hookspecs``.
Importing prmh is cheap: no model library is imported until a component needs it.
"""

from __future__ import annotations

import os

import pluggy

from prmh._version import __version__
from prmh.errors import PrmhError
from prmh.types import (
    Candidate,
    Compute,
    Generation,
    Problem,
    RolloutValue,
    SampleRequest,
    ScoreRequest,
    SearchResult,
    Solution,
    StepLabels,
    StepScores,
)

hookimpl = pluggy.HookimplMarker("prmh")


def evaluate(**config: object) -> object:
    """Run an evaluation from Python; see ``prmh.api.evaluate`` (imported on first use)."""
    from prmh.api import evaluate as run

    return run(**config)  # type: ignore[arg-type]


def load_run(run: str | os.PathLike[str] = "latest", results_dir: object = None) -> object:
    """A run's per-sample results (``.rows(level)``, ``.to_pandas(level)``); see
    ``prmh.results.load_run``."""
    from prmh.results import load_run as load

    return load(run, results_dir)  # type: ignore[arg-type]


__all__ = [
    "Candidate",
    "Compute",
    "Generation",
    "PrmhError",
    "Problem",
    "RolloutValue",
    "SampleRequest",
    "ScoreRequest",
    "SearchResult",
    "Solution",
    "StepLabels",
    "StepScores",
    "__version__",
    "evaluate",
    "hookimpl",
    "load_run",
]
