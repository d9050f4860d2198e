"""The result table of one (task, generator): accuracy cells with bootstrap intervals and
per-problem accuracy, compute per problem, and the pass@N and majority@N reference rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prmh.answers import majority_index
from prmh.matrix import EvalPlan, Spec
from prmh.metrics import bootstrap_mean, paired_above, pass_at_k
from prmh.samples import COMPUTE
from prmh.types import Compute, Problem
from prmh.votes import AnswerKeys


def _fraction_correct(
    picks: tuple[str | None, ...], gold: str, verdicts: dict[tuple[str, str], bool]
) -> float:
    if len(picks) == 1:  # one choice (no subsets): most cells, so without a generator
        return float(picks[0] is not None and verdicts[(picks[0], gold)])
    return sum(_correct(a, gold, verdicts) for a in picks) / len(picks)


def _correct(answer: str | None, gold: str, verdicts: dict[tuple[str, str], bool]) -> bool:
    return answer is not None and verdicts[(answer, gold)]


def result_table(
    plan: EvalPlan,
    task_spec: Spec,
    gen_spec: Spec,
    problems: list[Problem],
    keys: AnswerKeys,
    answers: dict[tuple, list[list[tuple[str | None, ...]]]],
    compute: dict[tuple, list[list[Compute]]],
    pool_answers: list[list[list[str | None]]],
    verdicts: dict[tuple[str, str], bool],
) -> dict[str, Any]:
    """The table's data: the reference rows, then one row per (PRM, splitter, aggregator,
    selector) with a cell per (search, budget)."""
    golds, grader = [p.answer for p in problems], keys.grader
    columns = [{"search": s.label, "budget": b} for s in plan.search for b in plan.budget]
    rows = _reference_rows(plan.budget, golds, keys, pool_answers, verdicts)
    for row in dict.fromkeys(k[0] for k in answers):
        cells = [
            _cell(column, answers[key], compute[key], golds, verdicts)
            for column in columns
            for key in [(row, column["search"], column["budget"])]
        ]
        rows.append(
            {
                "kind": "prm",
                "prm": row.prm.label,
                "splitter": row.splitter.label,
                "agg": row.agg.label,
                "selector": row.selector.label,
                "cells": cells,
            }
        )
    _mark_below_best([r for r in rows if r["kind"] == "prm"], len(columns))
    return {
        "task": task_spec.label,
        "generator": gen_spec.label,
        "grader": {"name": grader.name, "version": grader.version},
        "problems": len(problems),
        "problem_ids": [p.id for p in problems],
        "seeds": list(plan.seed),
        "pool": plan.pool,
        "columns": columns,
        "rows": rows,
    }


def _reference_rows(
    budgets: Sequence[int],
    golds: list[str],
    keys: AnswerKeys,
    pool_answers: list[list[list[str | None]]],
    verdicts: dict[tuple[str, str], bool],
) -> list[dict[str, Any]]:
    """From the pool alone: unbiased pass@N and majority vote over the first N samples."""
    import numpy as np

    pass_cells, majority_cells = [], []
    for budget in budgets:
        passes = np.array(
            [
                [
                    pass_at_k(len(samples), sum(_correct(a, g, verdicts) for a in samples), budget)
                    for samples, g in zip(seed_rows, golds, strict=True)
                ]
                for seed_rows in pool_answers
            ]
        )
        majority = np.array(
            [
                [
                    _correct(_majority(samples[:budget], keys), g, verdicts)
                    for samples, g in zip(seed_rows, golds, strict=True)
                ]
                for seed_rows in pool_answers
            ]
        )
        pass_cells.append({"budget": budget, **bootstrap_mean(passes).to_json()})
        majority_cells.append({"budget": budget, **bootstrap_mean(majority).to_json()})
    return [
        {"kind": "reference", "label": "pass@N", "cells": pass_cells},
        {"kind": "reference", "label": "majority@N", "cells": majority_cells},
    ]


def _mark_below_best(rows: list[dict[str, Any]], columns: int) -> None:
    """Each PRM cell's ``below_best``: whether the column's best cell (the first of the
    highest means) is above it by the paired bootstrap of their per-problem difference. Every
    row of a column ran the same problems (best-of-N: on the same pool), so the pairing finds
    differences that overlapping intervals hide."""
    for j in range(columns):
        cells = [row["cells"][j] for row in rows]
        best = max(cells, key=lambda c: c["mean"], default=None)
        for cell in cells:
            cell["below_best"] = cell is not best and paired_above(best, cell)


def _cell(
    column: dict[str, Any],
    answers: list[list[tuple[str | None, ...]]],
    compute: list[list[Compute]],
    golds: list[str],
    verdicts: dict[tuple[str, str], bool],
) -> dict[str, Any]:
    """One (search, budget) cell of a row: accuracy with its interval over every seed, the
    mean compute per problem, and the per-problem accuracy paired comparisons need."""
    import numpy as np

    correct = np.array(
        [
            [_fraction_correct(a, g, verdicts) for a, g in zip(seed_row, golds, strict=True)]
            for seed_row in answers
        ]
    )
    spent = [c for seed_row in compute for c in seed_row]
    n, total = max(1, len(spent)), Compute.total(spent)
    return {
        **column,
        **bootstrap_mean(correct).to_json(),
        "compute": {k: getattr(total, k) / n for k in COMPUTE},
        "per_problem": [round(float(x), 6) for x in correct.mean(axis=0)],
    }


def _majority(samples: Sequence[str | None], keys: Callable[[str], str]) -> str | None:
    i = majority_index(samples, keys)
    return None if i is None else samples[i]
