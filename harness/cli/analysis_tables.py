"""The tables of ``prmh analyze`` and ``prmh reproduce``, drawn from what their run records
keep, so ``prmh show RUN`` prints them again as the command did (it printed the records'
metrics as Python literals)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from prmh.cli.common import print_table


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _f1(x: float) -> str:
    return "undefined" if isinstance(x, float) and math.isnan(x) else _pct(x)


def processbench_table(results: dict[str, Any], threshold: float, pick_on: str | None) -> None:
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
        if len(result["tasks"]) > 1:  # ProcessBench's headline number: F1 over the subsets
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


def calibration_table(results: list[dict[str, Any]], rollouts: str | None) -> None:
    levels = ("0.1", "0.5", "0.9")
    against = f" against {rollouts}" if rollouts else ""
    print_table(
        f"calibration{against} ({results[0]['count']} prefixes)",
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


def correlation_table(label: str, result: dict[str, Any]) -> None:
    from prmh.analysis.correlation import AGGREGATIONS

    def cell(entry: dict[str, float]) -> str:
        if entry["r"] is None or math.isnan(entry["r"]):
            return "undefined (constant)"
        return f"{entry['r']:.3f} [{entry['low']:.2f}, {entry['high']:.2f}]"

    table, cut, n = result["correlations"], result["cut"], result["solutions"]
    cuts = sorted(cut, key=int)  # the thresholds (a record's keys are sorted as text)
    rows = [
        [f"tau={t}", f"{cut[t]} of {n}", *[cell(table[a][t]["correctness"]) for a in AGGREGATIONS]]
        for t in cuts
    ]
    full = [cell(table[a]["full"]["correctness"]) for a in AGGREGATIONS]
    rows.append(["full solution", "-", *full])
    print_table(
        f"{label}: Pearson r of partial-solution scores with correctness "
        f"({n} solutions, {result['forward_tokens']} forward tokens)",
        ["threshold", "cut", *AGGREGATIONS],
        rows,
    )
    whole = [t for t in cuts if not cut[t]]
    if whole:
        click.echo(
            f"tau={', '.join(whole)} cut no solution (the longest has {result['longest']} "
            f"tokens), so {'it repeats' if len(whole) == 1 else 'each repeats'} the full "
            "solution's row; --thresholds sets smaller cuts."
        )
    if any("undefined" in c for row in rows for c in row):
        click.echo(
            "undefined: the scores (or the outcomes) are the same for every solution, "
            "so Pearson r is undefined (nan in --json)."
        )


def reproduce_table(result: dict[str, Any]) -> None:
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
    click.echo(f"verdict: {result['verdict']}")


def summary_printer(record: dict[str, Any]) -> Callable[[], None] | None:
    """What prints a finished analysis's or reproduction's tables from its record, if it is
    one."""
    config, metrics = record.get("config") or {}, record.get("metrics") or {}
    kind = config.get("analysis") or config.get("command")
    if record.get("status") != "success":
        return None
    if kind == "processbench" and "processbench" in metrics:
        results = metrics["processbench"]
        first = next(iter(next(iter(results.values()))["tasks"].values()))
        threshold = first["fixed"]["threshold"]
        return lambda: processbench_table(results, threshold, metrics.get("pick_on"))
    if kind == "calibration" and "diagrams" in metrics:
        return lambda: calibration_table(metrics["diagrams"], metrics.get("rollouts"))
    if kind == "correlation" and "correlation" in metrics:

        def correlations() -> None:
            for label, result in metrics["correlation"].items():
                correlation_table(label, result)

        return correlations
    if kind == "reproduce" and "comparisons" in metrics:
        return lambda: reproduce_table(metrics)
    return None
