"""``prmh reproduce NAME``: a release's headline claim tested on the bundled worlds through prmh's
own evaluation and analyses, with a verdict computed from the numbers.

Each claim is one or more comparisons "A beats B", each side an estimate with its 95% interval
(over problems). When both sides hold a value for each of the same problems (two searches or
PRMs on one pool), the comparison is paired: A is above B when the percentile bootstrap of
their per-problem difference lies above zero (Koehn, "Statistical Significance Tests for
Machine Translation Evaluation", EMNLP 2004: paired bootstrap resampling), below when it lies
below; otherwise (correlations, counts without per-problem values) A is above B when A's
interval lies above B's. A comparison is ``reproduced`` when A is above B, ``reversed`` when
it is below, ``direction only`` when neither but A's estimate is higher, and ``not
reproduced`` otherwise; the claim's verdict is the weakest of its comparisons (reversed < not
reproduced < direction only < reproduced). ``--quick`` runs a smaller size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prmh.errors import PrmhError

ORDER = ("reversed", "not reproduced", "direction only", "reproduced")


@dataclass(frozen=True)
class Estimate:
    label: str
    mean: float
    low: float
    high: float
    per_problem: dict[str, float] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "mean": self.mean, "low": self.low, "high": self.high}


def difference(first: Estimate, second: Estimate) -> dict[str, Any] | None:
    """The paired bootstrap of ``first`` minus ``second`` over their problems (mean, low,
    high, problems), when both hold a value for each of the same problems; else None."""
    from prmh.metrics import aligned, bootstrap_mean

    pair = aligned(first.per_problem, second.per_problem)
    if pair is None:
        return None
    e = bootstrap_mean(pair[0] - pair[1])
    return {"mean": e.mean, "low": e.low, "high": e.high, "problems": len(pair[0])}


def compare(better: Estimate, worse: Estimate, matches: bool = False) -> str:
    """The verdict of "``better`` beats ``worse``" (or, with ``matches``, "is no worse than":
    reproduced unless it lies below), paired over their problems where both hold them."""
    return _verdict(better, worse, difference(better, worse), matches)


def _verdict(
    better: Estimate, worse: Estimate, paired: dict[str, Any] | None, matches: bool
) -> str:
    """``compare`` given their paired difference (``difference``; None: by the intervals)."""
    if paired is None:
        above, below = better.low > worse.high, better.high < worse.low
        ahead = better.mean > worse.mean
    else:
        above, below, ahead = paired["low"] > 0, paired["high"] < 0, paired["mean"] > 0
    if matches:
        return "not reproduced" if below else "reproduced"
    if above:
        return "reproduced"
    if below:
        return "reversed"
    return "direction only" if ahead else "not reproduced"


def overall(verdicts: list[str]) -> str:
    return min(verdicts, key=ORDER.index)


@dataclass(frozen=True)
class Matches:
    """A comparison claiming no difference: the first is no worse than the second."""

    first: Estimate
    second: Estimate


@dataclass(frozen=True)
class Reproduction:
    name: str
    release: str
    claim: str
    sizes: dict[str, dict[str, Any]]  # "quick" and "full": the run's size
    run: Callable[[dict[str, Any], Any], list[Any]]  # (size, open run): pairs or Matches


def _votes(size: dict[str, Any], run: Any) -> list[tuple[Estimate, Estimate]]:
    """UnPRM's votes against majority voting, with a noisy PRM on the sim world."""
    from prmh.api import evaluate

    selectors = ["hybrid-vote", "frequency-vote"]
    result = evaluate(
        world="sim", prm=["oracle:noise=3"], agg=["mean"], selector=selectors,
        budget=[size["n"]], limit=size["limit"], seed=list(range(size["seeds"])),
        results_dir=run.root,
    )  # fmt: skip
    cells = {cell["row"]: cell for cell in result.accuracy()}
    majority = _estimate(cells["majority@N"], f"majority@{size['n']}")
    return [(_estimate(cells[f"oracle:noise=3 · mean · {s}"], s), majority) for s in selectors]


