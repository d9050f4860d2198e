"""Training on transformers + peft + torch, as library functions with plain signatures:
``train`` (a PRM: value, lm or implicit head, from step-labelled solutions), ``calibrate`` (a
PRM saved by ``train`` turned into a quantile PRM on rollout success rates) and
``train_generator`` (supervised fine-tuning on a task's gold solutions). The commands
``prmh train``, ``prmh calibrate`` and ``prmh train-generator`` call them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.labels import LabelledSolution
from prmh.plugins.training.config import TrainConfig
from prmh.plugins.training.generator import train_generator
from prmh.plugins.training.loop import CHECKPOINT, OnStep
from prmh.plugins.training.value import train

__all__ = [
    "CHECKPOINT",
    "TrainConfig",
    "calibrate",
    "calibration_items",
    "calibration_target",
    "train",
    "train_generator",
]


def calibration_items(rows: list[dict[str, Any]]) -> list[LabelledSolution]:
    """Rollout rows (``prmh rollout``) as training items: each solution with its prefixes'
    success rates, and the empty prefix as one empty step; rows missing a prefix are left out."""
    items = []
    for r in rows:
        steps = tuple(r["steps"])
        by_k = {v["k"]: v["rate"] for v in r["values"]}
        if all(k in by_k for k in range(len(steps) + 1)):
            rates = tuple(by_k[k] for k in range(1, len(steps) + 1))
            items.append(LabelledSolution(r["question"], steps, rates))
            items.append(LabelledSolution(r["question"], ("",), (by_k[0],)))
    return items


def calibration_target(prm_dir: str | Path, prm_args: dict[str, Any] | None = None) -> Any:
    """What ``calibrate`` fits, checked before any run opens: a PRM directory ``train`` saved
    (its path), or a released PRM's component (built, its model loaded) with a classifier or
    lm head to convert; anything else is refused."""
    from prmh.prm_dirs import read_prm_config

    path = Path(prm_dir)
    if (path / "prmh_prm.json").is_file():
        recipe = read_prm_config(path)["recipe"]
        if recipe == "implicit" or (
            recipe == "value-head" and (path / "value_head.safetensors").is_file()
        ):
            return path
        if recipe == "value-head":
            raise PrmhError(f"{path} is not a value-head or implicit PRM saved by `prmh train`.")
    from prmh.plugins.training.released import convertible
    from prmh.registry import load_registry

    return convertible(load_registry().create("prm", str(prm_dir), prm_args or {}))


def calibrate(
    target: Any,
    items: list[LabelledSolution],
    out: Path,
    config: TrainConfig,
    on_step: OnStep | None = None,
) -> dict[str, Any]:
    """Fit a quantile PRM (wql, quantiles 0.1/0.5/0.9) from ``target`` (``calibration_target``):
    a value head saved by ``train`` becomes three heads that all start as the original (LoRA on
    ``config.lora_layers``); an implicit PRM keeps its two models and fits three (scale, bias)
    pairs; a released checkpoint's PRM gets its classifier or lm head converted and a
    calibrated adapter (``training.released``). ``config`` gives the optimiser settings; the
    head, loss and layout come from the PRM."""
    from dataclasses import replace

    from prmh.prm_dirs import read_prm_config

    if not isinstance(target, Path):
        from prmh.plugins.training.released import calibrate_released

        return calibrate_released(target, items, out, config, on_step)
    saved = read_prm_config(target)
    implicit = saved["recipe"] == "implicit"
    options = saved.get("options", {})
    config = replace(
        config,
        head="implicit" if implicit else "value",
        loss="wql",
        lora=not implicit,
        separator=None if implicit else options.get("separator", "[PRM]"),
        query_template=options.get("query_template", "{question}"),
        joiner=options.get("joiner", "\n"),
        step_suffix=options.get("step_suffix"),
        init_head=str(target if implicit else target / "value_head.safetensors"),
        reference=str(target / options["reference"]) if implicit else None,
        freeze_backbone=implicit,
    )
    return train(items, str(target), out, config, on_step=on_step)
