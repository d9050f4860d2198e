"""The Python API: ``prmh.evaluate`` runs what ``prmh eval`` runs, from a notebook or a script,
and returns the run's record and tables; ``prmh eval`` is a thin shell over the same function.

    import prmh
    result = prmh.evaluate(world="sim", prm=["oracle", "oracle:noise=3"], budget=[1, 4], limit=20)
    result.accuracy()          # one dict per cell: task, generator, row, search, budget, mean...
    result                     # rich renders the tables in a notebook or a console
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError


@dataclass(frozen=True)
class EvalResult:
    """A finished evaluation: its run record (``record``), with the tables as data."""

    record: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def tables(self) -> list[dict[str, Any]]:
        return (self.record.get("metrics") or {}).get("tables", [])

    def accuracy(self) -> list[dict[str, Any]]:
        """Every accuracy cell, flat: task, generator, row (PRM · [splitter ·] agg · selector or
        a reference row), search, budget, mean, low, high (fractions), ``below_best`` (whether
        the paired bootstrap puts the column's best PRM cell above it), ``per_problem`` (each
        problem's accuracy by problem id, averaged over seeds: for paired comparisons; None in
        records written before reference cells kept it) and the compute per problem."""
        out = []
        for table in self.tables:
            several = len({row["splitter"] for row in table["rows"] if row.get("splitter")}) > 1
            keys = ("prm", "splitter", "agg", "selector") if several else ("prm", "agg", "selector")
            for row in table["rows"]:
                label = row.get("label") or " · ".join(row[k] for k in keys if k in row)
                for cell in row["cells"]:
                    out.append(
                        {
                            "task": table["task"],
                            "generator": table["generator"],
                            "row": label,
                            "search": cell.get("search", "pool"),
                            "budget": cell["budget"],
                            "mean": cell["mean"],
                            "low": cell["low"],
                            "high": cell["high"],
                            "below_best": cell.get("below_best"),  # None: a reference row
                            "per_problem": _by_problem(table, cell),
                            **cell.get("compute", {}),
                        }
                    )
        return out

    def __rich__(self) -> Any:
        from prmh.report import render_metrics

        return render_metrics(self.record["metrics"])


def _by_problem(table: dict[str, Any], cell: dict[str, Any]) -> dict[str, float] | None:
    values, ids = cell.get("per_problem"), table.get("problem_ids")
    if not isinstance(values, list) or not isinstance(ids, list) or len(values) != len(ids):
        return None
    if not all(isinstance(i, str) for i in ids):  # a record written by hand
        return None
    return dict(zip(ids, values, strict=True))


def evaluate(
    *,
    results_dir: str | Path | None = None,
    grading_timeout: float = 5.0,
    progress: Callable[[str, int, int], None] | None = None,
    threads: int | None = None,
    shard: str | None = None,
    ray: dict[str, Any] | None = None,
    recompute: bool = False,
    **config: Any,
) -> EvalResult:
    """Run an evaluation. ``config`` takes the keys of a TOML config file (``world``, ``task``,
    ``generator``, ``prm``, ``splitter``, ``agg``, ``selector``, ``search``, ``budget``,
    ``seed``, ``limit``, ``pool``, ``task_args``, ``generator_args``, ``prm_args``,
    ``search_args``); a single name may stand for a list. Results go to ``results_dir`` (or
    ``PRMH_RESULTS_DIR``, or ./prmh-results), so a second call computes nothing again.
    ``shard`` ("I/N") evaluates problems I, I+N, ... only (``prmh merge`` adds shards up).
    ``ray`` (``{"address": ..., "actors": 1, "gpus": 0}``, any of them) runs generators and
    PRMs in Ray actors, as ``--executor ray`` does. A plan that already finished in
    ``results_dir`` is read back from that run (``prmh.reuse``) unless ``recompute``."""
    from prmh.matrix import build_plan, check_config
    from prmh.threads import collector_tuned, configure

    _check_arguments(results_dir, grading_timeout, progress, threads, shard, ray, recompute)
    configure(threads)
    config = check_config(config, "prmh.evaluate()")
    if results_dir is None:
        results_dir = config.get("results_dir")
    plan = build_plan({}, config)
    with collector_tuned():  # as the CLI runs it; the caller's thresholds come back after
        record = run_plan(
            plan, results_dir, ["prmh.evaluate"], progress, grading_timeout, shard, ray, recompute
        )
    return EvalResult(record)


MAX_GRADING_TIMEOUT = 86_400  # the workers' waits take milliseconds as an int: 1e308 overflowed
RAY_KEYS: dict[str, tuple[type, ...]] = {
    "address": (str, type(None)), "actors": (int,), "gpus": (int, float)
}  # fmt: skip


def _check_arguments(
    results_dir: Any, timeout: Any, progress: Any, threads: Any, shard: Any, ray: Any, again: Any
) -> None:
    """``evaluate``'s own keywords, each of the type it names: a wrong one was a TypeError or
    AttributeError from deep inside the run (``shard=3``, ``ray="x"``), or was taken as true
    (``recompute="no"``)."""
    from prmh.options import is_number

    whole = threads is None or (is_number(threads) and isinstance(threads, int))
    ray_ok = ray is None or (
        isinstance(ray, dict)
        and set(ray) <= set(RAY_KEYS)
        and all(isinstance(v, RAY_KEYS[k]) and not isinstance(v, bool) for k, v in ray.items())
    )
    checks = [
        ("results_dir", "a path or None", isinstance(results_dir, str | os.PathLike | None)),
        ("grading_timeout", "a number of seconds", is_number(timeout)),
        ("progress", "a function (stage, done, total) or None",
         progress is None or callable(progress)),
        ("threads", "a whole number or None", whole),
        ("shard", "text, 'I/N', or None", shard is None or isinstance(shard, str)),
        ("recompute", "True or False", isinstance(again, bool)),
        ("ray", f"a dict of {', '.join(RAY_KEYS)} or None", ray_ok),
    ]  # fmt: skip
    values = (results_dir, timeout, progress, threads, shard, again, ray)
    for (name, needs, ok), value in zip(checks, values, strict=True):
        if not ok:
            raise PrmhError(f"prmh.evaluate(): {name} must be {needs}, not {value!r}.")


def run_plan(
    plan: Any,
    results_dir: str | Path | None,
    argv: list[str],
    progress: Callable[[str, int, int], None] | None,
    grading_timeout: float,
    shard: str | None = None,
    ray: dict[str, Any] | None = None,
    recompute: bool = False,
) -> dict[str, Any]:
    """Run ``plan`` into the results directory with a run record; returns the record.
    ``shard`` ("I/N"): only problems I, I+N, I+2N, ... of each task (0 <= I < N). ``ray``
    (``address``, ``actors``, ``gpus``): generators and PRMs run in Ray actors
    (``prmh.executors``). ``recompute``: search again even when the plan already finished
    (``prmh.reuse``)."""
    from prmh.registry import load_registry

    if not 0 < grading_timeout <= MAX_GRADING_TIMEOUT:  # also refuses nan
        raise PrmhError(
            f"--grading-timeout must be a positive number of seconds up to {MAX_GRADING_TIMEOUT} "
            f"(a day; one answer's grading), not {grading_timeout}."
        )
    split = parse_shard(shard) if shard else None
    if ray is None:
        registry = load_registry()
        return _run(plan, registry, results_dir, argv, progress, grading_timeout, split, recompute)
    from prmh import executors

    executors.check_sizes(ray.get("actors", 1), ray.get("gpus", 0))  # before Ray starts
    started = executors.start(ray.get("address"))
    try:
        registry = executors.RayRegistry(load_registry(), ray.get("actors", 1), ray.get("gpus", 0))
        return _run(plan, registry, results_dir, argv, progress, grading_timeout, split, recompute)
    finally:
        if started:
            executors.stop()


def _run(
    plan: Any,
    registry: Any,
    results_dir: str | Path | None,
    argv: list[str],
    progress: Callable[[str, int, int], None] | None,
    grading_timeout: float,
    split: tuple[int, int] | None,
    recompute: bool = False,
) -> dict[str, Any]:
    from prmh import reuse
    from prmh.engine import open_run, prepare, run_eval

    started = time.perf_counter()
    prepared = prepare(plan, registry)
    config = prepared.resolved_config()
    if split:
        prepared = _sharded(prepared, *split)
        config["shard"] = "/".join(map(str, split))
    key = reuse.plan_key(config, prepared.problems, grading_timeout)
    with open_run(config, results_dir, argv, progress) as run:
        run.record.data["plan_key"] = key
        earlier = None if recompute else reuse.finished_run(run.store, run.record.path.parent, key)
        metrics = reuse.reused_metrics(earlier, run.record.path, started) if earlier else None
        if metrics is None:
            metrics = run_eval(prepared, run, grading_timeout)
            reuse.remember(run.store, key, run.run_id)
        run.metrics = metrics
    return run.record.data


def _sharded(prepared: Any, index: int, count: int) -> Any:
    """``prepared`` with problems I, I+N, I+2N, ... of each task; every task must keep one."""
    problems = [ps[index::count] for ps in prepared.problems]
    for spec, whole, part in zip(prepared.plan.task, prepared.problems, problems, strict=True):
        if not part:
            raise PrmhError(
                f"--shard {index}/{count} holds no problem of task {spec.label!r}, which has "
                f"{len(whole)}: use at most {min(map(len, prepared.problems))} shards, or shard "
                "that task in a run of its own."
            )
    return dataclasses.replace(prepared, problems=problems)


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` as (I, N), 0 <= I < N."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise PrmhError(
            f"--shard takes I/N with 0 <= I < N (shard I of N), not {text!r}; with a SLURM "
            "array: --shard $SLURM_ARRAY_TASK_ID/N and --array=0-(N-1)."
        )
    return i, n