def _estimate(cell: dict[str, Any], label: str) -> Estimate:
    return Estimate(label, cell["mean"], cell["low"], cell["high"], cell.get("per_problem"))


def _reliability(size: dict[str, Any], run: Any) -> list[tuple[Estimate, Estimate]]:
    """tt_scale's Section 3: the correlation of a partial solution's score with the outcome
    rises with the prefix's length, and the mean of step scores beats their minimum midway."""
    from prmh.analysis.correlation import correlation
    from prmh.analysis.scoring import build_prms
    from prmh.datasets import Source

    cuts = size["cuts"]
    prms = build_prms(["oracle:noise=1"], {})
    source = Source("arith", "sim", limit=size["limit"], samples=size["n"])
    with source.opened(run):
        table = correlation(prms, source.solutions(), source.splitter, cuts)
    (result,) = table.values()
    r = result["correlations"]

    def at(aggregation: str, cut: int) -> Estimate:
        entry = r[aggregation][str(cut)]["correctness"]
        return Estimate(f"{aggregation} at {cut} tokens", entry["r"], entry["low"], entry["high"])

    middle = cuts[len(cuts) // 2]
    return [(at("mean", cuts[-1]), at("mean", cuts[0])), (at("mean", middle), at("min", middle))]


def _adaptive(size: dict[str, Any], run: Any) -> list[Any]:
    """AdaptiveStep: steps cut at the generator's low-confidence tokens are fewer than
    paragraph steps, and best-of-N with a PRM trained on them (as ASPRM is) beats best-of-N
    with one trained on paragraphs (``prmh.reproduce_trained.adaptive_trained``)."""
    from prmh.datasets import Source
    from prmh.reproduce_trained import adaptive_trained

    counts = {}
    for label, splitter in (("adaptive", "adaptive-confidence"), ("paragraph", "double-newline")):
        source = Source("arith", "sim", splitter=splitter, limit=size["limit"], samples=size["n"])
        with source.opened(run):
            per_problem: dict[str, list[float]] = {}
            for x in source.solutions():
                per_problem.setdefault(x.problem.id, []).append(len(x.solution.steps))
        counts[label] = _mean(per_problem, f"steps per solution, {splitter}")
    trained = [(Estimate(*a), Estimate(*b)) for a, b in adaptive_trained(size, run)]
    return [(counts["paragraph"], counts["adaptive"]), *trained]


def _labelling(size: dict[str, Any], run: Any) -> list[Any]:
    """UnPRM's labelling: its uncertainty-delta search for the first wrong step spends fewer
    rollouts than Math-Shepherd's Monte Carlo labels (8 rollouts per step) on the same
    incorrect solutions, with labels as good against the exact ones the sim world knows; and,
    at an equal budget (Monte Carlo given as many rollouts per solution as the search spent),
    labels as good."""
    from prmh.datasets import Source

    source = Source("arith", "sim", limit=size["limit"], samples=size["n"])
    with source.opened(run):
        wrong = [x for x in source.solutions() if not x.correct]
        mc = _labelled(source, wrong, "mc-hard", {"n": 8})
        un = _labelled(source, wrong, "uncertainty-delta", {})
        steps = sum(len(x.solution.steps) for x in wrong) / max(1, len(wrong))
        even = max(1, round(un["rollouts"].mean / max(1.0, steps)))  # rollouts per step
        mc_even = _labelled(source, wrong, "mc-hard", {"n": even})
    return [
        (mc["rollouts"], un["rollouts"]),
        Matches(un["accuracy"], mc["accuracy"]),
        Matches(un["accuracy"], mc_even["accuracy"]),
    ]


def _labelled(source: Any, wrong: list[Any], name: str, options: dict) -> dict[str, Estimate]:
    """A labeler's rollouts per solution and share of step labels equal to the exact ones."""
    from prmh.plugins.oracle import correct_prefix_length
    from prmh.plugins.uncertainty import step_uncertainty
    from prmh.registry import load_registry

    labeler = load_registry().create("labeler", name, options).instance
    n = f" ({options['n']} per step)" if "n" in options else ""
    spent: dict[str, list[float]] = {}
    right: dict[str, list[float]] = {}
    for x in wrong:
        p, steps = x.problem, x.solution.steps
        u = step_uncertainty(x.generation, steps) if name.startswith("uncertainty") else None
        rollout = source.rollouts.for_solution(p, steps, x.solution.text)
        result = labeler.label(p, steps, x.correct, rollout, u)
        spent.setdefault(p.id, []).append(result.rollouts)
        if result.labels is not None:
            good = correct_prefix_length(p, steps)
            agree = [round(y) == (i < good) for i, y in enumerate(result.labels)]
            right.setdefault(p.id, []).append(sum(agree) / len(agree))
    return {
        "rollouts": _mean(spent, f"rollouts per solution, {name}{n}"),
        "accuracy": _mean(right, f"step labels right, {name}{n}"),
    }


def _mean(per_problem: dict[str, list[float]], label: str) -> Estimate:
    """The mean over problems of each problem's mean, with its interval and the values."""
    from prmh.metrics import bootstrap_mean

    means = {k: sum(v) / len(v) for k, v in per_problem.items()}
    e = bootstrap_mean(list(means.values()))
    return Estimate(label, e.mean, e.low, e.high, means)


def _ias(size: dict[str, Any], run: Any) -> list[Any]:
    """The calibration release's IAS: best-of-N whose budget follows a calibrated PRM's lower
    quantile of the question's success (bon-ias) spends fewer samples than best-of-N at the same
    accuracy. The PRM is the sim world's oracle with the solver's true success probability as
    its prior (a perfectly calibrated question-level quantile: IAS's best case). Compute is a
    count, so its interval is the point itself."""
    from prmh.api import evaluate

    prm = "oracle:noise=3,quantiles=true,sim_prior=true"
    result = evaluate(
        world="sim", prm=[prm], agg=["min"], selector=["argmax"],
        search=["best-of-n", "bon-ias"], budget=[size["n"]], limit=size["limit"],
        results_dir=run.root,
    )  # fmt: skip
    cells = {c["search"]: c for c in result.accuracy() if c["row"].startswith("oracle")}

    def tokens(search: str) -> Estimate:
        used = cells[search]["generated_tokens"]
        return Estimate(f"generated tokens per problem, {search}", used, used, used)

    bon, ias = cells["best-of-n"], cells["bon-ias"]
    return [
        (tokens("best-of-n"), tokens("bon-ias")),
        Matches(_estimate(ias, "accuracy, bon-ias"), _estimate(bon, "accuracy, best-of-n")),
    ]


def _tvd(size: dict[str, Any], run: Any) -> list[Any]:
    """AdaptiveStep's TVD beats greedy decoding: on the code world, with the release's code
    threshold (28%) and the noisy oracle standing in for a trained PRM."""
    from prmh.api import evaluate

    result = evaluate(
        world="code", prm=["oracle:noise=3"], agg=["last"], search=["greedy", "tvd"],
        budget=[1], limit=size["limit"], results_dir=run.root,
    )  # fmt: skip
    cells = {c["search"]: c for c in result.accuracy() if c["row"].startswith("oracle")}
    tvd, greedy = cells["tvd"], cells["greedy"]
    return [(_estimate(tvd, "accuracy, TVD (kappa 28)"), _estimate(greedy, "accuracy, greedy"))]


def _ias_learned(size: dict[str, Any], run: Any) -> list[Any]:
    from prmh.reproduce_trained import ias_learned

    (tokens, accuracy) = [(Estimate(*a), Estimate(*b)) for a, b in ias_learned(size, run)]
    return [tokens, Matches(*accuracy)]


def _pqm(size: dict[str, Any], run: Any) -> list[Any]:
    from prmh.reproduce_trained import pqm

    return [(Estimate(*a), Estimate(*b)) for a, b in pqm(size, run)]


REPRODUCTIONS = {
    r.name: r
    for r in (
        Reproduction(
            "unprm-votes",
            "UnPRM",
            "Hybrid Majority Reward Vote and Weighted Reward Frequency Vote beat majority voting",
            {
                "quick": {"limit": 60, "n": 16, "seeds": 1},
                "full": {"limit": 200, "n": 64, "seeds": 3},
            },
            _votes,
        ),
        Reproduction(
            "partial-reliability",
            "tt_scale",
            "PRM-outcome correlation rises with prefix length; mean beats min mid-solution",
            {
                "quick": {"limit": 40, "n": 4, "cuts": [8, 16, 32, 64]},
                "full": {"limit": 200, "n": 8, "cuts": [8, 16, 32, 64, 128]},
            },
            _reliability,
        ),
        Reproduction(
            "ias",
            "calibration + IAS",
            "Instance-adaptive sampling needs fewer samples at equal accuracy",
            {"quick": {"limit": 60, "n": 16}, "full": {"limit": 200, "n": 64}},
            _ias,
        ),
        Reproduction(
            "ias-learned",
            "calibration + IAS",
            "Instance-adaptive sampling needs fewer samples at equal accuracy, with a PRM "
            "calibrated on Monte Carlo success rates (tiny world)",
            {
                "quick": {"train": 60, "samples": 8, "steps": 60, "limit": 40, "n": 16},
                "full": {"train": 300, "samples": 8, "steps": 150, "limit": 200, "n": 16},
            },
            _ias_learned,
        ),
        Reproduction(
            "unprm-labelling",
            "UnPRM",
            "Uncertainty-driven search for the first wrong step needs fewer rollouts than "
            "Monte Carlo labelling, at equal label quality",
            {"quick": {"limit": 20, "n": 4}, "full": {"limit": 100, "n": 8}},
            _labelling,
        ),
        Reproduction(
            "pqm-rank",
            "PQM",
            "A PRM trained with the comparative (rank) loss beats one trained with BCE at "
            "best-of-N",
            {
                "quick": {"train": 60, "steps": 60, "seeds": 1, "limit": 60, "n": 16},
                "full": {"train": 200, "steps": 150, "seeds": 3, "limit": 200, "n": 16},
            },
            _pqm,
        ),
        Reproduction(
            "adaptive-step",
            "AdaptiveStep",
            "Steps cut at low-confidence tokens are fewer (paragraph steps outnumber them), and "
            "best-of-N with a PRM trained on them is better",
            {
                "quick": {"limit": 60, "n": 8, "train": 60, "steps": 60},
                "full": {"limit": 200, "n": 16, "train": 200, "steps": 150},
            },
            _adaptive,
        ),
        Reproduction(
            "tvd",
            "AdaptiveStep",
            "Token-level value-guided decoding (TVD) with a PRM beats greedy decoding",
            {"quick": {"limit": 100}, "full": {"limit": 500}},
            _tvd,
        ),
    )
}


def reproduction(name: str) -> Reproduction:
    """The reproduction ``name``, or a message naming those there are."""
    if name not in REPRODUCTIONS:
        raise PrmhError(f"no reproduction {name!r}; there are: {', '.join(REPRODUCTIONS)}.")
    return REPRODUCTIONS[name]


def reproduce(name: str, quick: bool, run: Any) -> dict[str, Any]:
    """Run reproduction ``name`` in the open ``run``; its comparisons, their verdicts and the
    claim's."""
    spec = reproduction(name)
    size = spec.sizes["quick" if quick else "full"]
    rows = []
    for pair in spec.run(size, run):
        matches = isinstance(pair, Matches)
        a, b = (pair.first, pair.second) if matches else pair
        paired = difference(a, b)  # None: compared by their intervals
        rows.append(
            {
                "better": a.to_json(),
                "worse": b.to_json(),
                "kind": "matches" if matches else "beats",
                "difference": paired,
                "verdict": _verdict(a, b, paired, matches),
            }
        )
    return {
        "name": name,
        "release": spec.release,
        "claim": spec.claim,
        "size": "quick" if quick else "full",
        "comparisons": rows,
        "verdict": overall([row["verdict"] for row in rows]),
    }
