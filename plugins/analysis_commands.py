"""``prmh analyze processbench|calibration`` and ``prmh calibrate``.

Each analysis prints a rich table, writes its plot (PNG, matplotlib) and a run record whose
``metrics`` hold the numbers (calibration results appear on leaderboards). PRM scores go
through the store, like ``prmh eval``'s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from prmh import hookimpl
from prmh.errors import PrmhError


def _prm_options(f: Any) -> Any:
    for decorator in reversed(
        [
            click.option(
                "--prm",
                "prm_specs",
                multiple=True,
                required=True,
                help="PRM (repeatable); NAME:KEY=VALUE for options.",
            ),
            click.option(
                "-P",
                "prm_args",
                multiple=True,
                metavar="KEY=VALUE",
                help="Option for every PRM, or NAME.KEY=VALUE for one.",
            ),
            click.option(
                "--results-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="The store and run records.",
            ),
            click.option(
                "--plot",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Where to write the plot (PNG) [RESULTS_DIR/runs/RUN.png].",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON."),
        ]
    ):
        f = decorator(f)
    return f


class Scoring:
    """PRMs and a store-backed workspace to score (problem, steps) pairs with them."""

    def __init__(
        self,
        prm_specs: tuple[str, ...],
        prm_args: tuple[str, ...],
        results_dir: Path | None,
        analysis: str,
    ):
        from prmh.cli import _resolve_results_dir
        from prmh.engine import CacheStats, Workspace
        from prmh.matrix import Spec, parse_assignment
        from prmh.records import RunRecord
        from prmh.registry import load_registry
        from prmh.store import Store, ensure_results_dir

        self.registry = load_registry()
        options = dict(parse_assignment(a) for a in prm_args)
        specs = [Spec.parse(s).with_options(options) for s in prm_specs]
        self.prms = [(s.label, self.registry.create("prm", s.name, s.args)) for s in specs]
        root = ensure_results_dir(_resolve_results_dir(results_dir))
        self.store = Store(root)
        config = {
            "analysis": analysis,
            "prm": [{"label": label, **c.identity} for label, c in self.prms],
        }
        argv = click.get_current_context().find_root().meta.get("prmh.argv", [])
        self.record = RunRecord(root / "runs", config, argv)
        self.record.save()
        self.workspace = Workspace(
            None, None, self.store, self.record.run_id, CacheStats(), lambda *a: None
        )

    def score(self, prm: Any, items: list) -> list:
        return self.workspace.score_steps(prm, items)

    def finish(self, metrics: dict[str, Any], plot: Path | None, draw: Any) -> Path:
        path = plot or self.record.path.with_suffix(".png")
        draw(path)
        self.record.finish("success", metrics={**metrics, "plot": str(path)})
        self.store.close()
        return path


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


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _f1(x: float) -> str:
    return "undefined" if isinstance(x, float) and math.isnan(x) else _pct(x)


def _by_f1(row: dict[str, Any]) -> float:
    return -math.inf if math.isnan(row["f1"]) else row["f1"]


def processbench_command() -> click.Command:
    @click.command("processbench")
    @_prm_options
    @click.option(
        "--task",
        "tasks",
        multiple=True,
        default=["processbench-gsm8k"],
        show_default=True,
        help="ProcessBench subsets (repeatable).",
    )
    @click.option(
        "-T",
        "task_args",
        multiple=True,
        metavar="KEY=VALUE",
        help="Task option (e.g. data=FILE) for every task, or NAME.KEY=VALUE.",
    )
    @click.option("--limit", type=int, default=None, help="First N samples of each subset.")
    @click.option("--threshold", type=float, default=0.5, show_default=True)
    @click.option("--pick-on", default=None, help="Subset whose best threshold is used on all.")
    def processbench(
        prm_specs, prm_args, results_dir, plot, as_json, tasks, task_args, limit, threshold, pick_on
    ) -> None:
        """ProcessBench: predict each solution's earliest wrong step (the first step scored
        below a threshold); accuracy on erroneous and on correct samples and their F1, at a
        fixed threshold, over a sweep, and at the threshold that is best on one subset."""
        from prmh.analysis import THRESHOLDS, processbench_scores
        from prmh.matrix import Spec, parse_assignment

        if pick_on is not None and pick_on not in tasks:
            raise PrmhError(f"--pick-on {pick_on!r} is not one of the --task subsets.")
        run = Scoring(prm_specs, prm_args, results_dir, "processbench")
        options = dict(parse_assignment(a) for a in task_args)
        data = {}
        for name in tasks:
            spec = Spec(name).with_options(options)
            task = run.registry.create("task", spec.name, spec.args).instance
            problems = [p for p in task.problems(limit) if "solution_steps" in p.metadata]
            if not problems:
                raise PrmhError(
                    f"task {name!r} has no ProcessBench samples (solution steps and "
                    "the earliest wrong step)."
                )
            data[name] = problems
        results: dict[str, Any] = {}
        for label, prm in run.prms:
            per_task = {}
            for name, problems in data.items():
                scores = run.score(
                    prm, [(p, tuple(p.metadata["solution_steps"])) for p in problems]
                )
                probs = [s.probs for s in scores]
                labels = [int(p.metadata["label"]) for p in problems]
                per_task[name] = {
                    "fixed": processbench_scores(probs, labels, threshold),
                    "sweep": [processbench_scores(probs, labels, t) for t in THRESHOLDS],
                }
            picked = None
            if pick_on:
                picked = max(per_task[pick_on]["sweep"], key=_by_f1)["threshold"]
                for entry in per_task.values():
                    entry["picked"] = next(r for r in entry["sweep"] if r["threshold"] == picked)
            results[label] = {"tasks": per_task, "picked_threshold": picked}
        rows = []
        for label, result in results.items():
            for name, entry in result["tasks"].items():
                f = entry["fixed"]
                rows.append(
                    [
                        f"{label} · {name}",
                        str(f["erroneous"] + f["correct"]),
                        _pct(f["error_accuracy"]),
                        _pct(f["correct_accuracy"]),
                        _f1(f["f1"]),
                        _f1(entry["picked"]["f1"]) if "picked" in entry else "-",
                    ]
                )
        picked_note = "" if not pick_on else f"; picked on {pick_on}"

        def draw(path: Path) -> None:
            lines = [
                (
                    [r["threshold"] for r in e["sweep"]],
                    [r["f1"] for r in e["sweep"]],
                    f"{label} · {name}",
                )
                for label, result in results.items()
                for name, e in result["tasks"].items()
            ]
            line_plot(path, lines, "threshold", "ProcessBench F1")

        path = run.finish({"processbench": results}, plot, draw)
        if as_json:
            click.echo(json.dumps(results, indent=1))
            return
        _table(
            f"ProcessBench at threshold {threshold}{picked_note} (percent)",
            ["PRM · subset", "samples", "erroneous acc.", "correct acc.", "F1", "F1 picked"],
            rows,
        )
        click.echo(f"plot: {path}; record: {run.record.path}")

    return processbench


def _rollout_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise PrmhError(f"{path} line {number}: not valid JSON: {e.msg}.") from e
    if not rows or not all({"question", "steps", "values"} <= set(r) for r in rows):
        raise PrmhError(f"{path} is not a `prmh rollout` file (question, steps, values).")
    return rows


def calibration_points(
    run: Scoring, prm: Any, rows: list[dict[str, Any]]
) -> tuple[list, list, list]:
    """(predicted, observed, quantiles) per rollout prefix: the prefix's last step score from
    one pass over the whole solution (a causal PRM scores a prefix as if alone); the empty
    prefix is scored as one empty step."""
    from prmh import Problem

    problems = [
        Problem(str(r.get("problem_id", i)), r["question"], str(r.get("answer", "")))
        for i, r in enumerate(rows)
    ]
    full = run.score(prm, [(p, tuple(r["steps"])) for p, r in zip(problems, rows, strict=True)])
    empty = run.score(prm, [(p, ("",)) for p in problems])
    predicted, observed, quantiles = [], [], []
    for r, scores, question in zip(rows, full, empty, strict=True):
        for value in r["values"]:
            k = value["k"]
            if k > len(r["steps"]):
                continue
            source, index = (question, 0) if k == 0 else (scores, k - 1)
            predicted.append(source.probs[index])
            observed.append(value["rate"])
            if source.quantiles is not None:
                quantiles.append(source.quantiles[index])
    return predicted, observed, quantiles


def calibration_command() -> click.Command:
    @click.command("calibration")
    @_prm_options
    @click.option(
        "--rollouts",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="A `prmh rollout` file: success rates of step prefixes.",
    )
    @click.option("--bins", type=int, default=10, show_default=True)
    def calibration(prm_specs, prm_args, results_dir, plot, as_json, rollouts, bins) -> None:
        """How well PRM scores match rollout success rates: expected calibration error, Brier
        score, a reliability diagram and, for quantile PRMs, each quantile's coverage."""
        from prmh.analysis import calibration_scores, quantile_coverage

        rows = _rollout_rows(rollouts)
        run = Scoring(prm_specs, prm_args, results_dir, "calibration")
        results = []
        for label, prm in run.prms:
            predicted, observed, quantiles = calibration_points(run, prm, rows)
            entry = {"prm": label, **calibration_scores(predicted, observed, bins)}
            if quantiles:
                levels = (0.1, 0.5, 0.9)
                entry["coverage"] = quantile_coverage(quantiles, observed, levels)
            results.append(entry)

        def draw(path: Path) -> None:
            lines = [
                (
                    [d["predicted"] for d in e["diagram"]],
                    [d["observed"] for d in e["diagram"]],
                    f"{e['prm']} (ECE {e['ece']:.3f})",
                )
                for e in results
            ]
            line_plot(path, lines, "PRM score", "rollout success rate", diagonal=True)

        summary = [{k: v for k, v in e.items() if k != "diagram"} for e in results]
        path = run.finish({"calibration": summary, "diagrams": results}, plot, draw)
        if as_json:
            click.echo(json.dumps(results, indent=1))
            return
        _table(
            f"calibration against {rollouts} ({results[0]['count']} prefixes)",
            ["PRM", "ECE", "Brier", "q0.1 coverage", "q0.5 coverage", "q0.9 coverage"],
            [
                [
                    e["prm"],
                    f"{e['ece']:.4f}",
                    f"{e['brier']:.4f}",
                    *[
                        f"{e['coverage'][k]:.3f}" if "coverage" in e else "-"
                        for k in ("0.1", "0.5", "0.9")
                    ],
                ]
                for e in results
            ],
        )
        click.echo(f"reliability diagram: {path}; record: {run.record.path}")

    return calibration


