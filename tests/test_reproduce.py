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
    assert len(out["comparisons"]) >= 2
    for c in out["comparisons"]:
        for side in ("better", "worse"):
            assert c[side]["low"] <= c[side]["mean"] <= c[side]["high"]
        assert c["verdict"] == expected(c["better"], c["worse"], c["kind"])
    assert out["verdict"] == min((c["verdict"] for c in out["comparisons"]), key=RANK.get)
    records = [json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")]
    (record,) = [r for r in records if r["config"].get("command") == "reproduce"]
    assert record["metrics"]["verdict"] == out["verdict"]


def test_an_unknown_reproduction_names_the_ones_there_are(cli):
    result = cli("reproduce", "ias")
    assert result.exit_code == 2
    assert "no reproduction 'ias'" in result.output and "unprm-votes" in result.output
