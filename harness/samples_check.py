"""Whether a per-sample file's entries have the shapes ``prmh.results`` and the viewer read, and
refer only to what the file holds: a damaged or foreign file is refused with one message
instead of failing halfway through an export."""

from __future__ import annotations

from typing import Any

from prmh.options import is_number

NONE = type(None)
FIELDS: dict[str, dict[str, Any]] = {
    "problem": {"task": str, "id": str, "question": str, "gold": str},
    "solution": {"id": int, "task": str, "generator": str, "problem": str, "text": str,
                 "steps": list, "answer": (str, NONE)},
    "scores": {"prm": str, "solution": int, "probs": list, "quantiles": (list, NONE)},
    "cell": {"task": str, "generator": str, "prm": str, "splitter": str, "agg": str,
             "search": str, "budget": int, "seed": int, "problem": str, "candidates": list,
             "chosen": dict, "compute": dict},
    "grade": {"task": str, "answer": str, "gold": str, "correct": bool, "outcome": str},
}  # fmt: skip


def what_is_wrong(lines: list[Any], compute: tuple[str, ...]) -> str | None:
    """The first entry that is not what prmh writes, said in words; None when all are."""
    for n, line in enumerate(lines, 1):
        wrong = _shape(line) or _values(line, compute)
        if wrong:
            return f"entry {n}: {wrong}"
    solutions = {line["id"] for line in lines if line["t"] == "solution"}
    problems = {(line["task"], line["id"]) for line in lines if line["t"] == "problem"}
    for n, line in enumerate(lines, 1):
        if line["t"] == "scores" and line["solution"] not in solutions:
            return f"entry {n}: scores of solution {line['solution']}, which the file lacks"
        if line["t"] == "cell":
            if (line["task"], line["problem"]) not in problems:
                return f"entry {n}: a cell of problem {line['problem']!r}, which the file lacks"
            if any(c[0] not in solutions for c in line["candidates"]):
                return f"entry {n}: a candidate solution the file lacks"
    return None


def _shape(line: Any) -> str | None:
    if not isinstance(line, dict) or line.get("t") not in FIELDS:
        return "not an entry of a known type"
    for key, kind in FIELDS[line["t"]].items():
        if not isinstance(line.get(key), kind) or (kind is int and isinstance(line[key], bool)):
            return f"a {line['t']} entry whose {key!r} is missing or of the wrong type"
    return None


def _values(line: dict[str, Any], compute: tuple[str, ...]) -> str | None:
    t = line["t"]
    if t == "solution" and not all(isinstance(s, str) for s in line["steps"]):
        return "a solution whose steps are not all text"
    if t == "scores":
        quantiles = line["quantiles"] or []
        if not all(is_number(p) for p in line["probs"]) or not all(
            isinstance(q, list) and all(is_number(x) for x in q) for q in quantiles
        ):
            return "scores that are not all numbers"
    if t == "cell":
        size = len(line["candidates"])
        if not all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], int) and
                   is_number(c[1]) for c in line["candidates"]):  # fmt: skip
            return "a cell whose candidates are not [solution, score] pairs"
        for picks in line["chosen"].values():
            if not isinstance(picks, list) or not all(
                i is None or (isinstance(i, int) and 0 <= i < size) for i in picks
            ):
                return "a cell whose choices are not indices of its candidates"
        if not all(is_number(line["compute"].get(k)) for k in compute):
            return "a cell whose compute is not numbers"
    return None