DEFAULT_THRESHOLDS = "128,256,512,1024,1536,2048"
AGGREGATIONS = ("mean", "min", "last", "whole")


def truncate(text: str, threshold: int, tokenizer: Any) -> str:
    """The first ``threshold`` tokens of ``text`` (the PRM's tokenizer; words and punctuation
    marks for PRMs without one)."""
    if tokenizer is None:
        import re

        return "".join(re.findall(r"\s*(?:\w+|[^\w\s])", text)[:threshold])
    ids = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(ids[:threshold], skip_special_tokens=True)


def partial_scores(
    prm: Any,
    splitter: Any,
    problem: Any,
    text: str,
    thresholds: list[int],
    one_pass: bool,
    whole: bool = True,
) -> tuple[list[list[float]], list[float], int]:
    """Step scores of the full solution and of its truncations (full first), the ``whole``
    score of the full solution and of each truncation (full first), and the forward tokens
    spent. With ``one_pass`` and a causal
    transformers PRM, every truncation comes from the full solution's single pass (a solution
    longer than the PRM's ``max_length`` is rescored, since it would be truncated)."""
    from prmh import ScoreRequest
    from prmh.plugins.prms.hf import shared_prefix

    scorer = getattr(prm.instance, "scorer", None)
    tokenizer = getattr(scorer, "tokenizer", None)
    texts = [truncate(text, t, tokenizer) for t in thresholds]
    steps = [tuple(splitter.split(text))] + [tuple(splitter.split(t)) for t in texts]
    recipe = getattr(prm.instance, "recipe", None)
    encoded = [recipe.encode(problem.question, list(s)) for s in steps] if scorer else []
    shares_cache = hasattr(scorer, "score_variants")  # the implicit PRM has no such pass
    if one_pass and shares_cache and len(encoded[0].ids) <= scorer.max_length:
        full, variants = scorer.score_variants(
            encoded[0], encoded[1:], getattr(recipe, "good_bad", None)
        )
        step_probs = [full, *variants]
        tokens = len(encoded[0].ids) + sum(
            len(e.ids) - shared_prefix(encoded[0].ids, e.ids) for e in encoded[1:]
        )
    else:
        scored = prm.instance.score([ScoreRequest(problem, s) for s in steps])
        step_probs = [list(x.probs) for x in scored]
        tokens = sum(x.num_tokens for x in scored)
    if not whole:
        return step_probs, [], tokens
    wholes = prm.instance.score(
        [ScoreRequest(problem, (t.strip(),) if t.strip() else ()) for t in [text, *texts]]
    )
    return step_probs, [w.probs[0] if w.probs else 0.0 for w in wholes], tokens


