"""``prmh eval`` and ``prmh show``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from prmh.cli.common import (
    argv,
    emit,
    json_option,
    kv_option,
    results_dir_option,
    threads_option,
)
from prmh.cli.group import cli


@cli.command("eval")
@click.option("--task", "task", multiple=True, help="Task (repeatable) [default: arith].")
@click.option(
    "--world",
    envvar="PRMH_WORLD",
    default=None,
    help="Defaults for what is not given: tiny (the shipped neural models), sim (simulated "
    "solver, exact oracle; no torch) or code (sim on programming problems) [default: tiny, "
    "code for --task code; env PRMH_WORLD].",
)
@click.option(
    "--generator",
    multiple=True,
    help="Generator, or a model folder (repeatable) [world: tiny | sim].",
)
@click.option(
    "--prm",
    multiple=True,
    help="PRM, or a PRM folder (repeatable) [world: tiny-calibrated | oracle, oracle:noise=3].",
)
@click.option("--splitter", multiple=True, help="Step splitter [default: double-newline].")
@click.option(
    "--agg", multiple=True, help="Aggregator (repeatable) [world: min, last | mean, min, last]."
)
@click.option(
    "--selector",
    multiple=True,
    help="Answer selector (repeatable) [world: argmax, weighted-vote | argmax].",
)
@click.option(
    "--search",
    multiple=True,
    help="Search strategy (repeatable) [world: best-of-n, beam-ias | best-of-n].",
)
@click.option("-n", "--budget", multiple=True, type=int, help="Budget N (repeatable) [1, 4, 16].")
@click.option("--seed", multiple=True, type=int, help="Seed (repeatable) [default: 0].")
@click.option("--limit", type=int, default=None, help="Use the first N problems [world: 50 | 200].")
@click.option("--pool", type=int, default=None, help="Samples per problem [default: largest N].")
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=None,
    help="Local JSON, JSONL or Parquet file of problems for the task (-T data=FILE).",
)
@click.option(
    "--samples",
    type=click.Path(dir_okay=False),
    default=None,
    help="A corpus of pre-sampled solutions (JSON, JSONL, Parquet) in place of a generator; "
    "its own problems and gold answers unless --task names the task they come from.",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Evaluate problems I, I+N, I+2N, ... only (0 <= I < N); `prmh merge` adds the "
    "shards' results directories up.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where generators and PRMs run: this process, or Ray actors (pip install 'prmh[ray]').",
)
@click.option("--ray-address", default=None, help="A Ray cluster's address [a local instance].")
@click.option("--ray-actors", type=int, default=1, show_default=True, help="Actors per model.")
@click.option("--ray-gpus", type=float, default=0.0, show_default=True, help="GPUs per actor.")
@kv_option("-T", "task_args", "task", each=True)
@kv_option("-G", "generator_args", "generator", each=True)
@kv_option("-P", "prm_args", "PRM", each=True)
@kv_option("-S", "search_args", "search", each=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file with the same keys (see README).",
)
@results_dir_option
@click.option(
    "--grading-timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds allowed to grade one answer.",
)
@click.option(
    "--recompute",
    is_flag=True,
    help="Search, log and tabulate again even when the same plan already finished here (its "
    "stored generations, scores and grades are still read, not computed).",
)
@threads_option
@json_option()
def eval_command(
    data: str | None,
    samples: str | None,
    shard: str | None,
    executor: str,
    ray_address: str | None,
    ray_actors: int,
    ray_gpus: float,
    config_path: Path | None,
    results_dir: Path | None,
    grading_timeout: float,
    recompute: bool,
    as_json: bool,
    threads: int | None,
    **options: Any,
) -> None:
    """Run an evaluation matrix and print accuracy and compute per cell.

    Every option that names components is repeatable; prmh runs the product. A component may
    carry options inline, as NAME:KEY=VALUE,KEY=VALUE. Re-running the same command resumes:
    nothing already in the store is computed again, and a plan that already finished is read
    back from that run (--recompute runs its searches again).
    """
    from prmh.api import run_plan
    from prmh.matrix import build_plan, load_config
    from prmh.progress import progress_bars
    from prmh.threads import configure

    configure(threads)
    config = load_config(config_path) if config_path else None
    for key in ("task_args", "generator_args", "prm_args", "search_args"):
        options[key] = options[key] or None
    if data is not None:
        options["task_args"] = {**(options["task_args"] or {}), "data": data}
    if samples is not None:
        _use_corpus(options, samples)
    plan = build_plan(options, config)
    if samples is not None and options["limit"] is None and "limit" not in (config or {}):
        plan = dataclasses.replace(plan, limit=None)  # a corpus is evaluated whole
    with progress_bars() as progress:
        record = run_plan(
            plan,
            results_dir or (config or {}).get("results_dir"),
            argv(),
            progress,
            grading_timeout,
            shard,
            {"address": ray_address, "actors": ray_actors, "gpus": ray_gpus}
            if executor == "ray"
            else None,
            recompute,
        )
    emit(record, as_json)


def _use_corpus(options: dict[str, Any], path: str) -> None:
    """``--samples FILE``: the ``file`` generator, the corpus's own problems unless a task is
    named, and best-of-N unless a search is (a corpus cannot continue a step)."""
    from prmh.errors import PrmhError

    if options["generator"]:
        raise PrmhError("--samples takes the place of a generator; drop --generator.")
    options["generator"] = ("file",)
    options["generator_args"] = {**(options["generator_args"] or {}), "file.path": path}
    if not options["task"]:
        options["task"] = ("samples",)
        options["task_args"] = {**(options["task_args"] or {}), "samples.path": path}
    options["search"] = options["search"] or ("best-of-n",)


@cli.command("show")
@click.argument("run")
@results_dir_option
@json_option()
def show_command(run: str, results_dir: Path | None, as_json: bool) -> None:
    """Show a stored run (an id, a unique prefix, "latest", or a record's path)."""
    from prmh.cli.analysis_tables import summary_printer
    from prmh.lookup import find_record
    from prmh.store import results_path

    record = find_record(results_path(results_dir), run)
    emit(record, as_json, summary_printer(record))
