"""tt_scale's backtracking searches: the rules on hand-made score sequences, checked against the
release's code, and runs batched across problems.

References: minhpham160603/tt_scale ``tt_scale/searcher/collective_backtrack.py`` at 27d9dbe
(``CollectiveBacktrack.run``) and ``tt_scale/searcher/independent_backtrack.py`` at 1c83541
(``IndependentBacktrack.run``); defaults from ``tt_scale/config.py`` at 27d9dbe (tau 0.6,
max_backtracks 3, max_total_branches 9, passing_minimum 3, keeping_branches 3, N 4,
temp_origin 0.7, temp_step 0.1, expansion_factor 2, max_branches 6, max_finished_branches 2).
"""

from __future__ import annotations

import json
import math

import pytest

from prmh import Candidate, Compute, Problem, StepScores
from prmh.plugins.backtrack import (
    Branch,
    Child,
    CollectiveBacktrack,
    IndependentBacktrack,
    State,
)
from prmh.types import Generation, Solution

PROBLEM = Problem("p", "q", "1")


def child(parent, score, text=None, finished=False, open_=True):
    return Child(parent, Branch(text or f"{parent.text}+{score}", score), finished, open_)


def test_collective_retries_widen_keep_fewer_parents_then_jump():
    """collective_backtrack.py: m = max(1, floor(9 / branches)), but 1 while retries == 1 (no
    always_expand); temperature 0.7 + 0.1 * retries (retries start at 1); too few passing
    children (score > tau) -> parents ranked by their children's summed scores, passing
    children protected, ceil(K - r/(R+1) K) parents kept, r += 1; r > R -> the next round
    accepts any score (> 0) and r returns to 1."""
    search, state = CollectiveBacktrack(), State(PROBLEM)
    root = state.active[0]
    assert search.expand(state, 9) == [(root, 1, pytest.approx(0.8))]
    search.judge(state, [child(root, 0.5)], 9)  # 0 passing: back to the root
    assert state.active[0].text == "" and state.retries == 2 and state.protected == []
    ((b, m, t),) = search.expand(state, 9)
    assert (m, t) == (9, pytest.approx(0.9))  # the retry samples all 9 at once, hotter
    search.judge(state, [child(b, s) for s in (0.7, 0.65, 0.2, 0.1)], 9)
    assert [p.score for p in state.protected] == [0.7, 0.65] and state.retries == 3
    ((b, m, t),) = search.expand(state, 9)
    search.judge(state, [child(b, 0.9), child(b, 0.3)], 9)  # 1 + 2 protected = 3 passing
    assert [a.score for a in state.active] == [0.9, 0.7, 0.65]
    assert state.retries == 1 and state.protected == []
    assert [m for _, m, _ in search.expand(state, 9)] == [1, 1, 1]
    # three failing rounds: K=3 parents ranked by children's sums, ceil(3 - r/4*3) kept
    kept = []
    for r in (1, 2, 3):
        work = search.expand(state, 9)
        children = [child(b, 0.1 * (i + 1)) for i, (b, _, _) in enumerate(work)]
        search.judge(state, children, 9)
        kept.append([b.score for b in state.active])
        assert len(state.active) == min(len(work), math.ceil(3 - r / 4 * 3))
    # the later a parent in the list, the better its child (0.1, 0.2, 0.3): each retry
    # reverses the order, then keeps the first ceil(3 - r/4 * 3)
    assert kept == [[0.65, 0.7, 0.9], [0.9, 0.7], [0.7]] and state.jumping
    assert state.active[0].children == 0.0
    work = search.expand(state, 9)
    assert state.threshold == 0.0 and state.retries == 1 and [m for _, m, _ in work] == [1]
    search.judge(state, [child(work[0][0], 0.01, finished=True)], 9)  # a jump takes anything
    assert len(state.finished) == 1


def test_collective_ranks_parents_by_their_childrens_scores_and_stops_at_n_finished():
    search, state = CollectiveBacktrack(finished=2), State(PROBLEM)
    a, b = Branch("a", 0.9), Branch("b", 0.8)
    state.active, state.retries = [a, b], 3  # kept: ceil(3 - 3/4 * 3) = 1
    search.expand(state, 9)  # this round's threshold: tau
    search.judge(state, [child(a, 0.1), child(a, 0.1), child(b, 0.5)], 9)
    assert [x.text for x in state.active] == ["b"]  # 0.5 > 0.2: b's children did better
    done = [child(b, 0.7, "x", finished=True), child(b, 0.65, "y", finished=True)]
    search.judge(state, [*done, child(b, 0.2, "z", finished=True)], 9)
    assert [x.text for x in state.finished] == ["x", "y"] and state.stopped  # 0.2 < tau


