"""The reproductions that train PRMs with ``prmh train`` first (the tiny world's 4-layer model,
fully fine-tuned): PQM's rank loss against BCE, and AdaptiveStep's PRM trained on adaptive steps
against one trained on paragraphs. Trained models are kept under the results directory, so a
re-run reuses them."""

from __future__ import annotations

import itertools
from typing import Any

Side = tuple[str, float, float, float, dict | None]  # label, mean, low, high, per problem


def pqm(size: dict[str, Any], run: Any) -> list[tuple[Side, Side]]:
    """PQM: a value-head PRM trained with the comparative (rank) loss picks better best-of-N
    answers than one trained with BCE on the same labels. Both are trained by ``prmh train``
    (full fine-tuning of the tiny world's 4-layer model, the same steps, one per training
    seed) on sim solutions of train problems with their exact step labels, then rank sim
    samples of test problems by the minimum step value, as PQM's evaluation does; each loss's
    accuracy pools its seeds (the interval resamples seeds and problems)."""
    from prmh.api import evaluate
    from prmh.metrics import bootstrap_mean

    items, _, _ = _split_labels(size["train"], 4)
    trained: dict[str, list[str]] = {"rank": [], "bce": []}
    for loss, dirs in trained.items():
        for seed in range(size["seeds"]):
            out = run.root / "reproduce" / "pqm-rank" / f"{loss}-{seed}-{size['steps']}"
            _train(items, out, loss, seed, size["steps"])
            dirs.append(str(out))
    result = evaluate(
        world="sim", prm=[d for dirs in trained.values() for d in dirs], agg=["min"],
        selector=["argmax"], budget=[size["n"]], limit=size["limit"], results_dir=run.root,
    )  # fmt: skip
    (table,) = result.tables
    rows = {row.get("prm"): row["cells"][0] for row in table["rows"]}
    found: dict[str, Side] = {}
    for loss, dirs in trained.items():
        seeds = [rows[d]["per_problem"] for d in dirs]
        e = bootstrap_mean(seeds)
        means = [sum(values) / len(values) for values in zip(*seeds, strict=True)]
        per_problem = dict(zip(table["problem_ids"], means, strict=True))
        found[loss] = (f"best-of-{size['n']}, {loss} loss", e.mean, e.low, e.high, per_problem)
    return [(found["rank"], found["bce"])]


def _train(items: list[Any], out: Any, loss: str, seed: int, steps: int) -> None:
    """Train one PRM unless ``out`` already holds it (a re-run reuses it)."""
    from prmh.plugins.tiny import WORLD
    from prmh.plugins.training import TrainConfig, train

    if (out / "prmh_prm.json").is_file():
        return
    config = TrainConfig(
        loss=loss, max_steps=steps, batch_size=16, learning_rate=1e-3, lora=False, seed=seed
    )
    train(items, str(WORLD / "generator"), out, config)


def adaptive_trained(size: dict[str, Any], run: Any) -> list[tuple[Side, Side]]:
    """AdaptiveStep: best-of-N with a PRM trained on adaptive steps (ASPRM) beats one with a PRM
    trained on paragraph steps. Both value-head PRMs learn from the same sim solutions of
    train problems with exact labels (a step is good when the text up to its end has not yet
    left the gold solution); each then reads test samples split its own way, by the minimum
    step value."""
    from prmh.api import evaluate
    from prmh.metrics import bootstrap_mean

    paragraphs, pieces, threshold = _split_labels(size["train"], 4)
    splitters = {"adaptive": f"adaptive-confidence:threshold={threshold}",
                 "paragraph": "double-newline"}  # fmt: skip
    found: dict[str, Side] = {}
    for label, items in (("adaptive", pieces), ("paragraph", paragraphs)):
        out = run.root / "reproduce" / "adaptive-step" / f"{label}-{size['train']}-{size['steps']}"
        _train(items, out, "bce", 0, size["steps"])
        result = evaluate(
            world="sim", prm=[str(out)], splitter=[splitters[label]], agg=["min"],
            selector=["argmax"], budget=[size["n"]], limit=size["limit"], results_dir=run.root,
        )  # fmt: skip
        (table,) = result.tables
        (cell,) = [r["cells"][0] for r in table["rows"] if r.get("prm")]
        e = bootstrap_mean(cell["per_problem"])
        name = f"best-of-{size['n']}, PRM trained on {label} steps"
        per_problem = dict(zip(table["problem_ids"], cell["per_problem"], strict=True))
        found[label] = (name, e.mean, e.low, e.high, per_problem)
    return [(found["adaptive"], found["paragraph"])]


