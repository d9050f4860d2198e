"""Checks of a table's pools that the reader of the table must hear about: a splitter that
found no steps, so a process reward model scored whole solutions as one step (a corpus whose
steps end in single newlines under the default ``double-newline``; the code task under a world
whose splitter is not ``code-lines``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENOUGH = 8  # finished solutions a pool needs before one step in every one is a finding


def one_step_warnings(shared: Mapping[tuple, Any]) -> list[str]:
    """A warning for each splitter that read every finished solution of a pool (``shared``:
    the workspace's pools as read, ``("pool", ...) -> (problems, splitter, rows)``) as one
    step; ``whole`` does so on purpose."""
    found: dict[str, int] = {}
    for key, value in shared.items():
        if key[0] != "pool" or value[1].name == "whole":
            continue
        count = _one_step_count(s for row in value[2] for s in row)
        if count >= ENOUGH:
            found[value[1].name] = found.get(value[1].name, 0) + count
    return [
        f"splitter {name} read every one of {count} finished solutions as one step, so the "
        "PRM scored each whole, as an outcome reward model would; choose a splitter that "
        "finds their steps (`prmh list splitter`: newline, step-prefix, code-lines, ...), or "
        "--splitter whole to score whole solutions on purpose"
        for name, count in sorted(found.items())
    ]


def _one_step_count(solutions: Any) -> int:
    """How many finished solutions there are if each is one step, else 0 (at the first that
    is not: a pool with steps stops at its first solution)."""
    count = 0
    for s in solutions:
        if s.finished and s.text.strip():
            if len(s.steps) != 1:
                return 0
            count += 1
    return count
