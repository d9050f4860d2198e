"""Paper figures from run records (matplotlib): ``scaling`` (accuracy against the budget, log2
axis, interval bands, pass@N and majority@N), ``compute`` (accuracy against generated tokens and
against PRM calls, every search on the same axes), ``reliability`` (calibration diagrams with
bin counts and intervals), ``correlation`` (Pearson r against the cut, with bands) and
``processbench`` (F1 against the threshold). PNG at 300 dpi; SVG and PDF carry no date, so the
same records give the same bytes."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError

KINDS = ("scaling", "compute", "reliability", "correlation", "processbench")
FORMATS = (".png", ".svg", ".pdf")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PrmhError("plots need matplotlib: pip install 'prmh[analysis]'.") from e
    matplotlib.rcParams.update({"svg.hashsalt": "prmh", "font.size": 9, "legend.fontsize": 7})
    return plt


def figure(kind: str, records: list[dict[str, Any]], out: Path) -> Path:
    """Draw ``kind`` from ``records`` into ``out`` (.png, .svg or .pdf)."""
    if kind not in KINDS:
        raise PrmhError(f"unknown figure {kind!r}; kinds: {', '.join(KINDS)}.")
    if out.suffix not in FORMATS:
        raise PrmhError(f"--out must end in {', '.join(FORMATS)}, not {out.name!r}.")
    draw: Callable = {
        "scaling": _scaling,
        "compute": _compute,
        "reliability": _reliability,
        "correlation": _correlation,
        "processbench": _processbench,
    }[kind]
    plt = _pyplot()
    fig = draw(plt, records)
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    fig.savefig(out, dpi=300, metadata=metadata[out.suffix[1:]], bbox_inches="tight")
    plt.close(fig)
    return out


def _tables(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(title prefix, table) of every evaluation record; the run id joins the title when
    several records are drawn."""
    out = []
    for record in records:
        for table in (record.get("metrics") or {}).get("tables", []):
            prefix = f"{record['run_id']}: " if len(records) > 1 else ""
            out.append((f"{prefix}{table['task']} × {table['generator']}", table))
    if not out:
        running = [r["run_id"] for r in records if r.get("status") == "started"]
        if running:
            raise PrmhError(f"run {running[0]} is still running: its tables come when it ends.")
        raise PrmhError("these runs hold no evaluation tables (run `prmh eval` first).")
    return out


def _shown(label: str) -> str:
    """A record's text as it is written: ``$`` escaped (mathtext would parse ``$\\x$``, and
    fail on what it does not know), and a space before a leading ``_`` (matplotlib leaves
    such labels out of the legend)."""
    label = label.replace("$", "\\$")
    return " " + label if label.startswith("_") else label


def _row_label(row: dict[str, Any]) -> str:
    return row.get("label") or " · ".join(row[k] for k in ("prm", "agg", "selector"))


LINES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")


