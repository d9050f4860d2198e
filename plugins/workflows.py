"""The data-and-training commands: ``prmh rollout``, ``prmh label`` and ``prmh train``.

They are registered through the public ``command`` hook, like any third-party command. Rollouts
and labels read solutions from a task and a generator through the same store as ``prmh eval``,
so everything resumes and nothing is sampled or graded twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from prmh import hookimpl
from prmh.errors import PrmhError
from prmh.records import write_text_atomic


def _kv(flag: str, dest: str, kind: str) -> Any:
    return click.option(
        flag, dest, multiple=True, metavar="KEY=VALUE", help=f"Option for the {kind} (repeatable)."
    )


def _unescape(text: str) -> str:
    """Command-line text with ``\\n`` and ``\\t`` for newlines and tabs (other text as is)."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _source_options(f: Any) -> Any:
    """The options that say which solutions to work on."""
    for decorator in reversed(
        [
            click.option("--task", "task_name", default="arith", show_default=True),
            _kv("-T", "task_args", "task"),
            click.option("--generator", "generator_name", default="sim", show_default=True),
            _kv("-G", "generator_args", "generator"),
            click.option(
                "--splitter", "splitter_name", default="double-newline", show_default=True
            ),
            click.option(
                "--limit", type=int, default=50, show_default=True, help="Use the first N problems."
            ),
            click.option(
                "-n",
                "--samples",
                type=int,
                default=4,
                show_default=True,
                help="Solutions per problem.",
            ),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--results-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="The store [env PRMH_RESULTS_DIR; ./prmh-results].",
            ),
            click.option(
                "--out",
                type=click.Path(dir_okay=False, path_type=Path),
                required=True,
                help="Where to write the result.",
            ),
        ]
    ):
        f = decorator(f)
    return f


class Source:
    """Solutions of a task from a generator, with everything needed to roll them out."""

    def __init__(self, options: dict[str, Any]):
        from prmh.cli import _resolve_results_dir
        from prmh.engine import CacheStats, SearchContext, Workspace
        from prmh.grading import GraderPool, get_grader
        from prmh.matrix import parse_assignment
        from prmh.records import new_run_id
        from prmh.registry import load_registry
        from prmh.rollout import Rollouts
        from prmh.store import Store, ensure_results_dir

        if options["samples"] < 1 or options["limit"] < 1:
            raise PrmhError("--samples and --limit must be at least 1.")
        registry = load_registry()
        args = {
            k: dict(parse_assignment(a) for a in options[k])
            for k in ("task_args", "generator_args")
        }
        self.task = registry.create("task", options["task_name"], args["task_args"])
        generator = registry.create("generator", options["generator_name"], args["generator_args"])
        splitter = registry.create("splitter", options["splitter_name"])
        self.grader = get_grader(self.task.instance.grader)
        self.problems = self.task.instance.problems(options["limit"])
        self.store = Store(ensure_results_dir(_resolve_results_dir(options["results_dir"])))
        self.workspace = Workspace(
            self.task, generator, self.store, new_run_id(), CacheStats(), lambda *a: None
        )
        self.read = SearchContext(self.workspace, None, splitter, lambda s: 0.0).read
        self.samples, self.seed = options["samples"], options["seed"]
        self.pool = GraderPool()
        self.rollouts = Rollouts(self.workspace, self.grader, self.pool, self.seed)

    def solutions(self) -> list[tuple[Any, int, Any, Any, bool]]:
        """(problem, sample index, generation, solution, correct) for finished solutions."""
        from prmh.engine import grade_pairs

        pools = self.workspace.generations(self.problems, self.samples, self.seed)
        rows = [
            (p, i, g, self.read(g))
            for p, pool in zip(self.problems, pools, strict=True)
            for i, g in enumerate(pool)
        ]
        rows = [r for r in rows if r[3].finished and r[3].steps]
        verdicts, _ = grade_pairs(
            self.store,
            self.workspace.run_id,
            self.grader,
            {(s.answer, p.answer) for p, _, _, s in rows},
            self.pool,
            self.workspace.stats,
        )
        return [(p, i, g, s, verdicts[(s.answer, p.answer)]) for p, i, g, s in rows]

    def solutions_for_analysis(self) -> list[tuple[Any, Any, bool]]:
        """(problem, generation, correct) for every finished solution; closes the source."""
        try:
            return [(p, g, correct) for p, _, g, _, correct in self.solutions()]
        finally:
            self.close()

    def close(self) -> None:
        self.pool.close()
        self.store.close()


