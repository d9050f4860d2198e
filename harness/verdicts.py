"""Verdicts for (answer, gold) pairs through the store: what is stored is read (a grade that
timed out under a shorter limit is graded again), the rest is graded in the worker pool and
stored with its outcome: right, wrong, timed out, or an error of the grader.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prmh.engine.workspace import CacheStats, Progress, no_progress
from prmh.grading import Grader, GraderPool
from prmh.store import Store, content_key


def _grade_entry(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("correct"), bool):
        raise TypeError("not a grade")
    return value


def grade_pairs(
    store: Store,
    run_id: str,
    grader: Grader,
    pairs: Iterable[tuple[str, str]],
    pool: GraderPool,
    stats: CacheStats,
    progress: Progress = no_progress,
    timeout: float = 5.0,
    outcomes: dict[tuple[str, str], str] | None = None,
) -> tuple[dict[tuple[str, str], bool], dict[str, int]]:
    """Verdicts for (answer, gold) pairs: from the store, else graded in the worker pool and
    stored; also how many answers were graded, timed out or broke the grader. ``outcomes``, if
    given, receives each pair's outcome: right, wrong, timed out or error."""
    ordered = sorted(set(pairs))
    keys = {pair: _grade_key(grader, *pair) for pair in ordered}
    stored = store.get_many("grade", keys.values(), parse=_grade_entry)
    # a grade that timed out under a shorter limit than this run's is graded again
    stored = {
        k: v
        for k, v in stored.items()
        if not (v.get("timed_out") and v.get("timeout", 0.0) < timeout)
    }
    verdicts = {pair: stored[k]["correct"] for pair, k in keys.items() if k in stored}
    entries = {pair: stored[k] for pair, k in keys.items() if k in stored}
    todo = [pair for pair in ordered if pair not in verdicts]
    stats.add("grade", len(verdicts), len(todo))
    if todo:
        progress("grade", 0, len(todo))  # the clock starts here, not at the first answers back
        graded = pool.grade(
            [(grader.ref, a, g) for a, g in todo],
            timeout=timeout,
            on_progress=lambda done: progress("grade", done, len(todo)),
        )
        fresh = {}
        for pair, verdict in zip(todo, graded, strict=True):
            verdicts[pair] = verdict.correct
            fresh[keys[pair]] = {
                "correct": verdict.correct,
                "timed_out": verdict.timed_out,
                "timeout": timeout,
                "error": verdict.error,
                **({"detail": verdict.detail} if verdict.detail else {}),
            }
        store.put_many("grade", fresh, run_id, replace=True)
        entries.update((pair, fresh[keys[pair]]) for pair in todo)
    if outcomes is not None:
        outcomes.update((pair, _outcome(e)) for pair, e in entries.items())
    counts = {
        "answers": len(entries),
        "timed_out": sum(bool(e.get("timed_out")) for e in entries.values()),
        "errors": sum(e.get("error") is not None for e in entries.values()),
    }
    return verdicts, counts


def _grade_key(grader: Grader, prediction: str, gold: str) -> str:
    identity = {"grader": grader.name, "version": grader.version}
    return content_key({**identity, "prediction": prediction, "gold": gold})


def _outcome(entry: dict[str, Any]) -> str:
    if entry.get("timed_out"):
        return "timed out"
    if entry.get("error") is not None:
        return "error"
    verdict = "right" if entry["correct"] else "wrong"
    return f"{verdict}: {entry['detail']}" if entry.get("detail") else verdict
