"""A run's per-sample results as tables: ``prmh.load_run(RUN).rows(level)``, ``.to_pandas(level)``
and ``prmh export``. Levels and their columns (``LEVELS``):

- ``cell``: one row per (task, generator, prm, splitter, agg, selector, search, budget, seed):
  ``problems``, ``accuracy`` (fraction), mean compute per problem (``generated_tokens``,
  ``prm_tokens``, ``prm_calls``, ``wall_seconds``).
- ``problem``: one row per cell and problem: ``problem_id``, ``gold``, ``answer`` (the chosen
  one; ``|``-joined when the search drew subsets), ``correct`` (fraction over subsets),
  ``outcome`` (right, wrong, timed out, error, no answer), ``candidates``, ``chosen`` (index) and
  the compute.
- ``candidate``: one row per search cell, problem and candidate (selectors share candidates):
  ``candidate`` (index), ``solution_id``, ``answer``, ``score`` (aggregated), ``steps``,
  ``correct``, ``outcome``, ``chosen_by`` (the selectors that chose it, ``;``-joined).
- ``step``: one row per PRM, scored solution and step: ``solution_id``, ``problem_id``,
  ``step`` (0-based), ``text``, ``score`` (the PRM's probability), ``quantiles``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import read_json, strict_json
from prmh.samples import COMPUTE, read_samples

CELL = ("task", "generator", "prm", "splitter", "agg", "selector", "search", "budget", "seed")
LEVELS = {
    "cell": (*CELL, "problems", "accuracy", *COMPUTE),
    "problem": (*CELL, "problem_id", "gold", "answer", "correct", "outcome", "candidates",
                "chosen", *COMPUTE),
    "candidate": (*(c for c in CELL if c != "selector"), "problem_id", "candidate",
                  "solution_id", "answer", "score", "steps", "correct", "outcome", "chosen_by"),
    "step": ("task", "generator", "prm", "problem_id", "solution_id", "step", "text", "score",
             "quantiles"),
}  # fmt: skip
FORMATS = ("csv", "jsonl", "parquet")


@dataclass
class RunResults:
    """A run's record and its per-sample results."""

    record: dict[str, Any]
    lines: list[dict[str, Any]]

    def _index(self) -> tuple[dict, dict, dict]:
        grades = {(g["task"], g["answer"], g["gold"]): g for g in self._of("grade")}
        solutions = {s["id"]: s for s in self._of("solution")}
        golds = {(p["task"], p["id"]): p["gold"] for p in self._of("problem")}
        return grades, solutions, golds

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["t"] == kind]

    def rows(self, level: str = "problem") -> list[dict[str, Any]]:
        """The rows of one level (see the module's documentation for the columns)."""
        if level not in LEVELS:
            raise PrmhError(f"unknown level {level!r}; levels: {', '.join(LEVELS)}.")
        if level == "step":
            return self._steps()
        if level == "candidate":
            return self._candidates()
        problems = self._problems()
        return problems if level == "problem" else _cells(problems)

    def _problems(self) -> list[dict[str, Any]]:
        grades, solutions, golds = self._index()
        rows = []
        for cell in self._of("cell"):
            gold = golds[(cell["task"], cell["problem"])]
            for selector, picks in cell["chosen"].items():
                answers = [
                    None if i is None else solutions[cell["candidates"][i][0]]["answer"]
                    for i in picks
                ]
                verdicts = [_verdict(grades, cell["task"], a, gold) for a in answers]
                rows.append(
                    {
                        **{k: cell[k] for k in CELL if k != "selector"},
                        "selector": selector,
                        "problem_id": cell["problem"],
                        "gold": gold,
                        "answer": "|".join("" if a is None else a for a in answers),
                        "correct": sum(c for c, _ in verdicts) / max(1, len(verdicts)),
                        "outcome": verdicts[0][1] if len(verdicts) == 1 else "subsets",
                        "candidates": len(cell["candidates"]),
                        "chosen": picks[0] if len(picks) == 1 else None,
                        **{k: cell["compute"][k] for k in COMPUTE},
                    }
                )
        return [{k: r[k] for k in LEVELS["problem"]} for r in rows]

    def _candidates(self) -> list[dict[str, Any]]:
        grades, solutions, golds = self._index()
        rows = []
        for cell in self._of("cell"):
            gold = golds[(cell["task"], cell["problem"])]
            for i, (solution_id, score) in enumerate(cell["candidates"]):
                solution = solutions[solution_id]
                correct, outcome = _verdict(grades, cell["task"], solution["answer"], gold)
                chosen = [s for s, picks in cell["chosen"].items() if i in picks]
                rows.append(
                    {
                        **{k: cell[k] for k in CELL if k != "selector"},
                        "problem_id": cell["problem"],
                        "candidate": i,
                        "solution_id": solution_id,
                        "answer": solution["answer"],
                        "score": score,
                        "steps": len(solution["steps"]),
                        "correct": correct,
                        "outcome": outcome,
                        "chosen_by": ";".join(chosen),
                    }
                )
        return rows

    def _steps(self) -> list[dict[str, Any]]:
        _, solutions, _ = self._index()
        rows = []
        for scores in self._of("scores"):
            solution = solutions[scores["solution"]]
            for k, text in enumerate(solution["steps"]):
                quantiles = scores["quantiles"]
                rows.append(
                    {
                        "task": solution["task"],
                        "generator": solution["generator"],
                        "prm": scores["prm"],
                        "problem_id": solution["problem"],
                        "solution_id": solution["id"],
                        "step": k,
                        "text": text,
                        "score": scores["probs"][k] if k < len(scores["probs"]) else None,
                        "quantiles": None if quantiles is None else quantiles[k],
                    }
                )
        return rows

    def to_pandas(self, level: str = "problem") -> Any:
        """One level as a pandas DataFrame (needs pandas: pip install 'prmh[analysis]')."""
        try:
            import pandas as pd
        except ImportError as e:
            raise PrmhError("to_pandas needs pandas: pip install 'prmh[analysis]'.") from e
        return pd.DataFrame(self.rows(level), columns=list(LEVELS[level]))

    def export(self, level: str, fmt: str) -> bytes:
        """One level as CSV, JSON lines or Parquet bytes. CSV is for spreadsheets: text they
        would run as a formula gets a leading ``'`` (``_csv_value``); JSON lines are strict JSON
        (a nan score is null); Parquet holds every value as it is."""
        if fmt not in FORMATS:
            raise PrmhError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}.")
        rows = self.rows(level)
        if fmt == "jsonl":
            return "".join(strict_json(r) + "\n" for r in rows).encode()  # nan: null
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(LEVELS[level]))  # RFC 4180: CRLF
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
            return out.getvalue().encode()
        buffer = io.BytesIO()
        try:
            self.to_pandas(level).to_parquet(buffer, index=False)
        except ImportError as e:
            raise PrmhError("Parquet needs pyarrow: pip install 'prmh[analysis]'.") from e
        return buffer.getvalue()


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _csv_value(value: Any) -> Any:
    """A CSV cell: lists and dicts as JSON; text a spreadsheet would run as a formula (model
    text beginning ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, e.g.
    ``=HYPERLINK(...)``) behind a ``'``, which spreadsheets show as text (OWASP's CSV
    injection advice); a signed number such as ``-3`` stays as it is."""
    text = json.dumps(value) if isinstance(value, list | dict) else value
    if isinstance(text, str) and text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _verdict(grades: dict, task: str, answer: str | None, gold: str) -> tuple[bool, str]:
    if answer is None:
        return False, "no answer"
    grade = grades.get((task, answer, gold))
    if grade is None:
        return False, "ungraded"
    return bool(grade["correct"]), grade["outcome"]


