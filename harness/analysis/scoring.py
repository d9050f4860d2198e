"""What every analysis shares: the PRMs it compares, scoring through a workspace, and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.registry import Component


def build_prms(specs: list[str], options: dict[str, Any]) -> list[tuple[str, Component]]:
    """(label, PRM) for each ``NAME[:KEY=VALUE,...]`` spec, with ``options`` for every PRM (or,
    as ``NAME.KEY``, for one)."""
    from prmh.matrix import Spec
    from prmh.registry import load_registry

    registry = load_registry()
    built = [Spec.parse(s).with_options(options) for s in specs]
    return [(s.label, registry.create("prm", s.name, s.args)) for s in built]


def analysis_config(analysis: str, prms: list[tuple[str, Component]]) -> dict[str, Any]:
    """An analysis's run-record configuration: its name and each PRM's identity."""
    return {"analysis": analysis, "prm": [{"label": label, **c.identity} for label, c in prms]}


def line_plot(
    path: Path,
    lines: list[tuple[list, list, str]],
    xlabel: str,
    ylabel: str,
    *,
    diagonal: bool = False,
    log2x: bool = False,
) -> None:
    """A PNG of labelled lines (xs, ys, label); ``diagonal`` adds the y = x reference."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PrmhError("plots need matplotlib: pip install 'prmh[analysis]'.") from e
    figure, axis = plt.subplots(figsize=(5, 5) if diagonal else (6, 4))
    if diagonal:
        axis.plot([0, 1], [0, 1], color="#999", linestyle="--", label="calibrated")
    for xs, ys, label in lines:
        axis.plot(xs, ys, marker="o" if diagonal else ".", label=label)
    if log2x:
        axis.set_xscale("log", base=2)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