def _colors(plt: Any, tables: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One colour per PRM row, the same in every panel (reference rows are grey)."""
    labels = dict.fromkeys(
        _row_label(r) for _, t in tables for r in t["rows"] if r["kind"] != "reference"
    )
    return {label: plt.cm.tab20(i % 20) for i, label in enumerate(labels)}


def _band(axis: Any, xs: list, cells: list[dict[str, Any]], label: str, **style: Any) -> None:
    _interval(axis, xs, [[100 * c[k] for c in cells] for k in ("mean", "low", "high")],
              label, alpha=0.08, **style)  # fmt: skip


def _interval(axis: Any, xs: list, points: list[list[float]], label: str, alpha: float,
              **style: Any) -> None:  # fmt: skip
    """A line through ``points[0]`` in a band from ``points[1]`` to ``points[2]``; a lone
    point gets an error bar instead (a band of one x has no width, so nothing was drawn)."""
    ys, lows, highs = points
    line = axis.plot(xs, ys, markersize=3, label=_shown(label), **{"marker": "o", **style})[0]
    if len(xs) == 1:
        err = [[ys[0] - lows[0]], [highs[0] - ys[0]]]
        axis.errorbar(xs, ys, yerr=err, fmt="none", ecolor=line.get_color(), capsize=3)
    else:
        axis.fill_between(xs, lows, highs, color=line.get_color(), alpha=alpha, linewidth=0)


def _legend(fig: Any, axis: Any) -> None:
    """One legend with every full label, below the panels."""
    handles, labels = axis.get_legend_handles_labels()
    columns = 2 if len(labels) > 6 else 1
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=columns)


def _scaling(plt: Any, records: list[dict[str, Any]]) -> Any:
    tables = _tables(records)
    searches = sorted({c["search"] for _, t in tables for c in t["columns"]})
    fig, axes = plt.subplots(
        len(tables), len(searches), figsize=(4.2 * len(searches), 3.4 * len(tables)), squeeze=False
    )
    colors = _colors(plt, tables)
    for (title, table), row_axes in zip(tables, axes, strict=True):
        for search, axis in zip(searches, row_axes, strict=True):
            for row in table["rows"]:
                cells = [c for c in row["cells"] if c.get("search", search) == search]
                budgets = [c["budget"] for c in cells]
                label = _row_label(row)
                style = {"color": colors.get(label)}
                if row["kind"] == "reference":  # pass@N darker than majority@N, both dashed
                    style = {"linestyle": "--", "color": "0.3" if "pass" in label else "0.6"}
                _band(axis, budgets, cells, label, **style)
            axis.set_xscale("log", base=2)
            axis.set_xlabel("budget N (samples or beams per problem, log2)")
            axis.set_ylabel("accuracy (%, 95% interval)")
            axis.set_title(_shown(f"{title}: {search}"), fontsize=9)
    fig.tight_layout()
    _legend(fig, axes[0][0])
    return fig


def _compute(plt: Any, records: list[dict[str, Any]]) -> Any:
    tables = _tables(records)
    fig, axes = plt.subplots(len(tables), 2, figsize=(10, 3.6 * len(tables)), squeeze=False)
    measures = (("generated_tokens", "generated tokens per problem (log)"),
                ("prm_calls", "PRM calls per problem (log)"))  # fmt: skip
    colors = _colors(plt, tables)
    for (title, table), row_axes in zip(tables, axes, strict=True):
        searches = list(dict.fromkeys(c["search"] for c in table["columns"]))
        for (measure, xlabel), axis in zip(measures, row_axes, strict=True):
            rows = [r for r in table["rows"] if r["kind"] != "reference"]
            if not any(c["compute"][measure] for r in rows for c in r["cells"]):
                _nothing_measured(axis, xlabel, title)  # a corpus without token counts
                continue
            for row in rows:
                for i, search in enumerate(searches):  # a line style per search
                    cells = sorted(
                        (c for c in row["cells"] if c["search"] == search),
                        key=lambda c: c["compute"][measure],
                    )
                    xs = [max(c["compute"][measure], 1e-9) for c in cells]
                    style = {"color": colors[_row_label(row)], "linestyle": LINES[i % 4],
                             "marker": MARKERS[i % 4]}  # fmt: skip
                    _band(axis, xs, cells, f"{_row_label(row)} · {search}", **style)
            axis.set_xscale("log")
            axis.set_xlabel(xlabel)
            axis.set_ylabel("accuracy (%, 95% interval)")
            axis.set_title(_shown(f"{title}: accuracy against compute"), fontsize=9)
    fig.tight_layout()
    drawn = [a for a in axes.flat if a.get_legend_handles_labels()[0]]
    _legend(fig, drawn[0] if drawn else axes[0][0])
    return fig


def _nothing_measured(axis: Any, xlabel: str, title: str) -> None:
    """A panel whose measure no cell recorded (generated tokens of a corpus given without
    them): said in words, not drawn at a made-up point of a log axis."""
    what = xlabel.removesuffix(" (log)")
    axis.text(0.5, 0.5, f"no cell recorded {what}", transform=axis.transAxes, ha="center")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_xlabel(what)
    axis.set_title(_shown(f"{title}: accuracy against compute"), fontsize=9)


def _analyses(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    found = [r for r in records if (r.get("config") or {}).get("analysis") == name]
    if not found:
        raise PrmhError(f"none of these runs is a `prmh analyze {name}` run.")
    return found


def _reliability(plt: Any, records: list[dict[str, Any]]) -> Any:
    fig, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    for record in _analyses(records, "calibration"):
        for entry in record["metrics"]["diagrams"]:
            d = entry["diagram"]
            xs, ys = [p["predicted"] for p in d], [p["observed"] for p in d]
            err = [[y - p.get("low", y) for y, p in zip(ys, d, strict=True)],
                   [p.get("high", y) - y for y, p in zip(ys, d, strict=True)]]  # fmt: skip
            label = _shown(f"{entry['prm']} (ECE {entry['ece']:.3f}, Brier {entry['brier']:.3f})")
            axis.errorbar(xs, ys, yerr=err, marker="o", markersize=3, capsize=2, label=label)
            for x, y, p in zip(xs, ys, d, strict=True):
                axis.annotate(str(p["count"]), (x, y), fontsize=6, xytext=(3, -9),
                              textcoords="offset points")  # fmt: skip
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("PRM score (bin mean)")
    axis.set_ylabel("rollout success rate (bin mean, 95% interval; n per bin)")
    axis.legend(loc="upper left")
    fig.tight_layout()
    return fig


def _correlation(plt: Any, records: list[dict[str, Any]]) -> Any:
    fig, axis = plt.subplots(figsize=(6.5, 4))
    every, defined = set(), False
    for record in _analyses(records, "correlation"):
        for label, result in record["metrics"]["correlation"].items():
            for agg, by_cut in result["correlations"].items():
                cuts = sorted(int(t) for t in by_cut if t != "full")
                cells = [by_cut[str(t)]["correctness"] for t in cuts]
                points = [[c[k] for c in cells] for k in ("r", "low", "high")]
                _interval(axis, cuts, points, f"{label} · {agg}", alpha=0.15)
                every.update(cuts)
                defined |= any(r is not None and math.isfinite(r) for r in points[0])
    axis.set_xscale("log", base=2)
    if not defined and every:  # no point to scale the axis by: a log axis of nothing failed
        axis.set_xlim(min(every) / 1.5, max(every) * 1.5)
        axis.text(0.5, 0.5, "Pearson r is undefined at every threshold: the scores or the\n"
                  "outcomes are the same for every solution", transform=axis.transAxes,
                  ha="center", va="center")  # fmt: skip
    axis.set_xlabel("tokens of the solution kept (log2)")
    axis.set_ylabel("Pearson r with final correctness (95% interval)")
    fig.tight_layout()
    _legend(fig, axis)
    return fig


def _processbench(plt: Any, records: list[dict[str, Any]]) -> Any:
    fig, axis = plt.subplots(figsize=(6.5, 4))
    for record in _analyses(records, "processbench"):
        for label, result in record["metrics"]["processbench"].items():
            for subset, entry in result["tasks"].items():
                sweep, shown = entry["sweep"], _shown(f"{label} · {subset}")
                axis.plot([r["threshold"] for r in sweep], [100 * r["f1"] for r in sweep],
                          marker="o", markersize=3, label=shown)  # fmt: skip
    axis.set_xlabel("threshold (a step scored below it is the first error)")
    axis.set_ylabel("ProcessBench F1 (%)")
    fig.tight_layout()
    _legend(fig, axis)
    return fig