def _cells(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in problems:
        groups.setdefault(tuple(row[k] for k in CELL), []).append(row)
    return [
        {
            **dict(zip(CELL, key, strict=True)),
            "problems": len(rows),
            "accuracy": sum(r["correct"] for r in rows) / len(rows),
            **{k: sum(r[k] for r in rows) / len(rows) for k in COMPUTE},
        }
        for key, rows in groups.items()
    ]


def load_run(
    run: str | os.PathLike[str] = "latest", results_dir: str | os.PathLike[str] | None = None
) -> RunResults:
    """A run's per-sample results, by run id (or a unique prefix), "latest" or record path."""
    from prmh.lookup import find_record
    from prmh.store import results_path

    run = os.fspath(run) if isinstance(run, os.PathLike) else run
    if not isinstance(run, str) or not isinstance(results_dir, str | os.PathLike | None):
        raise PrmhError(
            f"load_run takes a run id, 'latest' or a record's path as text, and a results "
            f"directory as a path, not {run!r} and {results_dir!r}."
        )
    record = find_record(results_path(results_dir), run)
    name = (record.get("metrics") or {}).get("samples")
    runs = results_path(results_dir) / "runs"
    if Path(run).suffix == ".json" and Path(run).is_file():
        runs = Path(run).parent
    if name and (not isinstance(name, str) or Path(name).name != name):  # ../../x, a list
        raise PrmhError(
            f"run {record['run_id']}'s record names its per-sample file {name!r}, not a file "
            "in its runs folder: the record was edited. Run its command again."
        )
    if not name or not (runs / name).is_file():
        why = _why_none(record, runs)
        raise PrmhError(f"run {record['run_id']} has no per-sample results: {why}")
    return RunResults(record, read_samples(runs / name))


def _why_none(record: dict[str, Any], runs: Path) -> str:
    """Why a run has no per-sample results, and the way out."""
    status = record.get("status")
    if status == "started":  # alive: find_record marks a dead run's record interrupted
        return "it is still running; they are written when it finishes."
    again = "run its command again: it resumes from the store, and the new run keeps them."
    ended = {"interrupted": "it was interrupted", "error": "it ended in an error"}
    if status in ended:
        return f"{ended[status]} before writing them; {again}"
    if "tables" in (record.get("metrics") or {}):
        return f"made by an older prmh; {again}"
    command = (record.get("config") or {}).get("command")
    made = f" (a `prmh {command}` run)" if isinstance(command, str) else ""
    latest = _latest_evaluation(runs)
    name = f"; the latest evaluation here is {latest}" if latest else ""
    return f"it is not an evaluation{made}: give an evaluation's run id{name}."


def _latest_evaluation(runs: Path, look: int = 200) -> str | None:
    """The id of the latest of the last ``look`` records that has per-sample results."""
    for path in sorted(runs.glob("*.json"), reverse=True)[:look]:
        try:
            metrics = read_json(path).get("metrics") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(metrics, dict) and metrics.get("samples"):
            return path.stem
    return None
