"""What makes leaderboard rows comparable, and how rows are ranked.

A board pins, in the ``[pinned]`` table of its ``board.toml``, what every record must share:
the problem count, the seeds, the task's options (split, seed, grader...), and the generator
(name, options that change output, weights fingerprint) unless the board compares generators
(``about = "generator"``). What a board does not pin yet, its first accepted record sets. A
record that differs is refused with the difference named.

Ranks: a row's rank is one plus the number of rows above it. A row is above another when its
95% interval lies entirely above the other's, or, when the two intervals overlap but both rows
ran the same problems, when the paired bootstrap of the per-problem difference (resampling
problems, as for the intervals) gives a 95% interval above zero.
"""

from __future__ import annotations

import json
from typing import Any

from prmh.metrics import paired_above

PINNED = ("problems", "seeds", "task_args", "generator")
# generator options that say where or how fast, not what is generated
NOT_IDENTITY = (
    "model",
    "device",
    "batch_size",
    "concurrency",
    "base_url",
    "api_key",
    "delay",
    "retries",
    "timeout",
)


def _clean(value: Any) -> Any:
    """TOML has no null: drop None entries, recursively."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _generator_identity(entry: dict[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in (entry.get("args") or {}).items() if k not in NOT_IDENTITY}
    return _clean({"name": entry.get("name"), "args": args, "extra": entry.get("extra") or {}})


def comparability(tables: list[dict[str, Any]], record: dict[str, Any], task: str) -> dict:
    """The record's values of every pinned key (lists when its tables disagree)."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    tasks = [t for t in config.get("task", []) if isinstance(t, dict) and t.get("name") == task]
    generators = [g for g in config.get("generator", []) if isinstance(g, dict)]

    def one(values: list[Any]) -> Any:
        unique = list({json.dumps(v, sort_keys=True): v for v in values}.values())
        return unique[0] if len(unique) == 1 else unique

    return {
        "problems": one([t.get("problems") for t in tables]),
        "seeds": one([list(t.get("seeds") or []) for t in tables]),
        "task_args": one([_clean(t.get("args") or {}) for t in tasks]),
        "generator": one([_generator_identity(g) for g in generators]),
    }


def differences(pinned: dict[str, Any], values: dict[str, Any], about: str) -> list[str]:
    """Why ``values`` are not comparable with what the board pinned."""
    out = []
    for key in PINNED:
        if key == "generator" and about == "generator":
            continue
        if key in pinned and _clean(values.get(key)) != pinned[key]:
            out.append(
                f"its {key.replace('_', ' ')} {_show(values.get(key))} differ from the "
                f"board's {_show(pinned[key])}"
            )
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def to_toml(value: Any) -> str:
    """A TOML value (inline tables for dicts); ``value`` holds no None."""
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {to_toml(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def rank(rows: list[dict[str, Any]], key: str) -> None:
    """Set each row's ``rank`` by the rule in the module docstring."""

    def above(o: dict[str, Any], r: dict[str, Any]) -> bool:
        a, b = o["cells"][key], r["cells"][key]
        if a["low"] > b["high"]:
            return True
        same = o.get("problem_ids") is not None and o.get("problem_ids") == r.get("problem_ids")
        return same and a["high"] >= b["low"] and paired_above(a, b)

    for r in rows:
        r["rank"] = 1 + sum(above(o, r) for o in rows if o is not r)
