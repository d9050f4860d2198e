"""``prmh analyze processbench|calibration|correlation``: each prints a table, writes its plot
(PNG) and a run record whose ``metrics`` hold the numbers; PRM scores go through the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from prmh.cli.analysis_tables import (
    calibration_table,
    correlation_table,
    processbench_table,
    reproduce_table,
)
from prmh.cli.common import (
    argv,
    json_option,
    kv_option,
    opened,
    out_option,
    print_json,
    results_dir_option,
    stack,
)
from prmh.cli.data import source, source_options
from prmh.cli.group import cli
from prmh.errors import PrmhError

prm_options = stack(
    click.option(
        "--prm",
        "prm_specs",
        multiple=True,
        required=True,
        help="PRM (repeatable); NAME:KEY=VALUE for options.",
    ),
    kv_option("-P", "prm_args", "PRM", each=True),
    results_dir_option,
    out_option("Where to write the plot (PNG) [RESULTS_DIR/runs/RUN.png].", flag="--plot"),
    json_option("the metrics"),
)


@cli.group("analyze")
def analyze_group() -> None:
    """Analyse PRMs: step errors, calibration, and reliability on partial solutions."""


def _analysis(
    name: str, prms: list, results_dir: Path | None, plot: Path | None, work: Callable
) -> tuple[Any, Path, Path]:
    """Run ``work(run)`` -> (results, metrics) in a recorded run and draw its figure (the one
    ``prmh plot`` draws from the record)."""
    from prmh.analysis.figures import figure
    from prmh.analysis.scoring import analysis_config
    from prmh.engine import open_run
    from prmh.progress import progress_bars

    config = analysis_config(name, prms)
    with progress_bars() as progress, open_run(config, results_dir, argv(), progress) as run:
        results, metrics = work(run)
        path = plot or run.record.path.with_suffix(".png")
        kind = "reliability" if name == "calibration" else name
        figure(kind, [{"run_id": run.run_id, "config": config, "metrics": metrics}], path)
        run.metrics = {**metrics, "plot": str(path)}
    return results, path, run.record.path


@analyze_group.command("processbench")
@prm_options
@click.option(
    "--task",
    "tasks",
    multiple=True,
    default=["processbench-gsm8k"],
    show_default=True,
    help="ProcessBench subsets (repeatable).",
)
@kv_option("-T", "task_args", "task (e.g. data=FILE)", each=True)
@click.option("--limit", type=int, default=None, help="First N samples of each subset.")
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--pick-on", default=None, help="Subset whose best threshold is used on all.")
def processbench_command(
    prm_specs, prm_args, results_dir, plot, as_json, tasks, task_args, limit, threshold, pick_on
) -> None:
    """ProcessBench: predict each solution's earliest wrong step (the first step scored
    below a threshold); accuracy on erroneous and on correct samples and their F1, at a
    fixed threshold, over a sweep, and at the threshold that is best on one subset."""
    from prmh.analysis.processbench import processbench, processbench_data
    from prmh.analysis.scoring import build_prms

    if pick_on is not None and pick_on not in tasks:
        raise PrmhError(f"--pick-on {pick_on!r} is not one of the --task subsets.")
    if not 0.0 <= threshold <= 1.0:  # nan too: no step is below it
        raise PrmhError(f"--threshold is a step score in [0, 1], not {threshold}.")
    if limit is not None and limit < 1:
        raise PrmhError(f"--limit must be at least 1, not {limit}.")
    prms = build_prms(prm_specs, prm_args)
    data = processbench_data(list(tasks), task_args, limit)

    def work(run: Any) -> tuple:
        results = processbench(run.workspace(), prms, data, threshold, pick_on)
        return results, {"processbench": results, "pick_on": pick_on}

    results, path, record = _analysis("processbench", prms, results_dir, plot, work)
    if as_json:
        print_json(results)
        return
    processbench_table(results, threshold, pick_on)
    click.echo(f"plot: {path}; record: {record}")


@analyze_group.command("calibration")
@prm_options
@click.option(
    "--rollouts",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A `prmh rollout` file: success rates of step prefixes.",
)
@click.option("--bins", type=click.IntRange(1, 10_000), default=10, show_default=True)
def calibration_command(prm_specs, prm_args, results_dir, plot, as_json, rollouts, bins) -> None:
    """How well PRM scores match rollout success rates: expected calibration error, Brier
    score, a reliability diagram and, for quantile PRMs, each quantile's coverage."""
    from prmh.analysis.calibration import calibration, read_rollouts
    from prmh.analysis.scoring import build_prms

    rows = read_rollouts(rollouts)
    prms = build_prms(prm_specs, prm_args)

    def work(run: Any) -> tuple:
        results = calibration(run.workspace(), prms, rows, bins)
        summary = [{k: v for k, v in e.items() if k != "diagram"} for e in results]
        return results, {"calibration": summary, "diagrams": results, "rollouts": str(rollouts)}

    results, path, record = _analysis("calibration", prms, results_dir, plot, work)
    if as_json:
        print_json(results)
        return
    calibration_table(results, str(rollouts))
    click.echo(f"reliability diagram: {path}; record: {record}")


@analyze_group.command("correlation")
@prm_options
@source_options(samples=8)
@click.option(
    "--thresholds",
    default="128,256,512,1024,1536,2048",
    show_default=True,
    help="Token counts at which solutions are cut (the PRM's tokenizer).",
)
@click.option(
    "--method",
    type=click.Choice(["one-pass", "rescore"]),
    default="one-pass",
    show_default=True,
    help="How partial solutions are scored (same numbers).",
)
def correlation_command(
    prm_specs, prm_args, results_dir, plot, as_json, method, thresholds, **options
) -> None:
    """How well scores of partial solutions predict final correctness: solutions cut at
    token thresholds, scored, aggregated (mean, min, last, and whole: the cut text scored
    as one block), and correlated (Pearson, bootstrap interval over problems) with
    correctness and with the full solution's score."""
    from prmh.analysis.correlation import correlation, parse_thresholds
    from prmh.analysis.scoring import build_prms

    cuts = parse_thresholds(thresholds)
    prms = build_prms(prm_specs, prm_args)
    solutions = source(options)

    def work(run: Any) -> tuple:
        with solutions.opened(run):
            graded = solutions.solutions()
        one_pass = method == "one-pass"
        results = correlation(prms, graded, solutions.splitter, cuts, one_pass, run.progress)
        return results, {"correlation": results}

    results, path, record = _analysis("correlation", prms, results_dir, plot, work)
    if as_json:
        print_json(results)
        return
    for label, result in results.items():
        correlation_table(label, result)
    click.echo(f"plot: {path}; record: {record}")


@cli.command("reproduce")
@click.argument("name")
@click.option("--quick", is_flag=True, help="The small size (minutes on 2 CPU cores).")
@results_dir_option
@json_option()
def reproduce_command(name: str, quick: bool, results_dir: Path | None, as_json: bool) -> None:
    """Test a release's headline claim on the bundled worlds: run it through prmh's own
    evaluation and analyses, print the claim, the estimates with 95% intervals, and a verdict
    computed from them (reproduced / direction only / not reproduced / reversed)."""
    from prmh.reproduce import reproduce, reproduction

    reproduction(name)  # an unknown name: one message, before a run is opened
    options = {"name": name, "quick": quick, "results_dir": results_dir}
    with opened("reproduce", options) as run:
        result = run.metrics = reproduce(name, quick, run)
    if as_json:
        print_json(result)
        return

    reproduce_table(result)
    click.echo(f"record: {run.record.path}")
