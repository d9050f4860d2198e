"""Splitters, aggregators and selectors against hand-computed answers."""

from __future__ import annotations

import pytest
from prmh import Candidate, Generation, Solution, StepScores
from prmh.grading import get_grader


def test_splitters_round_trip(registry):
    text = "Step one.\n\n  Step two\nstill two.\n\n\n\nThe answer is 3.\n"
    expected = {
        "double-newline": ["Step one.", "Step two\nstill two.", "The answer is 3."],
        "newline": ["Step one.", "Step two", "still two.", "The answer is 3."],
        "whole": [text.strip()],
    }
    for name, steps in expected.items():
        splitter = registry.create("splitter", name).instance
        assert splitter.split(text) == steps, name
        assert splitter.split(splitter.join(steps)) == steps, name
        assert splitter.split("   \n\n ") == [], name


@pytest.mark.parametrize(
    "name,expected",
    [("mean", 0.5), ("min", 0.2), ("max", 0.9), ("last", 0.4), ("prod", 0.9 * 0.5 * 0.2 * 0.4)],
)
def test_aggregators(registry, name, expected):
    aggregate = registry.create("aggregator", name).instance
    assert aggregate(StepScores((0.9, 0.5, 0.2, 0.4))) == pytest.approx(expected)
    assert aggregate(StepScores(())) == 0.0


def candidates(*pairs):
    return [
        Candidate(Solution(Generation(a or "", True, 1), (), a), StepScores(()), s)
        for a, s in pairs
    ]


def test_argmax_takes_the_best_score_and_the_first_on_ties(registry):
    argmax = registry.create("selector", "argmax").instance
    key = get_grader("numeric").canonical
    assert argmax(candidates(("1", 0.2), ("2", 0.9), ("3", 0.5)), key) == 1
    assert argmax(candidates(("1", 0.7), ("2", 0.7)), key) == 0
    assert argmax([], key) is None


def test_majority_counts_equivalent_answers_together(registry):
    majority = registry.create("selector", "majority").instance
    key = get_grader("numeric").canonical
    # "2", "2.0" and "4/2" are one answer (3 votes) against "5" (2 votes).
    table = candidates(("5", 1), ("2", 0), ("5", 1), ("2.0", 0), ("4/2", 0), (None, 1))
    assert majority(table, key) == 1
    # A tie goes to the answer seen first.
    assert majority(candidates(("7", 0), ("8", 0), ("8", 0), ("7", 0)), key) == 0
    assert majority(candidates((None, 1)), key) is None