def _split_labels(limit: int, samples: int) -> tuple[list[Any], list[Any], float]:
    """Sim solutions of train problems labelled exactly as paragraphs and as adaptive pieces
    (the splitter fitted on them), and the fitted threshold."""
    from prmh import SampleRequest
    from prmh.labels import LabelledSolution
    from prmh.plugins.arith import ArithTask
    from prmh.plugins.oracle import correct_prefix_length
    from prmh.plugins.sim import SimGenerator
    from prmh.plugins.splitters import AdaptiveConfidenceSplitter

    made = [
        (p, g)
        for p in ArithTask("train").problems(limit)
        for g in SimGenerator().sample([SampleRequest(p, "", samples, 0)])[0]
    ]
    splitter = AdaptiveConfidenceSplitter()
    threshold = splitter.fit([g for _, g in made])
    paragraphs, pieces = [], []
    for p, g in made:
        steps = tuple(s for s in g.text.split("\n\n") if s)
        good = correct_prefix_length(p, steps)
        labels = tuple(float(i < good) for i in range(len(steps)))
        paragraphs.append(LabelledSolution(p.question, steps, labels))
        left = _departure(g.text, steps, p.steps or (), good)
        cut = tuple(splitter.split_generation(g))
        ends = itertools.accumulate(len(x) for x in cut)
        pieces.append(LabelledSolution(p.question, cut, tuple(float(e <= left) for e in ends)))
    return paragraphs, pieces, threshold


def _departure(text: str, steps: tuple[str, ...], gold: tuple[str, ...], good: int) -> int:
    """Where the text first leaves the gold solution: the first character of the first unsound
    paragraph that differs from its gold paragraph (past the end when all are sound)."""
    if good >= len(steps):
        return len(text) + 1
    start = 0
    for step in steps[:good]:
        start = text.index(step, start) + len(step)
    start = text.index(steps[good], start)
    want, mine = (gold[good] if good < len(gold) else ""), steps[good]
    same = min(len(mine), len(want))
    return start + next(
        (i for i, (a, b) in enumerate(zip(mine, want, strict=False)) if a != b), same
    )


def ias_learned(size: dict[str, Any], run: Any) -> list[tuple[Side, Side]]:
    """The calibration release's IAS on the tiny world, with a PRM that learns how hard a
    question is as the release's calibration does, from Monte Carlo success rates: a quantile
    value head (wql: 10/50/90%) on the tiny model, trained on each train question's rate (the
    share of its samples graded right: the target of the empty solution) and on the graded
    samples (each step's target: its solution's outcome). Then bon-IAS against best-of-N with
    that PRM on test problems: tokens, and accuracy no worse."""
    from prmh.api import evaluate
    from prmh.datasets import Source
    from prmh.labels import LabelledSolution

    source = Source(
        "arith", "tiny", limit=size["train"], samples=size["samples"],
        task_args={"split": "train"},
    )  # fmt: skip
    with source.opened(run):
        graded = source.solutions()
    items, by_question = [], {}
    for x in graded:
        by_question.setdefault(x.problem.question, []).append(x.correct)
        steps = x.solution.steps
        items.append(LabelledSolution(x.problem.question, steps, (float(x.correct),) * len(steps)))
    for question in sorted({p.question for p in source.problems}):
        rate = sum(by_question.get(question, [])) / size["samples"]  # unfinished: wrong
        items.append(LabelledSolution(question, ("",), (rate,)))
    out = run.root / "reproduce" / "ias-learned" / f"{size['train']}-{size['steps']}"
    _train(items, out, "wql", 0, size["steps"])
    result = evaluate(
        world="tiny", prm=[str(out)], agg=["min"], selector=["argmax"],
        search=["best-of-n", "bon-ias"], budget=[size["n"]], limit=size["limit"],
        results_dir=run.root,
    )  # fmt: skip
    cells = {c["search"]: c for c in result.accuracy() if c["row"].startswith(str(out))}

    def tokens(search: str) -> Side:
        used = cells[search]["generated_tokens"]
        return (f"generated tokens per problem, {search}", used, used, used, None)

    def accuracy(search: str) -> Side:
        c = cells[search]
        return (f"accuracy, {search}", c["mean"], c["low"], c["high"], c["per_problem"])

    return [(tokens("best-of-n"), tokens("bon-ias")), (accuracy("bon-ias"), accuracy("best-of-n"))]
