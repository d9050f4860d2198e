"""The result table of one (task, generator): accuracy cells with bootstrap intervals and
per-problem accuracy, compute per problem, and the pass@N and majority@N reference rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prmh.answers import majority_index
from prmh.matrix import EvalPlan, Spec
from prmh.metrics import Estimate, bootstrap_means, paired_above_each, pass_at_k
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
    prm_rows = list(dict.fromkeys(k[0] for k in answers))
    keyed = [(row, c["search"], c["budget"]) for row in prm_rows for c in columns]
    correct = [
        _grid(answers[k], golds, lambda a, g: _fraction_correct(a, g, verdicts)) for k in keyed
    ]
    estimates = bootstrap_means(correct)  # every cell's interval at once
    cells = [
        _cell(c, x, e, compute[k])
        for k, c, x, e in zip(keyed, columns * len(prm_rows), correct, estimates, strict=True)
    ]
    for i, row in enumerate(prm_rows):
        rows.append(
            {
                "kind": "prm",
                "prm": row.prm.label,
                "splitter": row.splitter.label,
                "agg": row.agg.label,
                "selector": row.selector.label,
                "cells": cells[i * len(columns) : (i + 1) * len(columns)],
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
    passes = [
        _grid(pool_answers, golds, lambda samples, g, n=budget: pass_at_k(
            len(samples), sum(_correct(a, g, verdicts) for a in samples), n
        ))
        for budget in budgets
    ]  # fmt: skip
    majority = [
        _grid(pool_answers, golds, lambda samples, g, n=budget: _correct(
            _majority(samples[:n], keys), g, verdicts
        ))
        for budget in budgets
    ]  # fmt: skip
    estimates = iter(bootstrap_means(passes + majority))
    return [
        {"kind": "reference", "label": label, "cells": [
            {"budget": b, **next(estimates).to_json(), "per_problem": _per_problem(x)}
            for b, x in zip(budgets, arrays, strict=True)
        ]}
        for label, arrays in (("pass@N", passes), ("majority@N", majority))
    ]  # fmt: skip


def _mark_below_best(rows: list[dict[str, Any]], columns: int) -> None:
    """Each PRM cell's ``below_best``: whether the column's best cell (the first of the
    highest means) is above it by the paired bootstrap of their per-problem difference. Every
    row of a column ran the same problems (best-of-N: on the same pool), so the pairing finds
    differences that overlapping intervals hide."""
    for j in range(columns):
        cells = [row["cells"][j] for row in rows]
        best = max(cells, key=lambda c: c["mean"], default={})
        others = [c for c in cells if c is not best]
        best["below_best"] = False
        for cell, above in zip(others, paired_above_each(best, others), strict=True):
            cell["below_best"] = above


def _grid(per_seed: list[list[Any]], golds: list[str], value: Callable[[Any, str], float]) -> Any:
    """``value`` of each problem's entry and gold answer, per seed: [seeds, problems]."""
    import numpy as np

    return np.array([[value(x, g) for x, g in zip(row, golds, strict=True)] for row in per_seed])


def _cell(
    column: dict[str, Any], correct: Any, estimate: Estimate, compute: list[list[Compute]]
) -> dict[str, Any]:
    """One (search, budget) cell of a row: accuracy with its interval over every seed, the
    mean compute per problem, and the per-problem accuracy paired comparisons need."""
    spent = [c for seed_row in compute for c in seed_row]
    n, total = max(1, len(spent)), Compute.total(spent)
    return {
        **column,
        **estimate.to_json(),
        "compute": {k: getattr(total, k) / n for k in COMPUTE},
        "per_problem": _per_problem(correct),
    }


def _per_problem(values: Any) -> list[float]:
    """Each problem's value averaged over seeds ([seeds, problems]), as paired tests read it."""
    return [round(float(x), 6) for x in values.mean(axis=0)]


def _majority(samples: Sequence[str | None], keys: Callable[[str], str]) -> str | None:
    i = majority_index(samples, keys)
    return None if i is None else samples[i]
