"""Grading in worker processes: verdicts, hard timeouts, crashed workers."""

from __future__ import annotations

import time

import pytest

from prmh.errors import PrmhError
from prmh.grading import get_grader, grade_many, grade_numeric, parse_number


@pytest.mark.parametrize(
    "prediction,gold,expected",
    [
        ("42", "42", True),
        ("42.0", "42", True),
        ("1,000", "1000", True),
        ("-7", "-7", True),
        ("3/4", "0.75", True),
        ("$12$", "12", True),
        ("41", "42", False),
        ("42", "-42", False),
        ("forty-two", "42", False),
        ("9^9^9^9", "1", False),
        ("__import__('os').system('true')", "0", False),
        ("1" * 100_000, "1", False),
        ("1e400", "1", False),
    ],
)
def test_numeric_grader(prediction, gold, expected):
    assert grade_numeric(prediction, gold) is expected


def test_parse_number_never_evaluates():
    assert parse_number("2+2") is None
    assert parse_number("10**100") is None
    assert parse_number("12.") == 12


def test_grade_many_keeps_order(tmp_path):
    items = [("numeric", str(i), str(i if i % 3 else i + 1)) for i in range(200)]
    verdicts = grade_many(items, workers=2, chunk_size=16)
    assert [v.correct for v in verdicts] == [i % 3 != 0 for i in range(200)]


def test_a_hanging_answer_is_killed_and_the_rest_are_graded():
    items = [("grading_helpers:hang_on_loop", a, "1") for a in ["1", "loop", "1", "2", "1"]]
    started = time.monotonic()
    verdicts = grade_many(items, timeout=1.0, workers=1, chunk_size=8)
    assert time.monotonic() - started < 15
    assert [v.correct for v in verdicts] == [True, False, True, False, True]
    assert [v.timed_out for v in verdicts] == [False, True, False, False, False]


def test_a_crashing_grader_is_contained():
    items = [("grading_helpers:die_on_crash", a, "1") for a in ["1", "crash", "1"]]
    verdicts = grade_many(items, timeout=5.0, workers=1)
    assert [v.correct for v in verdicts] == [True, False, True]
    assert verdicts[1].error == "grader process died"


def test_unknown_grader():
    with pytest.raises(PrmhError, match=r"unknown grader 'nope'.*numeric"):
        get_grader("nope")
    with pytest.raises(PrmhError, match="could not be imported"):
        grade_many([("no_module_here:f", "1", "1")])
