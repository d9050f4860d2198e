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


def calibrate(
    prm_dir: str | Path,
    items: list[LabelledSolution],
    out: Path,
    config: TrainConfig,
    on_step: OnStep | None = None,
    prm_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit a quantile PRM (wql, quantiles 0.1/0.5/0.9) from the PRM ``prm_dir``: a value head
    saved by ``train`` becomes three heads that all start as the original (LoRA on
    ``config.lora_layers``); an implicit PRM keeps its two models and fits three (scale, bias)
    pairs; any other PRM (a released checkpoint's recipe, with ``prm_args``) gets its
    classifier or lm head converted and a calibrated adapter (``training.released``).
    ``config`` gives the optimiser settings; the head, loss and layout come from the PRM."""
    from dataclasses import replace

    from prmh.prm_dirs import read_prm_config

    if not (Path(prm_dir) / "prmh_prm.json").is_file() or (
        read_prm_config(prm_dir)["recipe"] not in ("value-head", "implicit")
    ):
        from prmh.plugins.training.released import calibrate_released
        from prmh.registry import load_registry

        component = load_registry().create("prm", str(prm_dir), prm_args or {})
        return calibrate_released(component, items, out, config, on_step)
    prm_dir = Path(prm_dir)
    saved = read_prm_config(prm_dir)
    implicit = saved["recipe"] == "implicit"
    if not implicit and (
        saved["recipe"] != "value-head" or not (prm_dir / "value_head.safetensors").is_file()
    ):
        raise PrmhError(f"{prm_dir} is not a value-head or implicit PRM saved by `prmh train`.")
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
        init_head=str(prm_dir if implicit else prm_dir / "value_head.safetensors"),
        reference=str(prm_dir / options["reference"]) if implicit else None,
        freeze_backbone=implicit,
    )
    return train(items, str(prm_dir), out, config, on_step=on_step)
