"""``prmh rollout`` and ``prmh label``: training data from a task's solutions, through the
store (so they resume, and nothing is sampled or graded twice)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from prmh.cli.common import (
    kv_option,
    opened,
    out_option,
    results_dir_option,
    seed_option,
    stack,
)
from prmh.cli.group import cli
from prmh.errors import PrmhError


def source_options(samples: int) -> Any:
    """The options that say which solutions to work on (``prmh.datasets.Source``)."""
    return stack(
        click.option(
            "--world",
            envvar="PRMH_WORLD",
            default=None,
            help="Defaults for what is not given, as for prmh eval: sim, tiny or code "
            "[default: sim, code for --task code; env PRMH_WORLD].",
        ),
        click.option("--task", "task", default=None, help="Task [arith; code in the code world]."),
        kv_option("-T", "task_args", "task"),
        click.option(
            "--generator",
            "generator",
            default=None,
            help="Generator [sim; tiny in the tiny world].",
        ),
        kv_option("-G", "generator_args", "generator"),
        click.option(
            "--splitter",
            "splitter",
            default=None,
            help="Step splitter [double-newline; code-lines in the code world].",
        ),
        click.option(
            "--limit", type=int, default=50, show_default=True, help="Use the first N problems."
        ),
        click.option(
            "-n",
            "--samples",
            type=int,
            default=samples,
            show_default=True,
            help="Solutions per problem.",
        ),
        seed_option,
    )


result_out = out_option("Where to write the result.", required=True)


def with_world(options: dict[str, Any]) -> dict[str, Any]:
    """The task, generator and splitter not given, from the world's (``prmh.matrix.WORLDS``):
    ``--world``, else ``code`` for the code task, else ``sim``; ``options`` is updated, so the
    run record holds what ran."""
    from prmh.matrix import WORLDS

    task = options.get("task")
    world = options.get("world") or ("code" if str(task).partition(":")[0] == "code" else "sim")
    if world not in WORLDS:
        raise PrmhError(f"unknown world {world!r}; worlds are: {', '.join(WORLDS)}.")
    defaults = {"task": "arith", "splitter": "double-newline"} | {
        k: v[0] for k, v in WORLDS[world].items() if k in ("task", "generator", "splitter")
    }
    options.update({k: options.get(k) or v for k, v in defaults.items()}, world=world)
    return options


def source(options: dict[str, Any]) -> Any:
    """The solutions the options name (checked before any record is written)."""
    from prmh.datasets import Source

    with_world(options)
    keys = ("splitter", "limit", "samples", "seed", "task_args", "generator_args")
    options = {k: options[k] for k in ("task", "generator", *keys)}
    return Source(options["task"], options["generator"], **{k: options[k] for k in keys})


@cli.command("rollout")
@source_options(samples=4)
@results_dir_option
@result_out
@click.option(
    "-k", "--rollouts", type=int, default=8, show_default=True, help="Continuations per prefix."
)
def rollout_command(rollouts: int, out: Path, **options: Any) -> None:
    """Monte Carlo rollouts: each step prefix of each solution (the empty prefix included)
    continued K times; writes one JSON line per solution with each prefix's success rate."""
    from prmh.datasets import write_rollouts
    from prmh.matrix import MAX_SAMPLES

    if not 1 <= rollouts <= MAX_SAMPLES:  # 10**11 filled memory before any was sent
        raise PrmhError(f"--rollouts must be at least 1 and at most {MAX_SAMPLES}, not {rollouts}.")
    started = time.perf_counter()
    solutions = source(options)
    with opened("rollout", {"rollouts": rollouts, "out": out, **options}) as run:
        with solutions.opened(run):
            metrics = run.metrics = write_rollouts(solutions, rollouts, out)
    stats = metrics["cache"]
    click.echo(
        f"{metrics['solutions']} solutions, {metrics['prefixes']} prefixes x {rollouts} "
        f"rollouts -> {out} ({time.perf_counter() - started:.1f} s; generations "
        f"{stats['from_store'].get('generation', 0)} stored + "
        f"{stats['computed'].get('generation', 0)} new)"
    )


@cli.command("label")
@source_options(samples=4)
@results_dir_option
@result_out
@click.option("--labeler", "labeler", default="mc-hard", show_default=True)
@kv_option("-L", "labeler_args", "labeler")
@click.option(
    "--uncertainty",
    type=click.Choice(["entropy", "log-sum"]),
    default="entropy",
    show_default=True,
    help="Step uncertainty for the uncertainty labelers.",
)
@click.option(
    "--select",
    type=click.Choice(["all", "uncertainty", "diversity"]),
    default="all",
    show_default=True,
    help="Label every solution, or UnPRM's 2 correct + 6 incorrect per problem, chosen by "
    "uncertainty or by diversity (problems without a correct solution are left out).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["math-shepherd", "unprm", "stepwise"]),
    default="stepwise",
    show_default=True,
)
def label_command(
    labeler: str,
    labeler_args: dict[str, Any],
    uncertainty: str,
    select: str,
    fmt: str,
    out: Path,
    **options: Any,
) -> None:
    """Label each step of each solution with a labeler and write a training file."""
    from prmh.datasets import write_labelled
    from prmh.registry import load_registry

    instance = load_registry().create("labeler", labeler, labeler_args).instance
    solutions = source(options)
    given = {"labeler": labeler, "labeler_args": labeler_args, "format": fmt, "out": out}
    given |= {"uncertainty": uncertainty, "select": select}
    with opened("label", {**given, **options}) as run:
        with solutions.opened(run):
            uncertain = uncertainty if labeler.startswith("uncertainty") else None
            m = run.metrics = write_labelled(
                solutions, instance, uncertain, out, fmt, select, uncertainty
            )
    chose = m["selected"]
    if select != "all":
        click.echo(f"selected {chose['chosen']} of {chose['from']} solutions by {select}")
    click.echo(
        f"{labeler}: {m['labelled']} solutions labelled, {m['skipped']} skipped, "
        f"{m['rollouts']} rollouts and {m['generated_tokens']} generated tokens spent -> "
        f"{out} ({fmt})"
    )