def rollout_command() -> click.Command:
    @click.command("rollout")
    @_source_options
    @click.option(
        "-k",
        "--rollouts",
        type=int,
        default=8,
        show_default=True,
        help="Continuations per step prefix.",
    )
    def rollout(rollouts: int, out: Path, **options: Any) -> None:
        """Monte Carlo rollouts: each step prefix of each solution (the empty prefix included)
        continued K times; writes one JSON line per solution with each prefix's success rate."""
        if rollouts < 1:
            raise PrmhError("--rollouts must be at least 1.")
        started = time.perf_counter()
        source = Source(options)  # bad options stop here, before a record is written
        with _recorded("rollout", {"rollouts": rollouts, "out": out, **options}) as record:
            source.workspace.run_id = record.run_id
            metrics = _rollout(rollouts, out, source)
            record.data["metrics"] = metrics
        stats = metrics["cache"]
        click.echo(
            f"{metrics['solutions']} solutions, {metrics['prefixes']} prefixes x {rollouts} "
            f"rollouts -> {out} ({time.perf_counter() - started:.1f} s; generations "
            f"{stats['from_store'].get('generation', 0)} stored + "
            f"{stats['computed'].get('generation', 0)} new)"
        )

    return rollout


def _recorded(command: str, options: dict[str, Any]) -> Any:
    """A run record for a command (``prmh.api.recorded``) in its results directory."""
    from prmh.api import command_config, recorded

    argv = click.get_current_context().find_root().meta.get("prmh.argv", [])
    return recorded(command_config(command, options), options.get("results_dir"), argv)


def _rollout(rollouts: int, out: Path, source: Source) -> dict[str, Any]:
    from prmh.rollout import Prefix

    try:
        solutions = source.solutions()
        prefixes = [
            Prefix(p, s.steps, k, rollouts)
            for p, _, _, s, _ in solutions
            for k in range(len(s.steps))
        ]
        values = iter(source.rollouts.values(prefixes))
        lines = []
        for p, i, _, s, correct in solutions:
            rows = [{"k": k, **_value(next(values))} for k in range(len(s.steps))]
            rows.append({"k": len(s.steps), "rate": float(correct), "weighted": float(correct)})
            row = {
                "problem_id": p.id,
                "question": p.question,
                "answer": p.answer,
                "sample": i,
                "steps": list(s.steps),
                "correct": correct,
                "values": rows,
            }
            lines.append(json.dumps(row))
        write_text_atomic(out, "".join(line + "\n" for line in lines))
        return {
            "solutions": len(solutions),
            "prefixes": len(prefixes),
            "cache": source.workspace.stats.to_json(),
        }
    finally:
        source.close()


def _label(
    labeler: Any, source: Source, uncertainty: str | None, out: Path, fmt: str
) -> dict[str, Any]:
    """Label every solution of ``source`` and write them; what it cost (``uncertainty``: the
    measure the labeler needs, if any)."""
    from prmh.labels import LabelledSolution, write_labels
    from prmh.plugins.uncertainty import step_uncertainty

    items, skipped, rollouts, tokens = [], 0, 0, 0
    try:
        for p, _, g, s, correct in source.solutions():
            u = step_uncertainty(g, s.steps, uncertainty) if uncertainty else None
            result = labeler.label(p, s.steps, correct, source.rollouts.for_solution(p, s.steps), u)
            rollouts, tokens = rollouts + result.rollouts, tokens + result.tokens
            if result.labels is None:
                skipped += 1
                continue
            items.append(LabelledSolution(p.question, s.steps, result.labels, p.answer))
    finally:
        source.close()
    written = write_labels(out, items, fmt)
    return {
        "labelled": written,
        "skipped": skipped,
        "rollouts": rollouts,
        "generated_tokens": tokens,
    }


def _value(v: Any) -> dict[str, float]:
    return {"rate": v.rate, "weighted": v.weighted}


