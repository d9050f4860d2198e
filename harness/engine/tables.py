"""The result table of one (task, generator): accuracy cells with bootstrap intervals and
per-problem accuracy, compute per problem, and the pass@N and majority@N reference rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from prmh.answers import majority_index
from prmh.matrix import EvalPlan, Spec
from prmh.metrics import bootstrap_mean, pass_at_k
from prmh.types import Compute, Problem
from prmh.votes import AnswerKeys


def _fraction_correct(
    picks: tuple[str | None, ...], gold: str, verdicts: dict[tuple[str, str], bool]
) -> float:
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
    golds, grader = [p.answer for p in problems], keys.grader
    columns = [{"search": s.label, "budget": b} for s in plan.search for b in plan.budget]
    rows: list[dict[str, Any]] = []
    # Reference rows from the pool alone: unbiased pass@N and majority vote over the first N.
    pass_cells, majority_cells = [], []
    for budget in plan.budget:
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
    rows.append({"kind": "reference", "label": "pass@N", "cells": pass_cells})
    rows.append({"kind": "reference", "label": "majority@N", "cells": majority_cells})
    row_keys = list(dict.fromkeys(k[0] for k in answers))
    for row in row_keys:
        cells = []
        for column in columns:
            key = (row, column["search"], column["budget"])
            correct = np.array(
                [
                    [
                        _fraction_correct(a, g, verdicts)
                        for a, g in zip(seed_row, golds, strict=True)
                    ]
                    for seed_row in answers[key]
                ]
            )
            spent = [c for seed_row in compute[key] for c in seed_row]
            n = max(1, len(spent))
            cells.append(
                {
                    **column,
                    **bootstrap_mean(correct).to_json(),
                    "compute": {
                        "generated_tokens": sum(c.generated_tokens for c in spent) / n,
                        "prm_tokens": sum(c.prm_tokens for c in spent) / n,
                        "prm_calls": sum(c.prm_calls for c in spent) / n,
                        "wall_seconds": sum(c.wall_seconds for c in spent) / n,
                    },
                    # per problem (mean over seeds): what paired comparisons between rows need
                    "per_problem": [round(float(x), 6) for x in correct.mean(axis=0)],
                }
            )
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


def _majority(samples: Sequence[str | None], keys: Callable[[str], str]) -> str | None:
    i = majority_index(samples, keys)
    return None if i is None else samples[i]
