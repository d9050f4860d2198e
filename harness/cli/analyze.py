"""``prmh analyze processbench|calibration|correlation``: each prints a table, writes its plot
(PNG) and a run record whose ``metrics`` hold the numbers; PRM scores go through the store."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from prmh.cli.common import (
    argv,
    json_option,
    kv_option,
    opened,
    out_option,
    print_json,
    print_table,
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


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _f1(x: float) -> str:
    return "undefined" if isinstance(x, float) and math.isnan(x) else _pct(x)


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
        return results, {"processbench": results}

    results, path, record = _analysis("processbench", prms, results_dir, plot, work)
    if as_json:
        print_json(results)
        return
    rows = []
    for label, result in results.items():
        for name, e in result["tasks"].items():
            rows.append([
                f"{label} · {name}",
                str(e["fixed"]["erroneous"] + e["fixed"]["correct"]),
                _pct(e["fixed"]["error_accuracy"]),
                _pct(e["fixed"]["correct_accuracy"]),
                _f1(e["fixed"]["f1"]),
                _f1(e["picked"]["f1"]) if "picked" in e else "-",
            ])  # fmt: skip
        if len(data) > 1:  # ProcessBench's headline number: F1 averaged over the subsets
            picked = result["average_f1_picked"]
            rows.append([f"{label} · average", "", "", "", _f1(result["average_f1"]),
                         "-" if picked is None else _f1(picked)])  # fmt: skip
    print_table(
        f"ProcessBench at threshold {threshold}"
        + (f"; picked on {pick_on}" if pick_on else "")
        + " (percent)",
        ["PRM · subset", "samples", "erroneous acc.", "correct acc.", "F1", "F1 picked"],
        rows,
    )
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
        return results, {"calibration": summary, "diagrams": results}

    results, path, record = _analysis("calibration", prms, results_dir, plot, work)
    if as_json:
        print_json(results)
        return
    levels = ("0.1", "0.5", "0.9")
    print_table(
        f"calibration against {rollouts} ({results[0]['count']} prefixes)",
        ["PRM", "ECE", "Brier", *(f"q{k} coverage" for k in levels)],
        [
            [
                e["prm"],
                f"{e['ece']:.4f}",
                f"{e['brier']:.4f}",
                *[f"{e['coverage'][k]:.3f}" if "coverage" in e else "-" for k in levels],
            ]
            for e in results
        ],
    )
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
        _correlation_table(label, result, cuts)
    click.echo(f"plot: {path}; record: {record}")


def _correlation_table(label: str, result: dict[str, Any], cuts: list[int]) -> None:
    from prmh.analysis.correlation import AGGREGATIONS

    def cell(entry: dict[str, float]) -> str:
        if math.isnan(entry["r"]):
            return "undefined (constant)"
        return f"{entry['r']:.3f} [{entry['low']:.2f}, {entry['high']:.2f}]"

    table, cut, n = result["correlations"], result["cut"], result["solutions"]
    rows = [
        [f"tau={t}", f"{cut[str(t)]} of {n}",
         *[cell(table[a][str(t)]["correctness"]) for a in AGGREGATIONS]]
        for t in cuts
    ]  # fmt: skip
    full = [cell(table[a]["full"]["correctness"]) for a in AGGREGATIONS]
    rows.append(["full solution", "-", *full])
    print_table(
        f"{label}: Pearson r of partial-solution scores with correctness "
        f"({n} solutions, {result['forward_tokens']} forward tokens)",
        ["threshold", "cut", *AGGREGATIONS],
        rows,
    )
    whole = [t for t in cuts if not cut[str(t)]]
    if whole:
        click.echo(
            f"tau={', '.join(map(str, whole))} cut no solution (the longest has "
            f"{result['longest']} tokens), so {'it repeats' if len(whole) == 1 else 'each repeats'}"
            " the full solution's row; --thresholds sets smaller cuts."
        )
    if any("undefined" in c for row in rows for c in row):
        click.echo(
            "undefined: the scores (or the outcomes) are the same for every solution, "
            "so Pearson r is undefined (nan in --json)."
        )


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

    def interval(e: dict[str, Any] | None, sign: str = "") -> str:
        return "-" if e is None else f"{e['mean']:{sign}.3f} [{e['low']:.3f}, {e['high']:.3f}]"

    rows = [
        [
            f"{c['better']['label']} {'>' if c['kind'] == 'beats' else '>='} {c['worse']['label']}",
            interval(c["better"]),
            interval(c["worse"]),
            interval(c.get("difference"), "+"),
            c["verdict"],
        ]
        for c in result["comparisons"]
    ]
    print_table(
        f"{result['release']}: {result['claim']} ({result['size']} size)",
        ["comparison", "first", "second", "paired difference", "verdict"],
        rows,
    )
    click.echo(f"verdict: {result['verdict']}; record: {run.record.path}")