def label_command() -> click.Command:
    @click.command("label")
    @_source_options
    @click.option("--labeler", "labeler_name", default="mc-hard", show_default=True)
    @_kv("-L", "labeler_args", "labeler")
    @click.option(
        "--uncertainty",
        type=click.Choice(["entropy", "log-sum"]),
        default="entropy",
        show_default=True,
        help="Step uncertainty for the uncertainty labelers.",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["math-shepherd", "unprm", "stepwise"]),
        default="stepwise",
        show_default=True,
    )
    def label(
        labeler_name: str,
        labeler_args: tuple[str, ...],
        uncertainty: str,
        fmt: str,
        out: Path,
        **options: Any,
    ) -> None:
        """Label each step of each solution with a labeler and write a training file."""
        from prmh.matrix import parse_assignment
        from prmh.registry import load_registry

        labeler = (
            load_registry()
            .create("labeler", labeler_name, dict(parse_assignment(a) for a in labeler_args))
            .instance
        )
        given = {"labeler": labeler_name, "labeler_args": labeler_args, "format": fmt, "out": out}
        source = Source(options)  # bad options stop here, before a record is written
        with _recorded("label", {**given, "uncertainty": uncertainty, **options}) as record:
            source.workspace.run_id = record.run_id
            uncertain = uncertainty if labeler_name.startswith("uncertainty") else None
            m = record.data["metrics"] = _label(labeler, source, uncertain, out, fmt)
        click.echo(
            f"{labeler_name}: {m['labelled']} solutions labelled, {m['skipped']} skipped, "
            f"{m['rollouts']} rollouts and {m['generated_tokens']} generated tokens spent -> "
            f"{out} ({fmt})"
        )

    return label


