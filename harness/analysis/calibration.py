"""Calibration: how well PRM scores match rollout success rates (expected calibration error,
Brier score, a reliability diagram and, for quantile PRMs, each quantile's coverage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prmh.analysis.measures import calibration_scores, quantile_coverage
from prmh.engine import Workspace
from prmh.errors import PrmhError
from prmh.files import parse_json
from prmh.options import is_number
from prmh.registry import Component

LEVELS = (0.1, 0.5, 0.9)


def read_rollouts(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``prmh rollout`` file, or of the calibration release's data (a JSON list or
    JSONL of ``question``, ``reasoning_prefix``, ``success_prob``, as in the Hugging Face dataset
    young-j-park/prm_calibration), or a message naming the line that is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PrmhError(f"cannot read rollouts {str(path)!r}: {e}.") from None
    if text.lstrip().startswith("["):
        try:
            rows = parse_json(text)
        except json.JSONDecodeError as e:
            raise PrmhError(f"{path}: not valid JSON at line {e.lineno}: {e.msg}.") from e
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(parse_json(line))
                except json.JSONDecodeError as e:
                    raise PrmhError(f"{path} line {number}: not valid JSON: {e.msg}.") from e
    release = {"question", "reasoning_prefix", "success_prob"}
    if rows and all(isinstance(r, dict) and release <= set(r) for r in rows):
        check, convert = _release_row, from_calibration_release
    elif rows and all(
        isinstance(r, dict) and {"question", "steps", "values"} <= set(r) for r in rows
    ):
        check, convert = _rollout_row, list
    else:
        raise PrmhError(
            f"{path} is not a `prmh rollout` file (question, steps, values) nor the "
            "calibration release's data (question, reasoning_prefix, success_prob)."
        )
    for i, row in enumerate(rows):
        if wrong := check(row):
            raise PrmhError(f"{path} row {i + 1}: {wrong}.")
    return convert(rows)


def _rate(x: Any) -> bool:
    return is_number(x) and 0.0 <= x <= 1.0


def _rollout_row(r: dict[str, Any]) -> str | None:
    """What is wrong with a ``prmh rollout`` row, if anything."""
    if not isinstance(r["question"], str):
        return "'question' is not text"
    if not isinstance(r["steps"], list) or not all(isinstance(s, str) for s in r["steps"]):
        return "'steps' is not a list of text"
    values = r["values"]
    if not isinstance(values, list) or not all(
        isinstance(v, dict) and isinstance(v.get("k"), int) and v["k"] >= 0
        and _rate(v.get("rate")) and _rate(v.get("weighted", 0.0))
        for v in values
    ):  # fmt: skip
        return "'values' is not a list of {k: a step count, rate and weighted in [0, 1]}"
    return None


def _release_row(r: dict[str, Any]) -> str | None:
    """What is wrong with a row of the calibration release's data, if anything."""
    if not isinstance(r["reasoning_prefix"], str | None):
        return "'reasoning_prefix' is not text"
    if not _rate(r["success_prob"]):
        return "'success_prob' is not a number in [0, 1]"
    return None


def from_calibration_release(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The release's prefix rows as rollout rows: its k-step prefix is ``"\n\n".join(steps[:k])
    + "\n\n"`` of a first-pass solution (``main_rollout_vllm.py``), so prefixes of one solution
    chain together; each chain becomes one row, cut where a prefix's value is missing (the
    release keeps no row for a whole solution). The empty prefix belongs to every chain."""
    by_question: dict[str, list[tuple[list[str], dict[int, float]]]] = {}
    ordered = sorted(rows, key=lambda r: -len(r["reasoning_prefix"] or ""))
    for r in ordered:
        prefix = (r["reasoning_prefix"] or "").rstrip("\n")
        steps = prefix.split("\n\n") if prefix.strip() else []
        chains = by_question.setdefault(str(r["question"]), [])
        matching = [c for c in chains if c[0][: len(steps)] == steps]
        if not matching:
            chains.append((steps, {}))
            matching = chains[-1:]
        for _, values in matching:
            values[len(steps)] = float(r["success_prob"])
    out = []
    for q, (question, chains) in enumerate(by_question.items()):
        for sample, (steps, values) in enumerate(chains):
            known = 0
            while known + 1 in values:
                known += 1
            if 0 not in values:
                continue
            out.append(
                {
                    "problem_id": f"calibration-{q}",
                    "question": question,
                    "sample": sample,
                    "steps": steps[:known],
                    "values": [
                        {"k": k, "rate": values[k], "weighted": values[k]} for k in range(known + 1)
                    ],
                }
            )
    return out


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
