"""Properties that hold for any input (hypothesis, derandomised): splitters, aggregators,
selectors and the config parser never crash on what a model or a user writes, and keep their
invariants. Extraction and canonical forms are in tests/test_hostile_text.py."""

from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prmh import Candidate, Generation, Solution, StepScores
from prmh.errors import PrmhError
from prmh.matrix import load_config, parse_assignment, parse_value
from prmh.registry import load_registry

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)
REGISTRY = load_registry()
TEXT = st.lists(
    st.sampled_from([*"ab1 .\n\t:$\\{}", "Step 1:", "Step 2:", "\n\n", "ки"]),
    max_size=30,
).map("".join)
PROBS = st.lists(st.floats(0.0, 1.0), max_size=12)


@pytest.mark.parametrize("name", ["double-newline", "newline", "step-prefix", "whole"])
@SETTINGS
@given(text=TEXT)
def test_splitters_round_trip_and_keep_text(name, text):
    splitter = REGISTRY.create("splitter", name).instance
    steps = splitter.split(text)
    assert all(step.strip() for step in steps)  # no empty step
    assert splitter.split(splitter.join(steps)) == steps
    for step in steps:
        assert step.strip() in text


@SETTINGS
@given(probs=PROBS)
def test_aggregators_are_probabilities_in_order(probs):
    scores = StepScores(tuple(probs))
    values = {
        n: REGISTRY.create("aggregator", n).instance(scores)
        for n in ("mean", "min", "max", "last", "prod")
    }
    assert all(0.0 <= v <= 1.0 for v in values.values())
    if probs:
        assert values["min"] <= values["mean"] + 1e-12 <= values["max"] + 2e-12
        assert values["prod"] <= values["min"] + 1e-12 and values["last"] == probs[-1]
        reordered = StepScores(tuple(reversed(probs)))
        for n in ("mean", "min", "max", "prod"):
            assert REGISTRY.create("aggregator", n).instance(reordered) == pytest.approx(values[n])


CANDIDATES = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["1", "2", "0.5", "\\frac12", "x"])),
        st.floats(0.0, 1.0),
        st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
    ),
    max_size=8,
)
SELECTORS = ["argmax", "majority", "weighted-vote", "pqm-combine", "hybrid-vote", "frequency-vote"]


@pytest.mark.parametrize("name", SELECTORS)
@SETTINGS
@given(rows=CANDIDATES)
def test_selectors_pick_an_answered_candidate(name, rows):
    candidates = [
        Candidate(Solution(Generation(a or "", True, 1), ("s",) * len(p), a), StepScores(p), s)
        for a, s, p in rows
    ]
    chosen = REGISTRY.create("selector", name).instance(candidates, str.strip)
    if not rows:
        assert chosen is None
        return
    if name == "argmax":  # best-of-N may pick a solution with no answer
        assert chosen is not None and rows[chosen][1] == max(s for _, s, _ in rows)
        return
    if name == "hybrid-vote":  # majority, or best-of-N when no answer has the threshold
        assert (chosen is None) == all(a is None for a, _, _ in rows)
        return
    if all(a is None for a, _, _ in rows):
        assert chosen is None
        return
    assert chosen is not None and rows[chosen][0] is not None  # votes count answers only
    if name == "majority":
        counts = {a: sum(r[0] == a for r in rows) for a, _, _ in rows if a is not None}
        assert counts[rows[chosen][0]] == max(counts.values())


@SETTINGS
@given(text=st.text(max_size=40))
def test_option_values_parse_without_crashing(text):
    parse_value(text)
    try:
        key, _ = parse_assignment(text)
    except PrmhError:
        assert "=" not in text or not text.partition("=")[0].strip()
    else:
        assert key and "=" not in key


TOML_VALUES = st.recursive(
    st.one_of(
        st.integers(-5, 5),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.text(max_size=5),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=6,
)
KEYS = ["prm", "budget", "seed", "limit", "world", "results_dir", "prm_args", "agg", "colour"]


@SETTINGS
@given(config=st.dictionaries(st.sampled_from(KEYS), TOML_VALUES, max_size=4))
def test_a_config_is_read_or_refused_in_one_message(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("cfg") / "c.toml"
    lines = [f"{k} = {_toml(v)}" for k, v in config.items()]
    path.write_text("\n".join(lines) + "\n")
    try:
        tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError:
        return
    try:
        data = load_config(path)
    except PrmhError:
        return
    assert set(data) <= set(KEYS) - {"colour"}


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0.0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + "}"
