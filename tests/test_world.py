"""The bundled world: the arith task, the sim generator and the oracle PRM."""

from __future__ import annotations

import pytest

from prmh import Problem, SampleRequest, ScoreRequest
from prmh.errors import PrmhError
from prmh.plugins.arith import ArithTask, apply_all, generate
from prmh.plugins.oracle import OraclePRM
from prmh.plugins.sim import SimGenerator


@pytest.fixture(scope="module")
def problems():
    return ArithTask().problems(50)


def test_arith_is_deterministic_and_splits_are_disjoint():
    generate.cache_clear()
    first = ArithTask().problems(30)
    generate.cache_clear()
    assert ArithTask().problems(30) == first
    test = {p.question for p in ArithTask("test").problems()}
    train = {p.question for p in ArithTask("train").problems()}
    assert len(test) == 1000 and len(train) == 10000 and not test & train
    assert ArithTask(seed=1).problems(5) != ArithTask(seed=0).problems(5)


def test_arith_gold_steps_are_exact(problems):
    task = ArithTask()
    for p in problems:
        text = "\n\n".join(p.steps)
        assert task.extract_answer(text) == p.answer
        assert int(p.answer) == apply_all(p.metadata["start"], p.metadata["ops"])
        assert len(p.steps) == len(p.metadata["ops"]) + 2
        assert p.question in task.prompt(p)


def test_arith_options_are_checked():
    with pytest.raises(PrmhError, match="splits test, train"):
        ArithTask(split="dev")
    with pytest.raises(PrmhError, match="min_ops <= max_ops"):
        ArithTask(min_ops=4, max_ops=2)


def test_extract_answer_rules():
    task = ArithTask()
    assert task.extract_answer("a\n\nThe answer is 1,234.") == "1234"
    assert task.extract_answer("The answer is -7") == "-7"
    assert task.extract_answer("so 3 + 4 = 7 apples.") is None


def test_sim_without_mistakes_writes_the_gold_solution(problems):
    sim = SimGenerator(slip_rate=0, trap_rate=0, truncate_rate=0)
    out = sim.sample([SampleRequest(p, "", 2, seed=0) for p in problems])
    for p, samples in zip(problems, out, strict=True):
        assert all(g.text == "\n\n".join(p.steps) and g.finished for g in samples)
        assert samples[0].num_tokens > 10


def test_sim_samples_depend_only_on_their_index(problems):
    sim = SimGenerator()
    whole = sim.sample([SampleRequest(problems[0], "", 8, seed=3)])[0]
    tail = sim.sample([SampleRequest(problems[0], "", 3, seed=3, first_index=5)])[0]
    assert [g.text for g in whole[5:]] == [g.text for g in tail]
    other = sim.sample([SampleRequest(problems[0], "", 8, seed=4)])[0]
    assert [g.text for g in other] != [g.text for g in whole]


def test_sim_traps_agree_on_one_wrong_answer(problems):
    """With traps only, every wrong sample of a problem gives the same wrong answer."""
    sim, task = SimGenerator(slip_rate=0, trap_rate=1, truncate_rate=0), ArithTask()
    wrong_answers_seen = 0
    for p in problems:
        answers = {
            task.extract_answer(g.text) for g in sim.sample([SampleRequest(p, "", 16, 0)])[0]
        }
        wrong = answers - {p.answer}
        assert len(wrong) <= 1
        wrong_answers_seen += len(wrong)
    assert wrong_answers_seen > 10


def test_sim_refuses_problems_it_cannot_solve():
    with pytest.raises(PrmhError, match="arith and code problems only"):
        SimGenerator().sample([SampleRequest(Problem("x", "What is 2+2?", "4"), "", 1, 0)])


def test_oracle_flags_the_first_wrong_step_and_everything_after(problems):
    p = problems[0]
    steps = list(p.steps)
    steps[2] = steps[2].replace("=", "= 1000 +")  # a wrong result at step 3
    scores = OraclePRM(confidence=0.9).score([ScoreRequest(p, tuple(steps))])[0].probs
    assert scores[:2] == pytest.approx((0.9, 0.9))
    assert scores[2:] == pytest.approx((0.1,) * (len(steps) - 2))
    gold = OraclePRM(confidence=0.9).score([ScoreRequest(p, p.steps)])[0].probs
    assert gold == pytest.approx((0.9,) * len(p.steps))


def test_oracle_catches_a_wrong_operation_with_right_arithmetic(problems):
    p = next(p for p in problems if p.metadata["ops"][0][0] == "+")
    a, b = p.metadata["start"], p.metadata["ops"][0][1]
    steps = (p.steps[0], f"Getting {b} more gives {a} - {b} = {a - b} {p.metadata['item']}.")
    assert OraclePRM().score([ScoreRequest(p, steps)])[0].probs[1] < 0.5


def test_noisy_oracle_scores_a_prefix_as_the_full_pass_does(problems):
    prm = OraclePRM(noise=2.0, bias=0.5, temperature=1.5, seed=7)
    p = problems[1]
    full = prm.score([ScoreRequest(p, p.steps)])[0].probs
    for k in range(1, len(p.steps) + 1):
        alone = prm.score([ScoreRequest(p, p.steps[:k])])[0].probs
        assert alone[-1] == pytest.approx(full[k - 1], abs=1e-12)
    assert len(set(full)) > 1  # the noise is real
    assert all(0.0 <= x <= 1.0 for x in full)


def test_oracle_miscalibration_moves_scores_the_documented_way(problems):
    p = problems[0]
    base = OraclePRM(confidence=0.8).score([ScoreRequest(p, p.steps)])[0].probs[0]
    over = OraclePRM(confidence=0.8, bias=1.0).score([ScoreRequest(p, p.steps)])[0].probs[0]
    flat = OraclePRM(confidence=0.8, temperature=4).score([ScoreRequest(p, p.steps)])[0].probs[0]
    assert base == pytest.approx(0.8) and over > base and 0.5 < flat < base
