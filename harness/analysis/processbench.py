"""ProcessBench: predict each solution's earliest wrong step (the first step scored below a
threshold); accuracy on erroneous and on correct samples and their F1, at a fixed threshold,
over a sweep, and at the threshold that is best on one subset."""

from __future__ import annotations

import math
from typing import Any

from prmh.analysis.measures import THRESHOLDS, processbench_scores
from prmh.engine import Workspace
from prmh.errors import PrmhError
from prmh.registry import Component
from prmh.types import Problem


def processbench_data(
    tasks: list[str], options: dict[str, Any], limit: int | None
) -> dict[str, list[Problem]]:
    """Each subset's samples (problems with solution steps and the earliest wrong step)."""
    from prmh.matrix import Spec
    from prmh.registry import load_registry

    registry, data = load_registry(), {}
    for name in tasks:
        spec = Spec(name).with_options(options)
        task = registry.create("task", spec.name, spec.args).instance
        problems = [p for p in task.problems(limit) if "solution_steps" in p.metadata]
        if not problems:
            raise PrmhError(
                f"task {name!r} has no ProcessBench samples (solution steps and the earliest "
                "wrong step)."
            )
        data[name] = problems
    return data


def _by_f1(row: dict[str, Any]) -> float:
    return -math.inf if math.isnan(row["f1"]) else row["f1"]


def processbench(
    workspace: Workspace,
    prms: list[tuple[str, Component]],
    data: dict[str, list[Problem]],
    threshold: float,
    pick_on: str | None = None,
) -> dict[str, Any]:
    """Per PRM label: per subset the ``fixed`` scores, the ``sweep`` over ``THRESHOLDS`` and,
    with ``pick_on``, the ``picked`` threshold's scores (``picked_threshold``)."""
    if pick_on is not None and pick_on not in data:
        raise PrmhError(f"--pick-on {pick_on!r} is not one of the --task subsets.")
    results: dict[str, Any] = {}
    for label, prm in prms:
        per_task = {}
        for name, problems in data.items():
            items = [(p, tuple(p.metadata["solution_steps"])) for p in problems]
            probs = [s.probs for s in workspace.score_steps(prm, items)]
            labels = [int(p.metadata["label"]) for p in problems]
            per_task[name] = {
                "fixed": processbench_scores(probs, labels, threshold),
                "sweep": [processbench_scores(probs, labels, t) for t in THRESHOLDS],
            }
        picked = None
        if pick_on:
            picked = max(per_task[pick_on]["sweep"], key=_by_f1)["threshold"]
            for entry in per_task.values():
                entry["picked"] = next(r for r in entry["sweep"] if r["threshold"] == picked)
        results[label] = {
            "tasks": per_task,
            "picked_threshold": picked,
            "average_f1": _average(per_task, "fixed"),
            "average_f1_picked": _average(per_task, "picked") if pick_on else None,
        }
    return results


def _average(per_task: dict[str, Any], which: str) -> float:
    """The mean F1 over the subsets, ProcessBench's headline number; nan if a subset's F1 is."""
    scores = [entry[which]["f1"] for entry in per_task.values()]
    return math.fsum(scores) / len(scores)
