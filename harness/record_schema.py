"""The shape a run record must have before a leaderboard takes it: records are files from
strangers, so every field a board reads is checked here, and a record that fails is refused
with each problem named, before anything is written.

``problems(record)`` returns what is wrong (empty when nothing is). Checked: the identifiers
(``run_id`` is a plain name, never a path), the status, the configuration's task entries, and
every result table a board renders: its labels are text, counts are whole numbers, and each
cell's mean lies in its interval inside [0, 1], all finite.
"""

from __future__ import annotations

import re
from typing import Any

from prmh.options import is_number

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_PROBLEMS = 20  # listed before the rest is summarised


def _cell(cell: Any, where: str) -> list[str]:
    if not isinstance(cell, dict):
        return [f"{where} is not an object"]
    out = []
    if not isinstance(cell.get("search"), str):
        out.append(f"{where} has no search name")
    if not isinstance(cell.get("budget"), int) or isinstance(cell.get("budget"), bool):
        out.append(f"{where} has no whole-number budget")
    values = [cell.get(k) for k in ("low", "mean", "high")]
    if not all(is_number(v, finite=True) for v in values):
        out.append(f"{where} needs finite numbers low, mean and high")
    elif not 0 <= values[0] <= values[1] <= values[2] <= 1:
        out.append(f"{where} must have 0 <= low <= mean <= high <= 1, not {values}")
    compute = cell.get("compute", {})
    if not isinstance(compute, dict) or not all(
        is_number(v, finite=True) for v in compute.values()
    ):
        out.append(f"{where} has compute that is not finite numbers")
    per_problem = cell.get("per_problem", [])
    if not isinstance(per_problem, list) or not all(
        is_number(v, finite=True) and 0 <= v <= 1 for v in per_problem
    ):
        out.append(f"{where} has per-problem values outside [0, 1]")
    if not isinstance(cell.get("below_best", False), bool):
        out.append(f"{where} has a below_best that is not true or false")
    return out


def _table(table: Any, where: str) -> list[str]:
    if not isinstance(table, dict):
        return [f"{where} is not an object"]
    out = []
    for key in ("task", "generator"):
        if not isinstance(table.get(key), str):
            out.append(f"{where} has no {key} name")
    grader = table.get("grader")
    if not (isinstance(grader, dict) and all(isinstance(grader.get(k), str) for k in ("name",))):
        out.append(f"{where} has no grader name")
    problems = table.get("problems")
    if not isinstance(problems, int) or isinstance(problems, bool) or problems < 1:
        out.append(f"{where} has no problem count")
    seeds = table.get("seeds")
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        out.append(f"{where} has seeds that are not whole numbers")
    ids = table.get("problem_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        out.append(f"{where} has problem ids that are not text")
    rows = table.get("rows")
    if not isinstance(rows, list):
        return [*out, f"{where} has no rows"]
    for r, row in enumerate(rows):
        here = f"{where} row {r + 1}"
        if not isinstance(row, dict) or row.get("kind") not in ("prm", "reference"):
            out.append(f"{here} is not a prm or reference row")
            continue
        if row["kind"] == "prm" and not all(
            isinstance(row.get(k), str) for k in ("prm", "agg", "selector")
        ):
            out.append(f"{here} needs prm, agg and selector names")
        cells = row.get("cells")
        if not isinstance(cells, list):
            out.append(f"{here} has no cells")
            continue
        if row["kind"] == "prm":
            for c, cell in enumerate(cells):
                out += _cell(cell, f"{here} cell {c + 1}")
    return out


def problems(record: Any) -> list[str]:
    """What is wrong with ``record`` as a leaderboard reads it."""
    if not isinstance(record, dict):
        return ["the record is not a JSON object"]
    out = []
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        out.append(f"run_id {str(run_id)[:40]!r} is not a plain name (letters, digits, . _ -)")
    if not isinstance(record.get("status"), str):
        out.append("status is not text")
    config = record.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("task", []), list):
        out.append("config is not an object with a list of tasks")
    elif not all(isinstance(t, dict) for t in config.get("task", [])):
        out.append("config's tasks are not objects")
    metrics = record.get("metrics")
    if metrics is not None:
        tables = metrics.get("tables", []) if isinstance(metrics, dict) else None
        if not isinstance(tables, list):
            out.append("metrics is not an object whose tables are a list")
        else:
            for t, table in enumerate(tables):
                out += _table(table, f"table {t + 1}")
    if len(out) > MAX_PROBLEMS:
        out = [*out[:MAX_PROBLEMS], f"and {len(out) - MAX_PROBLEMS} more"]
    return out
