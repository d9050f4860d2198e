"""A finished evaluation, run again, is read back instead of searched again.

An evaluation's results depend on its plan (every component's identity: name, version,
output-changing options, weights' fingerprint), its problems, the grading timeout and prmh's
own code. Their hash is the run's ``plan_key`` (kept in its record). When a run of the same key
finished in the same results directory and its record and per-sample file are still there, a
new run takes that run's tables and per-sample results, as every generation, score and grade
would have come from the store anyway, and skips the searches, the sample log and the
intervals. ``--recompute`` (``prmh.evaluate(recompute=True)``) runs them again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from prmh._version import __version__
from prmh.engine.workspace import problem_fingerprint
from prmh.errors import PrmhError
from prmh.files import read_json, write_bytes_atomic
from prmh.samples import samples_path
from prmh.store import Store, content_key
from prmh.types import Problem

KIND = "evaluation"  # store entries: plan key -> {"run": the run that finished it}
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def plan_key(config: dict[str, Any], problems: list[list[Problem]], grading_timeout: float) -> str:
    """What an evaluation's results depend on, hashed (``config``: the resolved plan)."""
    return content_key(
        {
            "config": config,
            "problems": [[problem_fingerprint(p) for p in task] for task in problems],
            "grading_timeout": grading_timeout,
            "prmh": [__version__, code_fingerprint()],
        }
    )


@functools.cache
def code_fingerprint() -> str:
    """prmh's code as it is on disk, so that an edited checkout never reads back results its
    old code computed."""
    import prmh
    import prmh.plugins

    return files_fingerprint([Path(prmh.__file__).parent, Path(prmh.plugins.__file__).parent])


def files_fingerprint(roots: list[Path]) -> str:
    """Each Python module under ``roots``: its path, size and modification time, hashed."""
    files = []
    for i, root in enumerate(roots):
        for folder, subfolders, names in os.walk(root):
            subfolders.sort()
            where = Path(folder).relative_to(root)
            for name in sorted(n for n in names if n.endswith(".py")):
                stat = os.stat(os.path.join(folder, name))
                files.append([i, (where / name).as_posix(), stat.st_size, stat.st_mtime_ns])
    return content_key(files)


def finished_run(store: Store, runs: Path, key: str) -> dict[str, Any] | None:
    """The record of a run of plan ``key`` that succeeded and whose per-sample results are
    still in ``runs``; None when there is none (or it was moved, damaged, deleted or edited
    into something prmh did not write)."""
    found = store.get_many(KIND, [key]).get(key)
    run_id = found.get("run") if isinstance(found, dict) else None
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        return None
    try:
        record = read_json(runs / f"{run_id}.json")
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("run_id") != run_id:
        return None
    metrics = record.get("metrics")
    if record.get("status") != "success" or record.get("plan_key") != key or not _whole(metrics):
        return None
    samples = runs / metrics["samples"]
    return record if samples.name == metrics["samples"] and samples.is_file() else None


def _whole(metrics: Any) -> bool:
    """Metrics shaped as an evaluation writes them (tables, per-sample file, entry counts)."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("samples"), str):
        return False
    tables, cache = metrics.get("tables"), metrics.get("cache")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        return False
    counts = [cache.get(k) for k in ("from_store", "computed")] if isinstance(cache, dict) else []
    return len(counts) == 2 and all(
        isinstance(c, dict) and all(isinstance(n, int) for n in c.values()) for c in counts
    )


def reused_metrics(
    earlier: dict[str, Any], record_path: Path, started: float
) -> dict[str, Any] | None:
    """The metrics of the run whose record is at ``record_path``, taken from ``earlier``'s:
    the same tables, its per-sample file copied beside the new record, and every entry counted
    as read from the store; None when that file can no longer be read or is not the one that
    run wrote (its SHA-256 differs: cut short, edited; older records have none)."""
    metrics = dict(earlier["metrics"])  # read from its file: nothing else holds it
    metrics.pop("damaged_entries", None)  # what that run found in the store: not read here
    target = samples_path(record_path)
    try:
        data = (record_path.parent / metrics["samples"]).read_bytes()
        if metrics.get("samples_sha256") not in (None, hashlib.sha256(data).hexdigest()):
            return None
        write_bytes_atomic(target, data)
    except (OSError, PrmhError):  # unreadable, or the copy cannot be written
        return None
    stored = dict(metrics["cache"]["from_store"])
    for kind, n in metrics["cache"]["computed"].items():
        stored[kind] = stored.get(kind, 0) + n
    metrics.update(
        samples=target.name,
        cache={"from_store": stored, "computed": dict.fromkeys(stored, 0)},
        reused_run=earlier["run_id"],
        wall_seconds=time.perf_counter() - started,
    )
    return metrics


def remember(store: Store, key: str, run_id: str) -> None:
    """Plan ``key`` finished in run ``run_id`` (the latest such run is the one reused)."""
    store.put_many(KIND, {key: {"run": run_id}}, run_id, replace=True)
