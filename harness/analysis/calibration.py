"""Calibration: how well PRM scores match rollout success rates (expected calibration error,
Brier score, a reliability diagram and, for quantile PRMs, each quantile's coverage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prmh.analysis.measures import calibration_scores, quantile_coverage
from prmh.engine import Workspace
from prmh.errors import PrmhError
from prmh.registry import Component

LEVELS = (0.1, 0.5, 0.9)


def read_rollouts(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``prmh rollout`` file, or a message naming the line that is not one."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise PrmhError(f"{path} line {number}: not valid JSON: {e.msg}.") from e
    if not rows or not all(
        isinstance(r, dict) and {"question", "steps", "values"} <= set(r) for r in rows
    ):
        raise PrmhError(f"{path} is not a `prmh rollout` file (question, steps, values).")
    return rows


def calibration_points(
    workspace: Workspace, prm: Component, rows: list[dict[str, Any]]
) -> tuple[list, list, list]:
    """(predicted, observed, quantiles) per rollout prefix: the prefix's last step score from
    one pass over the whole solution (a causal PRM scores a prefix as if alone); the empty
    prefix is scored as one empty step."""
    from prmh import Problem

    problems = [
        Problem(str(r.get("problem_id", i)), r["question"], str(r.get("answer", "")), _gold(r))
        for i, r in enumerate(rows)
    ]
    full = workspace.score_steps(
        prm, [(p, tuple(r["steps"])) for p, r in zip(problems, rows, strict=True)]
    )
    empty = workspace.score_steps(prm, [(p, ("",)) for p in problems])
    predicted, observed, quantiles = [], [], []
    for r, scores, question in zip(rows, full, empty, strict=True):
        for value in r["values"]:
            k = value["k"]
            if k > len(r["steps"]):
                continue
            source, index = (question, 0) if k == 0 else (scores, k - 1)
            predicted.append(source.probs[index])
            observed.append(value["rate"])
            if source.quantiles is not None:
                quantiles.append(source.quantiles[index])
    return predicted, observed, quantiles


def _gold(row: dict[str, Any]) -> tuple[str, ...] | None:
    """The problem's gold steps, when the rollout file kept them (arith problems)."""
    gold = row.get("gold_steps")
    if gold is None:
        return None
    if not isinstance(gold, list) or not all(isinstance(s, str) for s in gold):
        raise PrmhError("a rollout line's gold_steps must be a list of strings.")
    return tuple(gold)


def calibration(
    workspace: Workspace,
    prms: list[tuple[str, Component]],
    rows: list[dict[str, Any]],
    bins: int = 10,
) -> list[dict[str, Any]]:
    """One entry per PRM: ``calibration_scores`` (ECE, Brier, diagram, count) and, for a
    quantile PRM, ``coverage`` of each of ``LEVELS``."""
    results = []
    for label, prm in prms:
        predicted, observed, quantiles = calibration_points(workspace, prm, rows)
        entry = {"prm": label, **calibration_scores(predicted, observed, bins)}
        if quantiles:
            entry["coverage"] = quantile_coverage(quantiles, observed, LEVELS)
        results.append(entry)
    return results
