"""Splitters, aggregators and selectors against hand-computed answers."""

from __future__ import annotations

import math

import pytest

from prmh import Candidate, Generation, Solution, StepScores
from prmh.errors import PrmhError
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


def test_the_separator_splitter_ends_a_step_at_each_occurrence_of_its_string(registry):
    """Its string is literal (never a pattern), split and join round-trip like the others, and
    a blank one is refused with the way out."""
    cases = {
        ".": ("Ben has 3. He gives 1 away.Left: 2.", ["Ben has 3", "He gives 1 away", "Left: 2"]),
        " ки": ("a ки b ки c", ["a", "b", "c"]),
        "|": ("x|y||z", ["x", "y", "z"]),
        ".*": ("a.*b", ["a", "b"]),
    }
    for at, (text, steps) in cases.items():
        splitter = registry.create("splitter", "separator", {"at": at}).instance
        assert splitter.split(text) == steps, at
        assert splitter.split(splitter.join(steps)) == steps and splitter.separator == at
    for blank in ("", "  "):
        with pytest.raises(PrmhError, match="separator:at="):
            registry.create("splitter", "separator", {"at": blank})


@pytest.mark.parametrize(
    "name,expected",
    [("mean", 0.5), ("min", 0.2), ("max", 0.9), ("last", 0.4), ("prod", 0.9 * 0.5 * 0.2 * 0.4)],
)
def test_aggregators(registry, name, expected):
    """min, prod and last as huggingface/search-and-learn's ``aggregate_scores`` (at 6f81cac,
    src/sal/utils/score.py: ``min``, ``math.prod``, ``scores[-1]``); a solution without steps
    scores 0, the lowest (there ``min`` raises and the empty product is 1, the highest)."""
    aggregate = registry.create("aggregator", name).instance
    assert aggregate(StepScores((0.9, 0.5, 0.2, 0.4))) == pytest.approx(expected)
    assert aggregate(StepScores(())) == 0.0


@pytest.mark.parametrize("name", ["min", "max"])
def test_min_and_max_do_not_depend_on_where_a_nan_is(registry, name):
    import math

    aggregate = registry.create("aggregator", name).instance
    for probs in ((math.nan, 0.2, 0.9), (0.2, math.nan, 0.9), (0.2, 0.9, math.nan)):
        assert math.isnan(aggregate(StepScores(probs)))
    infinite = aggregate(StepScores((math.inf, 0.5, -math.inf)))  # their sum is nan: no nan
    assert infinite == (-math.inf if name == "min" else math.inf)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), float("inf")])
def test_a_prm_score_outside_zero_one_is_refused_with_the_prms_name(cli, monkeypatch, bad):
    from prmh.plugins.oracle import OraclePRM

    real = OraclePRM.score

    def broken(self, requests):
        out = real(self, requests)
        return [
            StepScores((bad, *o.probs[1:]), num_tokens=o.num_tokens) if o.probs else o for o in out
        ]

    monkeypatch.setattr(OraclePRM, "score", broken)
    result = cli("eval", "--limit", "3", "-n", "2")
    assert result.exit_code == 2 and "PRM 'oracle' returned" in result.output
    assert "probabilities in [0, 1]" in result.output and "Traceback" not in result.output


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
    nan = math.nan  # compared as the loop "take i when its score > the best's" does
    assert argmax(candidates(("1", 0.2), ("2", nan), ("3", 0.5)), key) == 2
    assert argmax(candidates(("1", nan), ("2", 0.9)), key) == 0


def test_majority_counts_equivalent_answers_together(registry):
    majority = registry.create("selector", "majority").instance
    key = get_grader("numeric").canonical
    # "2", "2.0" and "4/2" are one answer (3 votes) against "5" (2 votes).
    table = candidates(("5", 1), ("2", 0), ("5", 1), ("2.0", 0), ("4/2", 0), (None, 1))
    assert majority(table, key) == 1
    # A tie goes to the answer seen first.
    assert majority(candidates(("7", 0), ("8", 0), ("8", 0), ("7", 0)), key) == 0
    assert majority(candidates((None, 1)), key) is None


SOLUTION = (
    "Let me think.\nStep 1: Ava starts with 12 apples.\nStep 2: She gets 7 more,\nso 12 + 7 = 19."
    "\n\nStep 3: The answer is 19."
)


def test_step_prefix_and_fixed_tokens_round_trip(registry):
    prefix = registry.create("splitter", "step-prefix").instance
    steps = prefix.split(SOLUTION)
    assert steps == [
        "Let me think.",
        "Step 1: Ava starts with 12 apples.",
        "Step 2: She gets 7 more,\nso 12 + 7 = 19.",
        "Step 3: The answer is 19.",
    ]
    assert prefix.split(prefix.join(steps)) == steps
    fixed = registry.create("splitter", "fixed-tokens", {"size": 5}).instance
    chunks = fixed.split(SOLUTION)
    assert [len(c.split()) for c in chunks] == [5, 5, 5, 5, 5, 3]  # 28 words
    assert fixed.split(fixed.join(chunks)) == chunks
    with pytest.raises(PrmhError, match="size must be at least 1"):
        registry.create("splitter", "fixed-tokens", {"size": 0})