def train_command() -> click.Command:
    @click.command("train")
    @click.option(
        "--data",
        "data_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="Labelled steps (math-shepherd, unprm or stepwise).",
    )
    @click.option("--model", "base", required=True, help="Base causal LM (directory or Hub id).")
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Where to save the PRM (then: prmh eval --prm OUT).",
    )
    @click.option(
        "--head",
        type=click.Choice(["value", "lm", "implicit"]),
        default="value",
        show_default=True,
        help="A value head at a separator, the LM head's '+'/'-' at a ' ки' tag, or an implicit "
        "PRM (log-likelihood ratio of the model to --reference, summed to each step's end).",
    )
    @click.option(
        "--reference",
        default=None,
        help="Implicit head: the reference LM [a frozen copy of --model]; saved with the PRM.",
    )
    @click.option(
        "--beta",
        type=float,
        default=0.1,
        show_default=True,
        help="Implicit head: the starting scale of the log-likelihood ratio.",
    )
    @click.option(
        "--freeze-backbone", is_flag=True, help="Train the head alone (the model stays as it is)."
    )
    @click.option("--loss", default="bce", show_default=True, help="See `prmh list loss`.")
    @_kv("-L", "loss_args", "loss")
    @click.option(
        "--lora/--full",
        default=True,
        show_default=True,
        help="LoRA adapters (merged on save) or full fine-tuning.",
    )
    @click.option("--lora-r", type=int, default=8, show_default=True)
    @click.option("--epochs", type=float, default=2.0, show_default=True)
    @click.option("--max-steps", type=int, default=None, help="Stop after N optimiser steps.")
    @click.option("--lr", "learning_rate", type=float, default=1e-4, show_default=True)
    @click.option("--batch-size", type=int, default=8, show_default=True)
    @click.option("--grad-accum", type=int, default=1, show_default=True)
    @click.option("--warmup", type=float, default=0.1, show_default=True)
    @click.option("--max-length", type=int, default=1024, show_default=True)
    @click.option("--separator", default=None, help="Step separator [[PRM] or ки by head].")
    @click.option(
        "--query-template",
        default="{question}",
        show_default=True,
        help="Value or implicit head: the text before the steps ({question} is replaced; \\n "
        "is a newline).",
    )
    @click.option(
        "--joiner",
        default="\\n",
        show_default=True,
        help="Value or implicit head: text between steps.",
    )
    @click.option(
        "--step-suffix",
        default=None,
        help="Value head: text after each step, containing the separator [' ' + separator].",
    )
    @click.option("--save-every", type=int, default=0, help="Checkpoint every N steps.")
    @click.option("--resume", is_flag=True, help="Continue from OUT's checkpoint.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--device", default="auto", show_default=True)
    def train(
        data_path: Path,
        base: str,
        out: Path,
        head: str,
        reference: str | None,
        beta: float,
        freeze_backbone: bool,
        loss: str,
        loss_args: tuple[str, ...],
        lora: bool,
        lora_r: int,
        epochs: float,
        max_steps: int | None,
        learning_rate: float,
        batch_size: int,
        grad_accum: int,
        warmup: float,
        max_length: int,
        separator: str | None,
        query_template: str,
        joiner: str,
        step_suffix: str | None,
        save_every: int,
        resume: bool,
        seed: int,
        device: str,
    ) -> None:
        """Train a PRM (a value head read at a separator, an lm head, or an implicit PRM) from
        step-labelled data."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress

        from prmh.labels import read_labels
        from prmh.matrix import parse_assignment
        from prmh.plugins.training import TrainConfig
        from prmh.plugins.training import train as run

        items = read_labels(data_path)
        config = TrainConfig(
            head=head,
            reference=reference,
            beta=beta,
            freeze_backbone=freeze_backbone,
            loss=loss,
            loss_options=tuple(parse_assignment(a) for a in loss_args),
            lora=lora,
            lora_r=lora_r,
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            grad_accum=grad_accum,
            warmup=warmup,
            max_length=max_length,
            separator=None if separator is None else _unescape(separator),
            query_template=_unescape(query_template),
            joiner=_unescape(joiner),
            step_suffix=None if step_suffix is None else _unescape(step_suffix),
            seed=seed,
            save_every=save_every,
            device=device,
        )
        bars = Progress(
            "training",
            BarColumn(),
            MofNCompleteColumn(),
            "loss {task.fields[loss]}",
            console=Console(stderr=True),
            transient=True,
        )
        with bars:
            task = bars.add_task("train", total=None, loss="-")

            def on_step(step: int, total: int, value: float) -> None:
                bars.update(task, completed=step, total=total, loss=f"{value:.4f}")

            summary = run(items, base, out, config, resume=resume, on_step=on_step)
        losses = summary["losses"]
        head = sum(losses[:5]) / max(1, len(losses[:5]))
        tail = sum(losses[-5:]) / max(1, len(losses[-5:]))
        click.echo(
            f"trained {summary['steps']} steps on {summary['examples']} solutions "
            f"(loss {head:.4f} -> {tail:.4f}); saved {out} (evaluate: prmh eval --prm {out})"
        )

    return train


def train_generator_command() -> click.Command:
    @click.command("train-generator")
    @click.option("--task", "task_name", default="arith", show_default=True)
    @_kv("-T", "task_args", "task")
    @click.option("--limit", type=int, default=None, help="Use the first N problems.")
    @click.option("--model", "base", required=True, help="Base causal LM (directory or Hub id).")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
    @click.option("--lora/--full", default=False, show_default=True)
    @click.option("--epochs", type=float, default=2.0, show_default=True)
    @click.option("--max-steps", type=int, default=None)
    @click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True)
    @click.option("--batch-size", type=int, default=32, show_default=True)
    @click.option("--max-length", type=int, default=512, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    def train_generator(
        task_name: str,
        task_args: tuple[str, ...],
        limit: int | None,
        base: str,
        out: Path,
        lora: bool,
        epochs: float,
        max_steps: int | None,
        learning_rate: float,
        batch_size: int,
        max_length: int,
        seed: int,
    ) -> None:
        """Fine-tune a generator on a task's gold step-by-step solutions (the task's prompt,
        then the gold steps separated by blank lines)."""
        from prmh.matrix import parse_assignment
        from prmh.plugins.training import TrainConfig
        from prmh.plugins.training import train_generator as run
        from prmh.registry import load_registry

        task = (
            load_registry()
            .create("task", task_name, dict(parse_assignment(a) for a in task_args))
            .instance
        )
        problems = [p for p in task.problems(limit) if p.steps]
        if not problems:
            raise PrmhError(f"task {task_name!r} has no gold steps to train a generator on.")
        pairs = [(task.prompt(p), "\n\n".join(p.steps)) for p in problems]
        summary = run(
            pairs,
            base,
            out,
            TrainConfig(
                lora=lora,
                epochs=epochs,
                max_steps=max_steps,
                learning_rate=learning_rate,
                batch_size=batch_size,
                max_length=max_length,
                seed=seed,
            ),
        )
        losses = summary["losses"]
        click.echo(
            f"trained {summary['steps']} steps on {summary['examples']} solutions (loss "
            f"{losses[0]:.4f} -> {losses[-1]:.4f}); saved {out} (use: -G model={out})"
        )

    return train_generator


@hookimpl
def prmh_register_command(register):
    register("rollout", rollout_command, description="Monte Carlo rollouts of step prefixes")
    register("label", label_command, description="Step labels from a labeler, as a training file")
    register("train", train_command, description="Train a PRM from step-labelled data")
    register(
        "train-generator",
        train_generator_command,
        description="Fine-tune a generator on a task's gold solutions",
    )