def _aggregate(probs: list[float], how: str) -> float:
    if not probs:
        return 0.0
    return {"mean": sum(probs) / len(probs), "min": min(probs), "last": probs[-1]}[how]


def correlation_command() -> click.Command:
    @click.command("correlation")
    @_prm_options
    @click.option("--task", "task_name", default="arith", show_default=True)
    @click.option("-T", "task_args", multiple=True, metavar="KEY=VALUE")
    @click.option("--generator", "generator_name", default="sim", show_default=True)
    @click.option("-G", "generator_args", multiple=True, metavar="KEY=VALUE")
    @click.option("--splitter", "splitter_name", default="double-newline", show_default=True)
    @click.option("--limit", type=int, default=50, show_default=True)
    @click.option("-n", "--samples", type=int, default=8, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option(
        "--thresholds",
        default=DEFAULT_THRESHOLDS,
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
    def correlation(
        prm_specs, prm_args, results_dir, plot, as_json, method, thresholds, **source
    ) -> None:
        """How well scores of partial solutions predict final correctness: solutions cut at
        token thresholds, scored, aggregated (mean, min, last, and whole: the cut text scored
        as one block), and correlated (Pearson, bootstrap interval over problems) with
        correctness and with the full solution's score."""
        from prmh.analysis import pearson_interval
        from prmh.plugins.workflows import Source

        try:
            cuts = sorted({int(t) for t in thresholds.split(",") if t.strip()})
        except ValueError:
            raise PrmhError(f"--thresholds must be whole numbers, got {thresholds!r}.") from None
        if not cuts or cuts[0] < 1:
            raise PrmhError("--thresholds must be positive token counts.")
        run = Scoring(prm_specs, prm_args, results_dir, "correlation")
        solutions = Source({**source, "results_dir": results_dir}).solutions_for_analysis()
        splitter = run.registry.create("splitter", source["splitter_name"]).instance
        correct = [float(c) for *_, c in solutions]
        groups = [p.id for p, *_ in solutions]
        results: dict[str, Any] = {}
        for label, prm in run.prms:
            scores = {a: {t: [] for t in cuts} for a in AGGREGATIONS}
            full_scores = {a: [] for a in AGGREGATIONS}
            tokens = 0
            for problem, generation, _ in solutions:
                step_probs, wholes, spent = partial_scores(
                    prm, splitter, problem, generation.text, cuts, method == "one-pass"
                )
                tokens += spent
                for a in ("mean", "min", "last"):
                    full_scores[a].append(_aggregate(step_probs[0], a))
                    for t, probs in zip(cuts, step_probs[1:], strict=True):
                        scores[a][t].append(_aggregate(probs, a))
                full_scores["whole"].append(wholes[0])
                for t, w in zip(cuts, wholes[1:], strict=True):
                    scores["whole"][t].append(w)
            table = {
                a: {
                    str(t): {
                        "correctness": pearson_interval(scores[a][t], correct, groups),
                        "full_score": pearson_interval(scores[a][t], full_scores[a], groups),
                    }
                    for t in cuts
                }
                | {"full": {"correctness": pearson_interval(full_scores[a], correct, groups)}}
                for a in AGGREGATIONS
            }
            results[label] = {
                "correlations": table,
                "forward_tokens": tokens,
                "solutions": len(solutions),
                "method": method,
            }

        def draw(path: Path) -> None:
            lines = [
                (
                    cuts,
                    [result["correlations"][a][str(t)]["correctness"]["r"] for t in cuts],
                    f"{label} · {a}",
                )
                for label, result in results.items()
                for a in AGGREGATIONS
            ]
            line_plot(
                path, lines, "tokens of the solution kept", "Pearson r with correctness", log2x=True
            )

        path = run.finish({"correlation": results}, plot, draw)
        if as_json:
            click.echo(json.dumps(results, indent=1))
            return
        for label, result in results.items():

            def cell(entry: dict[str, float]) -> str:
                if math.isnan(entry["r"]):
                    return "undefined (constant)"
                return f"{entry['r']:.3f} [{entry['low']:.2f}, {entry['high']:.2f}]"

            rows = [
                [
                    f"tau={t}",
                    *[cell(result["correlations"][a][str(t)]["correctness"]) for a in AGGREGATIONS],
                ]
                for t in cuts
            ]
            rows.append(
                [
                    "full solution",
                    *[cell(result["correlations"][a]["full"]["correctness"]) for a in AGGREGATIONS],
                ]
            )
            _table(
                f"{label}: Pearson r of partial-solution scores with correctness "
                f"({result['solutions']} solutions, {result['forward_tokens']} forward tokens)",
                ["threshold", *AGGREGATIONS],
                rows,
            )
            if any("undefined" in c for row in rows for c in row):
                click.echo(
                    "undefined: the scores (or the outcomes) are the same for every solution, "
                    "so Pearson r is undefined (nan in --json)."
                )
        click.echo(f"plot: {path}; record: {run.record.path}")

    return correlation


def analyze_group() -> click.Group:
    @click.group("analyze")
    def analyze() -> None:
        """Analyse PRMs: step errors, calibration, and reliability on partial solutions."""

    analyze.add_command(processbench_command())
    analyze.add_command(calibration_command())
    analyze.add_command(correlation_command())
    return analyze


def calibrate_command() -> click.Command:
    @click.command("calibrate")
    @click.option("--rollouts", type=click.Path(dir_okay=False, path_type=Path), required=True)
    @click.option(
        "--prm",
        "prm_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="A value-head or implicit PRM saved by prmh (prmh train).",
    )
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
    @click.option("--epochs", type=float, default=3.0, show_default=True)
    @click.option("--lr", "learning_rate", type=float, default=1e-4, show_default=True)
    @click.option("--batch-size", type=int, default=8, show_default=True)
    @click.option("--lora-r", type=int, default=2, show_default=True)
    @click.option(
        "--layers",
        type=click.Choice(["quarter", "all"]),
        default="quarter",
        show_default=True,
        help="LoRA on every fourth layer (the release) or all.",
    )
    @click.option("--seed", type=int, default=0, show_default=True)
    def calibrate(
        rollouts, prm_dir, out, epochs, learning_rate, batch_size, lora_r, layers, seed
    ) -> None:
        """Fit a calibrated PRM by quantile regression (wql, quantiles 0.1/0.5/0.9) on rollout
        success rates, starting from a PRM saved by `prmh train`. A value head becomes three
        heads that all start as the original and LoRA adapts a subset of layers; an implicit
        PRM keeps its two models and fits three (scale, bias) pairs. The result outputs
        quantiles."""
        from prmh.labels import LabelledSolution
        from prmh.plugins.training import TrainConfig, train
        from prmh.registry import read_prm_config

        config = read_prm_config(prm_dir)
        implicit = config["recipe"] == "implicit"
        if not implicit and (
            config["recipe"] != "value-head" or not (prm_dir / "value_head.safetensors").is_file()
        ):
            raise PrmhError(f"{prm_dir} is not a value-head or implicit PRM saved by `prmh train`.")
        items = []
        for r in _rollout_rows(rollouts):
            steps = tuple(r["steps"])
            by_k = {v["k"]: v["rate"] for v in r["values"]}
            if all(k in by_k for k in range(len(steps) + 1)):
                items.append(
                    LabelledSolution(
                        r["question"], steps, tuple(by_k[k] for k in range(1, len(steps) + 1))
                    )
                )
                items.append(LabelledSolution(r["question"], ("",), (by_k[0],)))
        options = config.get("options", {})
        summary = train(
            items,
            str(prm_dir),
            out,
            TrainConfig(
                head="implicit" if implicit else "value",
                loss="wql",
                lora=not implicit,
                lora_r=lora_r,
                epochs=epochs,
                learning_rate=learning_rate,
                batch_size=batch_size,
                separator=None if implicit else options.get("separator", "[PRM]"),
                query_template=options.get("query_template", "{question}"),
                joiner=options.get("joiner", "\n"),
                step_suffix=options.get("step_suffix"),
                seed=seed,
                init_head=str(prm_dir if implicit else prm_dir / "value_head.safetensors"),
                lora_layers=layers,
                reference=str(prm_dir / options["reference"]) if implicit else None,
                freeze_backbone=implicit,
            ),
        )
        losses = summary["losses"]
        click.echo(
            f"calibrated on {len(items)} prefix sets; wql {losses[0]:.4f} -> "
            f"{losses[-1]:.4f}; saved {out} (a quantile PRM: prmh eval --prm {out})"
        )

    return calibrate


@hookimpl
def prmh_register_command(register):
    register("analyze", analyze_group, description="Step errors and calibration of PRMs")
    register("calibrate", calibrate_command, description="Calibrate a PRM on rollout rates")
