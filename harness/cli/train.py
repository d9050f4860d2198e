"""``prmh train``, ``prmh calibrate`` and ``prmh train-generator``: thin shells over
``prmh.plugins.training``; each writes a run record (its options, the summary as metrics).
Defaults are ``TrainConfig``'s, declared there once."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from prmh.cli.common import kv_option, opened, results_dir_option, unescape
from prmh.cli.group import cli
from prmh.errors import PrmhError
from prmh.plugins.training.config import TrainConfig

D = TrainConfig()


def _option(flag: str, field: str, **kwargs: Any) -> Any:
    """An option for ``TrainConfig.field``, its default taken from there."""
    default = getattr(D, field)
    shown = default.encode("unicode_escape").decode() if isinstance(default, str) else default
    return click.option(flag, field, default=default, show_default=shown, **kwargs)


def _config(options: dict[str, Any], **fixed: Any) -> TrainConfig:
    """The ``TrainConfig`` fields among ``options`` (text options unescaped), and ``fixed``."""
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in options.items() if k in names}
    for key in ("separator", "query_template", "joiner", "step_suffix"):
        if isinstance(given.get(key), str):
            given[key] = unescape(given[key])
    return TrainConfig(**{**given, **fixed})


def _trained(summary: dict[str, Any]) -> tuple[float, float]:
    """The mean loss of the first and of the last five optimiser steps."""
    losses = summary["losses"] or [float("nan")]
    return sum(losses[:5]) / len(losses[:5]), sum(losses[-5:]) / len(losses[-5:])


@cli.command("train")
@click.option(
    "--data",
    "data_path",
    required=True,
    help="Labelled steps (math-shepherd, unprm or stepwise): a JSON, JSONL or Parquet file, "
    "a dataset directory, or a Hub dataset id (owner/name[:split]) in TRL's stepwise format.",
)
@click.option("--model", "base", required=True, help="Base causal LM (directory or Hub id).")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to save the PRM (then: prmh eval --prm OUT).",
)
@_option(
    "--head",
    "head",
    type=click.Choice(["value", "lm", "implicit"]),
    help="A value head at a separator, the LM head's '+'/'-' at a ' ки' tag, or an implicit "
    "PRM (log-likelihood ratio of the model to --reference, summed to each step's end).",
)
@_option(
    "--reference",
    "reference",
    help="Implicit head: the reference LM [a frozen copy of --model]; saved with the PRM.",
)
@_option("--beta", "beta", type=float, help="Implicit head: the starting scale of the ratio.")
@click.option(
    "--freeze-backbone", is_flag=True, help="Train the head alone (the model stays as it is)."
)
@_option("--loss", "loss", help="See `prmh list loss`.")
@kv_option("-L", "loss_options", "loss")
@click.option(
    "--lora/--full",
    default=D.lora,
    show_default=True,
    help="LoRA adapters (merged on save) or full fine-tuning.",
)
@_option("--lora-r", "lora_r", type=int)
@_option("--epochs", "epochs", type=float)
@_option("--max-steps", "max_steps", type=int, help="Stop after N optimiser steps.")
@_option("--lr", "learning_rate", type=float)
@_option("--batch-size", "batch_size", type=int)
@_option("--grad-accum", "grad_accum", type=int)
@_option("--warmup", "warmup", type=float)
@_option("--max-length", "max_length", type=int)
@_option("--separator", "separator", help="Step separator [[PRM] or ки by head].")
@_option(
    "--query-template",
    "query_template",
    help="Value or implicit head: the text before the steps ({question} is replaced; \\n "
    "is a newline).",
)
@_option("--joiner", "joiner", help="Value or implicit head: text between steps.")
@_option(
    "--step-suffix",
    "step_suffix",
    help="Value head: text after each step, containing the separator [' ' + separator].",
)
@_option("--save-every", "save_every", type=int, help="Checkpoint every N steps.")
@click.option("--resume", is_flag=True, help="Continue from OUT's checkpoint.")
@_option("--seed", "seed", type=int)
@_option("--device", "device")
@results_dir_option
def train_command(data_path: str, base: str, out: Path, resume: bool, **options: Any) -> None:
    """Train a PRM (a value head read at a separator, an lm head, or an implicit PRM) from
    step-labelled data."""
    from prmh.labels import read_labels
    from prmh.plugins.training import train
    from prmh.progress import training_bar

    items = read_labels(data_path)
    config = _config(options, loss_options=tuple(options["loss_options"].items()))
    given = {"data": data_path, "model": base, "resume": resume, **options}
    with opened("train", {**given, "out": out}) as run, training_bar() as on_step:
        summary = run.metrics = train(items, base, out, config, resume=resume, on_step=on_step)
    first, last = _trained(summary)
    click.echo(
        f"trained {summary['steps']} steps on {summary['examples']} solutions "
        f"(loss {first:.4f} -> {last:.4f}); saved {out} (evaluate: prmh eval --prm {out})"
    )


@cli.command("calibrate")
@click.option("--rollouts", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--prm",
    "prm_dir",
    required=True,
    help="A value-head or implicit PRM saved by prmh (prmh train), or a released PRM with a "
    "classifier or lm head (Qwen/Qwen2.5-Math-PRM-7B, math-shepherd -P model=DIR, ...).",
)
@kv_option("-P", "prm_args", "PRM")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--epochs", type=float, default=3.0, show_default=True)
@_option("--lr", "learning_rate", type=float)
@_option("--batch-size", "batch_size", type=int)
@click.option("--lora-r", type=int, default=2, show_default=True)
@click.option(
    "--layers",
    "lora_layers",
    type=click.Choice(["quarter", "all"]),
    default="quarter",
    show_default=True,
    help="LoRA on every fourth layer (the release) or all.",
)
@_option("--seed", "seed", type=int)
@results_dir_option
def calibrate_command(
    rollouts: Path, prm_dir: str, prm_args: dict[str, Any], out: Path, **options: Any
) -> None:
    """Fit a calibrated PRM by quantile regression (wql, quantiles 0.1/0.5/0.9) on rollout
    success rates (a `prmh rollout` file, or the calibration release's data). A value head
    saved by `prmh train` becomes three heads that all start as the original and LoRA adapts a
    subset of layers; an implicit PRM keeps its two models and fits three (scale, bias) pairs;
    a released PRM's classifier or lm head becomes three quantile outputs and a LoRA adapter is
    saved, as the calibration release does. The result outputs quantiles."""
    from prmh.analysis.calibration import read_rollouts
    from prmh.plugins.training import calibrate, calibration_items, calibration_target
    from prmh.progress import training_bar

    items = calibration_items(read_rollouts(rollouts))
    config = _config(options)
    target = calibration_target(prm_dir, prm_args)  # refused before a run opens
    given = {"rollouts": rollouts, "prm": prm_dir, "prm_args": prm_args, **options}
    with opened("calibrate", {**given, "out": out}) as run, training_bar() as on_step:
        summary = run.metrics = calibrate(target, items, out, config, on_step)
    losses, prefixes = summary["losses"], sum(len(item.steps) for item in items)
    click.echo(  # each solution is two items: its steps, and its empty prefix as one step
        f"calibrated on {prefixes} prefixes of {len(items) // 2} solutions; wql "
        f"{losses[0]:.4f} -> {losses[-1]:.4f}; saved {out} (a quantile PRM: prmh eval --prm {out})"
    )


@cli.command("train-generator")
@click.option("--task", "task", default="arith", show_default=True)
@kv_option("-T", "task_args", "task")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use the first N problems.")
@click.option("--model", "base", required=True, help="Base causal LM (directory or Hub id).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--lora/--full", default=False, show_default=True)
@_option("--epochs", "epochs", type=float)
@_option("--max-steps", "max_steps", type=int)
@click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=512, show_default=True)
@_option("--seed", "seed", type=int)
@results_dir_option
def train_generator_command(
    task: str, task_args: dict[str, Any], limit: int | None, base: str, out: Path, **options
) -> None:
    """Fine-tune a generator on a task's gold step-by-step solutions (the task's prompt,
    then the gold steps separated by blank lines)."""
    from prmh.plugins.training import train_generator
    from prmh.progress import training_bar
    from prmh.registry import load_registry

    instance = load_registry().create("task", task, task_args).instance
    problems = [p for p in instance.problems(limit) if p.steps]
    if not problems:
        raise PrmhError(f"task {task!r} has no gold steps to train a generator on.")
    pairs = [(instance.prompt(p), "\n\n".join(p.steps)) for p in problems]
    given = {"task": task, "task_args": task_args, "limit": limit, "model": base, **options}
    with opened("train-generator", {**given, "out": out}) as run, training_bar() as on_step:
        config = _config(options)
        summary = run.metrics = train_generator(pairs, base, out, config, on_step=on_step)
    losses = summary["losses"]
    click.echo(
        f"trained {summary['steps']} steps on {summary['examples']} solutions (loss "
        f"{losses[0]:.4f} -> {losses[-1]:.4f}); saved {out} (use: --generator {out})"
    )
