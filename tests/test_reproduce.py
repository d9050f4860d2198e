"""``prmh reproduce``: each available reproduction's quick size runs, prints its comparisons,
and its verdict follows from the numbers by the rule in ``prmh.reproduce``."""

from __future__ import annotations

import json

import pytest
from conftest import skip_without_extra

from prmh.reproduce import REPRODUCTIONS, Estimate, compare, difference, overall

RANK = {"reversed": 0, "not reproduced": 1, "direction only": 2, "reproduced": 3}


def test_the_verdict_rule():
    high, low = Estimate("a", 0.8, 0.7, 0.9), Estimate("b", 0.5, 0.4, 0.6)
    close = Estimate("c", 0.55, 0.45, 0.75)
    assert compare(high, low) == "reproduced" and compare(low, high) == "reversed"
    assert compare(close, low) == "direction only" and compare(low, close) == "not reproduced"
    assert overall(["reproduced", "direction only"]) == "direction only"
    assert overall(["reproduced", "reversed", "direction only"]) == "reversed"
    assert compare(close, low, matches=True) == "reproduced"  # overlapping: no worse
    assert compare(low, high, matches=True) == "not reproduced"


def test_sides_on_the_same_problems_are_compared_paired():
    """Two sides with a value for each of the same problems are compared by the paired
    bootstrap of their per-problem difference (Koehn, EMNLP 2004, paired bootstrap resampling;
    Efron & Tibshirani 1993, section 13.3): resampled problems, each difference's mean, the
    2.5% and 97.5% quantiles, derived here by explicit resampling (numpy's default_rng(0) in
    chunks of 250, as ``prmh.metrics`` draws). A PRM right on every problem another gets right
    and on 20 more of 200 is above it although their intervals overlap."""
    import numpy as np

    ids = [f"p{i}" for i in range(200)]
    base = {k: float(i % 2) for i, k in enumerate(ids)}  # 50%
    better = {k: 1.0 if i < 40 else v for i, (k, v) in enumerate(base.items())}  # 60%

    def side(label, values, width=0.07):
        m = sum(values.values()) / len(values)
        return Estimate(label, m, m - width, m + width, values)

    a, b = side("a", better), side("b", base)
    assert b.high > a.low  # the intervals overlap: "direction only" without the pairing
    assert compare(Estimate("a", a.mean, a.low, a.high), Estimate("b", b.mean, b.low, b.high)) == (
        "direction only"
    )
    d = np.array([better[k] - base[k] for k in ids])
    draws, means = np.random.default_rng(0), []
    for _ in range(8):
        p = draws.integers(0, len(d), size=(250, len(d)))
        draws.integers(0, 1, size=(250, 1))  # the seeds' draws, one seed
        means += list(d[p].mean(axis=1))
    low, high = np.quantile(means, [0.025, 0.975])
    got = difference(a, b)
    assert got["problems"] == 200 and got["mean"] == pytest.approx(0.1)
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-12) and low > 0
    assert compare(a, b) == "reproduced" and compare(b, a) == "reversed"
    assert compare(b, a, matches=True) == "not reproduced"
    assert compare(a, a, matches=True) == "reproduced" and compare(a, a) == "not reproduced"
    fewer = side("c", dict(list(better.items())[:150]))  # other problems: by the intervals
    assert difference(a, fewer) is None and compare(fewer, b) == "direction only"


def expected(comparison):
    """The rule again, written from the module's docstring."""
    better, worse, kind = comparison["better"], comparison["worse"], comparison["kind"]
    d = comparison["difference"]
    if d is not None:
        above, below, ahead = d["low"] > 0, d["high"] < 0, d["mean"] > 0
        assert d["mean"] == pytest.approx(better["mean"] - worse["mean"], abs=1e-5)
    else:
        above, below = better["low"] > worse["high"], better["high"] < worse["low"]
        ahead = better["mean"] > worse["mean"]
    if kind == "matches":  # no worse: reproduced unless the first lies below the second
        return "not reproduced" if below else "reproduced"
    if above:
        return "reproduced"
    if below:
        return "reversed"
    return "direction only" if ahead else "not reproduced"


@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_each_quick_reproduction_gives_a_verdict_from_its_numbers(cli, name):
    result = cli("reproduce", name, "--quick", "--json")
    if result.exit_code:
        skip_without_extra(result.output)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["name"] == name and out["size"] == "quick" and out["claim"]
    assert len(out["comparisons"]) >= 1
    for c in out["comparisons"]:
        for side in ("better", "worse"):
            assert c[side]["low"] <= c[side]["mean"] <= c[side]["high"]
        assert c["verdict"] == expected(c)
    assert out["verdict"] == min((c["verdict"] for c in out["comparisons"]), key=RANK.get)
    records = [json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")]
    (record,) = [r for r in records if r["config"].get("command") == "reproduce"]
    assert record["metrics"]["verdict"] == out["verdict"]
    shown = cli("show", record["run_id"]).output  # the table again (it printed Python dicts)
    assert f"verdict: {out['verdict']}" in shown and "{'" not in shown
    for c in out["comparisons"]:
        assert f"{c['better']['mean']:.3f} [{c['better']['low']:.3f}, " in shown


def test_an_unknown_reproduction_names_the_ones_there_are(cli):
    result = cli("reproduce", "tvd-code")
    assert result.exit_code == 2
    assert "no reproduction 'tvd-code'" in result.output and "unprm-votes" in result.output


def test_the_sim_prior_is_the_solvers_success_rate():
    """The oracle's ``sim_prior``, the question-level chance a sim sample is right, against the
    share of 200 samples per problem graded right (the IAS reproduction's calibrated prior)."""
    from prmh import SampleRequest, ScoreRequest
    from prmh.plugins.sim import success_probability
    from prmh.registry import load_registry

    registry = load_registry()
    task = registry.create("task", "arith", {}).instance
    generator = registry.create("generator", "sim", {}).instance
    oracle = registry.create("prm", "oracle", {"sim_prior": True}).instance
    gaps = []
    for problem in task.problems(20):
        (row,) = generator.sample([SampleRequest(problem, task.prompt(problem), 200, 0)])
        answers = [task.extract_answer(g.text) for g in row]
        rate = sum(a == problem.answer for a in answers) / len(answers)  # integer answers
        (prior,) = oracle.score([ScoreRequest(problem, ("",))])
        assert prior.probs[0] == pytest.approx(min(0.99, max(0.01, success_probability(problem))))
        gaps.append(abs(success_probability(problem) - rate))
    assert sum(gaps) / len(gaps) < 0.06 and max(gaps) < 0.15