def test_independent_thresholds_copies_pruning_and_rescue():
    """independent_backtrack.py: one child per branch at 0.7 + 0.1 * retries; pass at
    score >= tau - 0.05 * retries; a failing branch with retries < R is retried as
    expansion_factor copies while fewer than max_branches go on (else one); past R it is
    rejected, and when nothing goes on the best rejected parent is rescued (retries + 1); more
    than max_branches are cut to the best by (score, -retries)."""
    search, state = IndependentBacktrack(), State(PROBLEM)
    root = state.active[0]
    assert search.expand(state, 6) == [(root, 1, pytest.approx(0.7))]
    search.judge(state, [child(root, 0.58)], 6)  # 0.58 < 0.6: two copies, retries 1
    assert [(b.text, b.retries) for b in state.active] == [("", 1), ("", 1)]
    assert [t for _, _, t in search.expand(state, 6)] == [pytest.approx(0.8)] * 2
    first, second = state.active
    search.judge(state, [child(first, 0.56), child(second, 0.5)], 6)  # 0.56 >= 0.55
    assert [(b.score, b.retries) for b in state.active] == [(0.56, 0), (0.0, 2), (0.0, 2)]
    state.active = [Branch("a", 0.4, retries=3), Branch("b", 0.3, retries=3)]
    search.judge(state, [child(state.active[0], 0.1), child(state.active[1], 0.2)], 6)
    assert [(b.text, b.retries) for b in state.active] == [("b", 4)]  # rescued: best child
    many = [Branch(str(i), 0.9, retries=0) for i in range(4)]
    state.active = many
    search.judge(state, [child(b, 0.1) for b in many], 6)  # 2 + 2 + 2 + 1 copies, cut to 6
    assert len(state.active) == 6 and {b.retries for b in state.active} == {1}
    search.judge(state, [child(state.active[0], 0.1, finished=True)], 6)
    state.finished.append(Branch("done"))
    search.judge(state, [], 6)
    assert state.stopped  # 2 finished branches (max_finished_branches)


class ScriptedContext:
    """A generator whose step k of sample i is ``k.i`` (the third step ends the solution)
    and a PRM that scores a step by a hash of its text: deterministic, and some steps fail."""

    def __init__(self):
        self.calls = []

    def extend(self, items, seed, stop):
        self.calls.append(items)
        out = []
        for problem, prefix, n, first, *_ in items:
            depth = prefix.count("\n\n")
            done = depth == 2
            out.append(
                [
                    Generation(
                        f"{problem.id}{depth}.{first + j}" + (" answer" if done else ""),
                        done,
                        3,
                        stop=None if done else "\n\n",
                    )
                    for j in range(n)
                ]
            )
        return out

    def read(self, g):
        return Solution(g, tuple(g.text.split("\n\n")), "1" if g.finished else None)

    def rank(self, items):
        cands = []
        for _, s in items:
            value = (sum(map(ord, s.steps[-1])) % 10) / 10
            cands.append(Candidate(s, StepScores((value,) * len(s.steps)), value))
        return cands, [Compute(prm_tokens=len(s.steps), prm_calls=1) for _ in items]


@pytest.mark.parametrize("search", [CollectiveBacktrack(), IndependentBacktrack()])
def test_one_generator_call_per_round_serves_every_problem_within_the_budget(search):
    ctx, budget = ScriptedContext(), 4
    problems = [Problem(f"p{i}", "q", "1") for i in range(5)]
    results = search.run(ctx, problems, budget, seed=0)
    assert len(ctx.calls) <= search.max_steps
    assert len({p.id for p, *_ in ctx.calls[0]}) == 5  # every problem in the first call
    for items in ctx.calls:
        for problem in problems:
            assert sum(n for p, _, n, *_ in items if p is problem) <= budget
        prefixes = [(p.id, prefix, first) for p, prefix, _, first, *_ in items]
        assert len(prefixes) == len(set(prefixes))  # retries draw new samples
    assert all(r.candidates and r.compute.generated_tokens > 0 for r in results)
    assert all(c.solution.finished for r in results for c in r.candidates)


def test_backtracking_runs_end_to_end_and_resumes(cli):
    args = ["eval", "--world", "sim", "--search", "backtrack", "--search",
            "backtrack-independent", "-n", "4", "--limit", "12", "--json"]  # fmt: skip
    first = cli(*args)
    assert first.exit_code == 0, first.output
    record = json.loads(first.output)
    (table,) = record["metrics"]["tables"]
    searches = {c["search"] for row in table["rows"] for c in row["cells"] if "search" in c}
    assert searches == {"backtrack", "backtrack-independent"}
    again = json.loads(cli(*args).output)
    assert sum(again["metrics"]["cache"]["computed"].values()) == 0
    assert again["metrics"]["tables"] == record["metrics"]["tables"]