def _generation(pieces):
    """(token, probability) pairs as a Generation."""
    return Generation(
        "".join(t for t, _ in pieces),
        True,
        len(pieces),
        token_logprobs=tuple(math.log(p) for _, p in pieces),
        tokens=tuple(t for t, _ in pieces),
    )


def test_adaptive_confidence_splits_after_low_confidence_tokens(registry):
    splitter = registry.create("splitter", "adaptive-confidence", {"threshold": 0.3}).instance
    g = _generation(
        [
            ("So", 0.9),
            (" 3", 0.2),
            (" +", 0.95),
            (" 4", 0.9),
            (" =", 0.25),
            (" 7", 0.99),
            (".", 0.9),
        ]
    )
    steps = splitter.split_generation(g)
    assert steps == ["So 3", " + 4 =", " 7."]
    assert "".join(steps) == g.text == splitter.join(steps)
    assert (
        splitter.split_generation(_generation(list(zip(steps, [0.1, 0.1, 0.9], strict=True))))
        == steps
    )
    with pytest.raises(PrmhError, match="needs each generated token"):
        splitter.split_generation(Generation("x", True, 1))
    with pytest.raises(PrmhError, match="plain text has none"):
        splitter.split("So 3 + 4")


def test_adaptive_confidence_fits_the_lowest_quantile(registry):
    splitter = registry.create("splitter", "adaptive-confidence", {"quantile": 0.1}).instance
    probs = [0.05 * k for k in range(1, 20)]  # 19 tokens: 0.05 .. 0.95
    pool = [_generation([(f" t{i}", p) for i, p in enumerate(probs)])]
    assert splitter.fit(pool) == pytest.approx(0.10)  # the 10% quantile: index int(1.9) = 1
    assert len(splitter.split_generation(pool[0])) == 3  # ends after 0.05, after 0.10, the rest
    with pytest.raises(PrmhError, match="quantile must be in"):
        registry.create("splitter", "adaptive-confidence", {"quantile": 2})


def test_random_splitter_keeps_the_reference_count_and_moves_the_boundaries(registry):
    """AdaptiveStep's random baseline (methods.md section 6.2: the released evaluation data
    has a ``math_random_list`` beside the confidence and newline-split copies): as many steps as
    the reference splitter gives the solution, cut between whole tokens at random positions,
    the same for the same text and seed."""
    probs = [0.05 * k for k in range(1, 20)]
    pool = [_generation([(f" t{i}", p) for i, p in enumerate(probs)])]
    random_split = registry.create("splitter", "random", {"seed": 1}).instance
    adaptive = registry.create("splitter", "adaptive-confidence", {"quantile": 0.1}).instance
    random_split.reference.quantile = 0.1
    assert random_split.fit(pool) == adaptive.fit(pool)
    steps, reference = random_split.split_generation(pool[0]), adaptive.split_generation(pool[0])
    assert len(steps) == len(reference) == 3 and "".join(steps) == pool[0].text
    assert steps != reference  # same count, other places (for this seed)
    tokens = set(pool[0].tokens)
    assert all(set(s.replace(" t", "\0 t").split("\0")[1:]) <= tokens for s in steps)
    assert random_split.split_generation(pool[0]) == steps
    other = registry.create("splitter", "random", {"seed": 2}).instance
    other.reference.quantile = 0.1
    other.fit(pool)
    assert other.split_generation(pool[0]) != steps
    paragraphs = registry.create("splitter", "random", {"reference": "double-newline"}).instance
    text = "Ben has 3 apples.\n\nHe buys 4 more.\n\nThe answer is 7."
    words = paragraphs.split(text)
    assert len(words) == 3 and paragraphs.join(words) == text
    assert paragraphs.split(paragraphs.join(words)) == words
    with pytest.raises(PrmhError, match="reference must be one of"):
        registry.create("splitter", "random", {"reference": "random"})


def test_adaptive_confidence_survives_impossible_log_probabilities(registry):
    """A server's log-probability above 0 (710 overflows math.exp) or nan counts as certain."""
    splitter = registry.create("splitter", "adaptive-confidence", {"quantile": 0.2}).instance
    tokens, logprobs = ("a", " b", " c", " d"), (710.0, float("nan"), -3.0, 1e308)
    g = Generation("".join(tokens), True, 4, token_logprobs=logprobs, tokens=tokens)
    assert splitter.fit([g]) == pytest.approx(math.exp(-3.0))
    assert splitter.split_generation(g) == ["a b c", " d"]
