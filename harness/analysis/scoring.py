"""What every analysis shares: the PRMs it compares and its run record's configuration."""

from __future__ import annotations

from typing import Any

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
