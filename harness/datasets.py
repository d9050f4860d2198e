"""Training data from solutions: rollout files (``prmh rollout``) and step-labelled files
(``prmh label``), written atomically from a ``prmh.engine.source.Source``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prmh.engine.source import Source
from prmh.records import write_text_atomic


def write_rollouts(source: Source, rollouts: int, out: Path) -> dict[str, Any]:
    """Each step prefix of each solution (the empty prefix included) continued ``rollouts``
    times; one JSON line per solution with each prefix's success rate (the full solution's
    value is its own verdict). Returns what was done and the cache statistics."""
    from prmh.rollout import Prefix

    solutions = source.solutions()
    prefixes = [
        Prefix(x.problem, x.solution.steps, k, rollouts)
        for x in solutions
        for k in range(len(x.solution.steps))
    ]
    values = iter(source.rollouts.values(prefixes))
    lines = []
    for x in solutions:
        steps = x.solution.steps
        rows = []
        for k in range(len(steps)):
            value = next(values)
            rows.append({"k": k, "rate": value.rate, "weighted": value.weighted})
        rows.append({"k": len(steps), "rate": float(x.correct), "weighted": float(x.correct)})
        row = {
            "problem_id": x.problem.id,
            "question": x.problem.question,
            "answer": x.problem.answer,
            "sample": x.sample,
            "steps": list(steps),
            "correct": x.correct,
            "values": rows,
        }
        lines.append(json.dumps(row))
    write_text_atomic(out, "".join(line + "\n" for line in lines))
    return {
        "solutions": len(solutions),
        "prefixes": len(prefixes),
        "cache": source.workspace.stats.to_json(),
    }


def write_labelled(
    source: Source, labeler: Any, uncertainty: str | None, out: Path, fmt: str
) -> dict[str, Any]:
    """Label every solution of ``source`` with ``labeler`` and write them in ``fmt``
    (``uncertainty``: the measure the labeler needs, if any); returns what it cost."""
    from prmh.labels import LabelledSolution, write_labels
    from prmh.plugins.uncertainty import step_uncertainty

    items, skipped, rollouts, tokens = [], 0, 0, 0
    for x in source.solutions():
        p, steps = x.problem, x.solution.steps
        u = step_uncertainty(x.generation, steps, uncertainty) if uncertainty else None
        result = labeler.label(p, steps, x.correct, source.rollouts.for_solution(p, steps), u)
        rollouts, tokens = rollouts + result.rollouts, tokens + result.tokens
        if result.labels is None:
            skipped += 1
            continue
        items.append(LabelledSolution(p.question, steps, result.labels, p.answer))
    return {
        "labelled": write_labels(out, items, fmt),
        "skipped": skipped,
        "rollouts": rollouts,
        "generated_tokens": tokens,
    }
