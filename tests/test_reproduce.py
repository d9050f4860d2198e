"""``prmh reproduce``: each available reproduction's quick size runs, prints its comparisons,
and its verdict follows from the numbers by the rule in ``prmh.reproduce``."""

from __future__ import annotations

import json

import pytest

from prmh.reproduce import REPRODUCTIONS, Estimate, compare, overall

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


def expected(better, worse, kind):
    """The rule again, written from the module's docstring."""
    if kind == "matches":  # no worse: reproduced unless the first lies below the second
        return "not reproduced" if better["high"] < worse["low"] else "reproduced"
    if better["low"] > worse["high"]:
        return "reproduced"
    if better["high"] < worse["low"]:
        return "reversed"
    return "direction only" if better["mean"] > worse["mean"] else "not reproduced"


@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_each_quick_reproduction_gives_a_verdict_from_its_numbers(cli, name):
    result = cli("reproduce", name, "--quick", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["name"] == name and out["size"] == "quick" and out["claim"]
    assert len(out["comparisons"]) >= 1
    for c in out["comparisons"]:
        for side in ("better", "worse"):
            assert c[side]["low"] <= c[side]["mean"] <= c[side]["high"]
        assert c["verdict"] == expected(c["better"], c["worse"], c["kind"])
    assert out["verdict"] == min((c["verdict"] for c in out["comparisons"]), key=RANK.get)
    records = [json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")]
    (record,) = [r for r in records if r["config"].get("command") == "reproduce"]
    assert record["metrics"]["verdict"] == out["verdict"]


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
