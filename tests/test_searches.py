"""Search strategies, IAS budgets, the whole-solution aggregator and vote selectors."""

from __future__ import annotations

import gc
import json
import math
import weakref

import pytest

from prmh import Candidate, Generation, Solution, StepScores
from prmh.engine import CacheStats, SearchContext, Workspace
from prmh.grading import get_grader
from prmh.plugins.ias import ias_of_k, ias_of_m, n_ias
from prmh.store import Store

KEY = get_grader("numeric").canonical


# ---------------------------------------------------------------- IAS arithmetic


def test_n_ias_by_hand():
    assert n_ias(0.5) == 7  # ceil(log 0.01 / log 0.5) = ceil(6.64)
    assert n_ias(0.1) == 44  # ceil(4.605 / 0.1054) = ceil(43.7)
    assert n_ias(0.9) == 2
    assert n_ias(0.5, confidence=0.9) == 4  # ceil(log 0.1 / log 0.5) = ceil(3.32)
    assert n_ias(0.5, d=4) == 2  # ceil(6.64 / 4)
    # p is clipped to [1e-4, 1 - 1e-4]
    assert n_ias(0.0) == n_ias(1e-4) == math.ceil(math.log(0.01) / math.log(1 - 1e-4))
    assert n_ias(1.0) == 1 and n_ias(-3) == n_ias(0.0)


def test_ias_of_k_and_m_by_hand():
    # The best beam alone needs 2 samples <= 1 x 4: keep 1.
    assert ias_of_k([0.1, 0.9, 0.5], m_max=4, k_max=4, confidence=0.99) == 1
    # Each beam needs 13 (p=0.3); 2, 4, 6 children never cover it: keep k_max.
    assert ias_of_k([0.3] * 4, m_max=2, k_max=4, confidence=0.99) == 4
    # k=1: 4 < N_IAS(0.5) = 7; k=2: 8 >= N_IAS(0.45) = ceil(7.7) = 8.
    assert ias_of_k([0.1, 0.5, 0.45], m_max=4, k_max=4, confidence=0.99) == 2
    # ... but with the runner-up at 0.2 (N_IAS = 21), k=2 is not enough either.
    assert ias_of_k([0.2, 0.5, 0.1], m_max=4, k_max=4, confidence=0.99) == 3
    assert ias_of_k([0.01], m_max=4, k_max=4, confidence=0.99) == 1  # fewer beams than k_max
    # Weakest kept 0.2: ceil(4.605 / (4 x 0.2231)) = 6 children, under m_max = 8.
    assert ias_of_m([0.5, 0.2], k_max=4, m_max=8, confidence=0.99) == 6
    assert ias_of_m([0.01], k_max=4, m_max=8, confidence=0.99) == 8  # capped


# ---------------------------------------------------------------- a context on the bundled world


@pytest.fixture
def world(registry, tmp_path):
    def make(prm_args=None, agg="mean", limit=12, pool=16):
        task = registry.create("task", "arith")
        workspace = Workspace(
            task,
            registry.create("generator", "sim"),
            Store(tmp_path),
            "test",
            CacheStats(),
            lambda *a: None,
        )
        ctx = SearchContext(
            workspace,
            registry.create("prm", "oracle", prm_args or {"noise": 2.0}),
            registry.create("splitter", "double-newline"),
            registry.create("aggregator", agg).instance,
            pool,
        )
        return ctx, task.instance.problems(limit)

    return make


class Counting:
    """Wraps a context to record how many continuations each problem asks for per call."""

    def __init__(self, ctx):
        self.ctx, self.calls = ctx, []

    def extend(self, items, seed, stop):
        per_problem = {}
        for problem, _, n, _ in items:
            per_problem[problem.id] = per_problem.get(problem.id, 0) + n
        self.calls.append(per_problem)
        return self.ctx.extend(items, seed, stop)

    def __getattr__(self, name):
        return getattr(self.ctx, name)


@pytest.mark.parametrize("search", ["beam", "dvts", "beam-ias", "beam-ias:freq=1,ias_m=true"])
@pytest.mark.parametrize("budget", [1, 4, 16])
def test_step_searches_respect_the_budget_and_return_only_finished_solutions(
    registry, world, search, budget
):
    name, _, options = search.partition(":")
    args = dict(o.split("=") for o in options.split(",") if o)
    args = {k: (v == "true" if v in ("true", "false") else int(v)) for k, v in args.items()}
    ctx, problems = world({"noise": 2.0, "quantiles": True, "spread": 1.5})
    counting = Counting(ctx)
    results = registry.create("search", name, args).instance.run(counting, problems, budget, 0)
    assert [r.problem_id for r in results] == [p.id for p in problems]
    for call in counting.calls:
        assert all(n <= budget for n in call.values())
    for problem, result in zip(problems, results, strict=True):
        assert 0 < len(result.candidates) <= budget
        for c in result.candidates:
            assert c.solution.finished and c.solution.answer is not None
            # No beam from another problem: the first step names this problem's start.
            assert c.solution.steps[0].startswith(
                f"{problem.metadata['name']} starts with {problem.metadata['start']} "
            )
        assert result.compute.generated_tokens > 0 and result.compute.prm_calls > 0


@pytest.mark.parametrize("search", ["beam", "dvts", "beam-ias"])
def test_a_step_search_lets_each_rounds_partial_solutions_go(registry, world, search):
    """Drafts a round read and did not keep are freed with the round: the workspace kept
    every one, with its token and log-probability tuples, until the table ended (2.8 GB at
    N=256 on 100 sim problems), and the first round's as if another cell could rank the same
    objects first (only pools are). What stays: the finished candidates."""
    ctx, problems = world({"noise": 2.0})
    read, drafts = ctx.read, []

    def reading(generation):
        solution = read(generation)
        drafts.append(weakref.ref(solution))
        return solution

    ctx.read = reading
    results = registry.create("search", search).instance.run(ctx, problems, 16, 0)
    gc.collect()
    alive = sum(d() is not None for d in drafts)
    kept = sum(len(r.candidates) for r in results)
    assert len(drafts) > 2 * kept  # several rounds were read
    assert alive <= kept


def test_uncalibrated_beam_ias_is_beam_search(registry, world):
    ctx, problems = world({"noise": 2.0})
    for freq in (1, 3):
        beam = registry.create("search", "beam", {"width": 4, "freq": freq}).instance
        ias = registry.create("search", "beam-ias", {"width": 4, "freq": freq}).instance
        assert beam.run(ctx, problems, 8, 0) == ias.run(ctx, problems, 8, 0)


def test_beam_ias_uses_quantiles_to_spend_less(registry, world):
    ctx, problems = world({"noise": 1.0, "quantiles": True, "spread": 0.5}, limit=20)
    beam = registry.create("search", "beam", {"width": 4}).instance.run(ctx, problems, 16, 0)
    ias = registry.create("search", "beam-ias", {"width": 4, "freq": 1}).instance.run(
        ctx, problems, 16, 0
    )
    spent = lambda results: sum(r.compute.generated_tokens for r in results)  # noqa: E731
    assert spent(ias) < spent(beam)


def test_bon_ias_budgets_follow_the_formula(registry, world):
    bon_ias = registry.create("search", "bon-ias").instance
    for prior, budget, expected in [(0.5, 16, 7), (0.5, 4, 4), (0.9, 16, 2), (1e-6, 64, 64)]:
        ctx, problems = world({"prior": prior}, limit=3)
        sizes, _ = bon_ias.budgets(ctx, problems, budget)
        assert sizes == [expected] * 3
        results = bon_ias.run(ctx, problems, budget, 0)
        assert all(len(r.candidates) <= expected for r in results)


def test_greedy_is_deterministic_and_ignores_the_budget(registry, world):
    ctx, problems = world()
    greedy = registry.create("search", "greedy").instance
    one, many = greedy.run(ctx, problems, 1, 0), greedy.run(ctx, problems, 16, 3)
    texts = lambda results: [[c.solution.text for c in r.candidates] for r in results]  # noqa: E731
    assert texts(one) == texts(many)
    assert all(len(r.candidates) <= 1 for r in one)


def test_whole_scores_the_solution_as_one_step(registry, world):
    ctx, problems = world({"noise": 0.0}, agg="whole", limit=4)
    (result, *_) = registry.create("search", "best-of-n").instance.run(ctx, problems, 2, 0)
    solution = result.candidates[0].solution
    (alone,) = ctx.score_steps([(problems[0], (solution.text,))])
    assert result.candidates[0].score == alone.probs[0]
    assert result.compute.prm_calls == 4  # 2 solutions, each scored by steps and whole
    assert len(result.candidates[0].scores.probs) == len(solution.steps)


def test_best_of_n_subsets_average_over_random_subsets(cli):
    args = [
        "eval",
        "--json",
        "--prm",
        "oracle:noise=3",
        "--agg",
        "mean",
        "--limit",
        "40",
        "-n",
        "4",
        "--pool",
        "16",
        "--search",
        "best-of-n",
        "--search",
        "best-of-n:subsets=20",
    ]
    tables = json.loads(cli(*args).output)["metrics"]["tables"][0]
    (row,) = [r for r in tables["rows"] if r["kind"] == "prm"]
    first_n, subsets = row["cells"]
    assert subsets["search"] == "best-of-n:subsets=20"
    assert first_n["mean"] != subsets["mean"]
    assert subsets["compute"]["prm_calls"] == 4
    again = json.loads(cli(*args).output)["metrics"]["tables"][0]
    assert again["rows"] == tables["rows"]


# ---------------------------------------------------------------- selectors


def cands(*rows):
    """(answer, solution score, step probabilities) rows as candidates."""
    return [
        Candidate(Solution(Generation(a or "", True, 1), ("s",) * len(p), a), StepScores(p), score)
        for a, score, p in rows
    ]


def select(registry, name, table, **options):
    return registry.create("selector", name, options).instance(table, KEY)


def test_weighted_vote_and_pqm_combine(registry):
    table = cands(
        ("1", 0.9, (0.9, 0.2)),
        ("2", 0.5, (0.6, 0.5)),
        ("2", 0.5, (0.5, 0.5)),
        ("1", 0.05, (0.9, 0.9)),
    )
    # weighted: answer 1 -> 0.95, answer 2 -> 1.0; its best candidate (first on ties) is #1
    assert select(registry, "weighted-vote", table) == 1
    # pqm: answer 1 -> min 0.2 + 0.9 = 1.1, answer 2 -> 0.5 + 0.5 = 1.0; best of 1 is #0
    assert select(registry, "pqm-combine", table) == 0
    # 0.5 and 1/2 vote together
    halves = cands(("0.5", 0.3, (0.3,)), ("3", 0.5, (0.5,)), ("1/2", 0.3, (0.3,)))
    assert select(registry, "weighted-vote", halves) in (0, 2)
    # ties between answers go to the answer seen first
    assert select(registry, "weighted-vote", cands(("7", 0.4, (1,)), ("8", 0.4, (1,)))) == 0


def test_selectors_pick_as_search_and_learn_does(registry):
    """huggingface/search-and-learn at 6f81cac, src/sal/utils/math.py: ``compute_naive_pred``
    takes the first of the highest scores (a stable sort, descending), ``find_majority_answer``
    the first of the most frequent answers, ``find_answer_with_largest_sum`` the answer whose
    scores sum highest (the first seen on ties); src/sal/utils/score.py scores a solution by
    its last step. Derived here over random tables with tied scores and counts; every
    candidate has an answer (sal votes a missing one as the answer "", prmh leaves it out)."""
    import random

    rng = random.Random(3)
    for _ in range(300):
        answers = [rng.choice("1234") for _ in range(rng.randint(1, 8))]
        scores = [rng.choice((0.1, 0.25, 0.5, 0.75)) for _ in answers]
        table = cands(*((a, s, (0.9, s)) for a, s in zip(answers, scores, strict=True)))
        naive = sorted(zip(answers, scores, strict=True), key=lambda x: x[1], reverse=True)[0][0]
        counts = {a: answers.count(a) for a in dict.fromkeys(answers)}
        frequent = next(a for a, c in counts.items() if c == max(counts.values()))
        sums = {a: 0.0 for a in dict.fromkeys(answers)}
        for a, s in zip(answers, scores, strict=True):
            sums[a] += s
        heaviest = max(sums, key=sums.get)
        for name, expected in (
            ("argmax", naive),
            ("majority", frequent),
            ("weighted-vote", heaviest),
        ):
            assert answers[select(registry, name, table)] == expected, (name, answers, scores)


def test_hybrid_and_frequency_votes(registry):
    confident = cands(("1", 0.1, (1,)), ("1", 0.1, (1,)), ("1", 0.1, (1,)), ("2", 0.9, (1,)))
    assert select(registry, "hybrid-vote", confident) == 0  # 3/4 >= 0.5: majority
    split = cands(("1", 0.1, (1,)), ("2", 0.2, (1,)), ("3", 0.9, (1,)), ("1", 0.1, (1,)))
    assert select(registry, "hybrid-vote", split, threshold=0.6) == 2  # 2/4 < 0.6: PRM
    assert select(registry, "hybrid-vote", split, threshold=0.5) == 0
    # frequency-vote: 1 -> (3/4)^a x 0.1, 2 -> (1/4)^a x 0.9
    assert select(registry, "frequency-vote", confident, alpha=0.5) == 3  # 0.087 < 0.45
    assert select(registry, "frequency-vote", confident, alpha=3.0) == 0  # 0.042 > 0.014
    assert select(registry, "frequency-vote", cands((None, 1, (1,)))) is None


# ---------------------------------------------------------------- the table users run


def test_the_issue_command_runs_on_the_bundled_world(cli):
    result = cli(
        "eval",
        "--json",
        "--search",
        "best-of-n",
        "--search",
        "beam",
        "--search",
        "dvts",
        "--search",
        "beam-ias",
        "--agg",
        "mean",
        "--agg",
        "min",
        "--agg",
        "last",
        "-n",
        "4",
        "-n",
        "16",
        "--prm",
        "oracle:noise=3,quantiles=true",
        "--limit",
        "30",
    )
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["metrics"]["tables"]
    rows = [r for r in table["rows"] if r["kind"] == "prm"]
    assert len(rows) == 3 and all(len(r["cells"]) == 8 for r in rows)
    for cell in (c for r in rows for c in r["cells"]):
        assert cell["low"] <= cell["mean"] <= cell["high"]
        assert cell["compute"]["generated_tokens"] > 0 and cell["compute"]["prm_calls"] > 0


def test_ias_searches_without_quantiles_say_so_in_the_table_and_record(cli):
    """beam-ias and bon-ias on a PRM without quantiles cannot decide on a calibrated lower
    quantile; the table and the record say it, with the way out."""
    args = ["eval", "--search", "beam-ias", "--search", "bon-ias", "-n", "4", "--limit", "5"]
    result = cli(*args, "--prm", "oracle", "--json")
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["metrics"]["tables"]
    assert [w.split(":")[0] for w in table["warnings"]] == [
        "beam-ias with oracle",
        "bon-ias with oracle",
    ]
    assert "--search beam" in table["warnings"][0] and "prmh calibrate" in table["warnings"][1]
    shown = cli(*args, "--prm", "oracle")
    assert "warning: beam-ias with oracle: the PRM gives no quantiles" in shown.output
    calibrated = cli(*args, "--prm", "oracle:quantiles=true", "--json")
    (table,) = json.loads(calibrated.output)["metrics"]["tables"]
    assert table["warnings"] == []


def test_a_search_ending_steps_elsewhere_than_the_splitter_says_so(cli):
    """beam with separator='.' over a newline splitter: the PRM would read steps the search
    did not make; the table warns with the way out. A splitter ending steps at '.' (with or
    without the option) is coherent: no warning."""
    args = ["eval", "--search", "beam:separator=.", "-n", "2", "--limit", "3", "--json"]
    result = cli(*args, "--splitter", "newline")
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["metrics"]["tables"]
    warning = table["warnings"][0]  # one per PRM
    assert warning.startswith("beam:separator=. with oracle: steps end at '.' in the search")
    assert "at '\\n' in the splitter" in warning and "separator:at=" in warning
    for search in ("beam:separator=.", "beam"):
        args[2] = search
        fine = cli(*args, "--splitter", "separator:at=.")
        assert fine.exit_code == 0, fine.output
        assert json.loads(fine.output)["metrics"]["tables"][0]["warnings"] == []


def test_a_budget_that_is_not_a_multiple_of_the_width_says_what_it_spends(cli):
    """The releases take N as a multiple of the width (search-and-learn refuses other N for
    DVTS: huggingface/search-and-learn src/sal/config.py at 6f81cac; the calibrated release's
    K_max = N/M_max). prmh keeps N // M beams of M children, so N=6 at width 4 samples 4 a
    round after the first: the table says so. N=2 (below the width: M=N) and N=4 do not warn."""
    args = [
        "eval",
        "--search",
        "beam",
        "--search",
        "dvts",
        "--prm",
        "oracle",
        "--limit",
        "3",
        "--json",
    ]
    result = cli(*args, "-n", "6", "-n", "4", "-n", "2")
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["metrics"]["tables"]
    spent = "N=6 is not a multiple of the width 4: after the first step at most 1 beam(s) of 4"
    assert sorted(w.split(":")[0] for w in table["warnings"]) == [
        "beam with oracle",
        "dvts with oracle",
    ]
    assert all(spent in w and "4 samples a round" in w for w in table["warnings"])
    fine = cli(*args, "-n", "4", "-n", "2")
    assert json.loads(fine.output)["metrics"]["tables"][0]["warnings"] == []


# ------------------------------------------------- every budget of a cell in one call


def test_best_of_n_reads_each_budget_as_a_prefix_of_one_ranked_pool(registry, world):
    """Best-of-N at budget n is the first n samples of the pool, each scored on its own and
    aggregated (the definition every release uses, e.g. search-and-learn's best_of_n): derived
    here from the context's pool and scores, budget by budget, against one ``run_budgets``."""
    ctx, problems = world()
    counting = Counting(ctx)
    ranked = []
    counting.rank_pools = lambda problems, pools: (
        ranked.append(sum(map(len, pools))) or ctx.rank_pools(problems, pools)
    )
    budgets = [1, 4, 16]
    per_budget = registry.create("search", "best-of-n").instance.run_budgets(
        counting, problems, budgets, 0
    )
    assert ranked == [len(problems) * 16]  # the largest pool, ranked once
    for n, results in zip(budgets, per_budget, strict=True):
        pools = ctx.pool(problems, n, 0)
        for pool, scores, result in zip(pools, ctx.score(problems, pools), results, strict=True):
            expected = [
                (s.text, ctx.aggregate(x)) for s, x in zip(pool, scores, strict=True) if s.finished
            ]
            assert [(c.solution.text, c.score) for c in result.candidates] == expected
            assert result.compute.generated_tokens == sum(s.num_tokens for s in pool)
            assert result.compute.prm_tokens == sum(x.num_tokens for x in scores)
            assert result.compute.prm_calls == n
            seconds = [s.generation.seconds + x.seconds for s, x in zip(pool, scores, strict=True)]
            assert result.compute.wall_seconds == pytest.approx(sum(seconds))


def test_the_aggregators_of_one_pool_share_its_costs_not_its_scores(registry, world):
    """The cells of a table that rank one pool (one per aggregator) get the same cost lists
    from ``rank_pools`` (docs/plugins.md), so best-of-N adds them up once; each cell's
    candidates still carry its own aggregator's scores, derived here from the pool's scores."""
    ctx, problems = world(agg="mean")
    aggregate = registry.create("aggregator", "min").instance
    other = SearchContext(ctx.workspace, ctx.prm, ctx.splitter, aggregate, 16)
    pools = ctx.pool(problems, 16, 0)
    first, second = ctx.rank_pools(problems, pools), other.rank_pools(problems, pools)
    assert all(a[1] is b[1] for a, b in zip(first, second, strict=True))
    search = registry.create("search", "best-of-n").instance
    budgets = [2, 8]
    by_mean = search.run_budgets(ctx, problems, budgets, 0)
    by_min = search.run_budgets(other, problems, budgets, 0)
    for n, mean_cell, min_cell in zip(budgets, by_mean, by_min, strict=True):
        pools = ctx.pool(problems, n, 0)
        scores = ctx.score(problems, pools)
        for pool, xs, a, b in zip(pools, scores, mean_cell, min_cell, strict=True):
            finished = [x for s, x in zip(pool, xs, strict=True) if s.finished]
            assert [c.score for c in a.candidates] == [ctx.aggregate(x) for x in finished]
            assert [c.score for c in b.candidates] == [aggregate(x) for x in finished]
            assert a.compute == b.compute and a.compute.prm_calls == n


def test_prefix_totals_are_the_totals_of_each_prefix():
    """One pass gives what ``Compute.total`` of each prefix gives, bit for bit (the same
    additions in the same order), for sizes inside, at and past the end, and zero."""
    import random

    from prmh.plugins.searches import prefix_totals
    from prmh.types import Compute

    rng = random.Random(3)
    costs = [Compute(rng.randrange(99), rng.randrange(99), 1, rng.random()) for _ in range(16)]
    sizes = {0, 1, 2, 5, 16, 40}
    assert prefix_totals(costs, sizes) == {n: Compute.total(costs[:n]) for n in sizes}
    assert prefix_totals([], {3}) == {3: Compute()}


def test_bon_ias_and_greedy_answer_every_budget_at_once(registry, world):
    ctx, problems = world({"prior": 0.5}, limit=3)
    bon_ias = registry.create("search", "bon-ias").instance
    four, sixteen = bon_ias.run_budgets(ctx, problems, [4, 16], 0)
    for small, large in zip(four, sixteen, strict=True):  # N_IAS(0.5) = 7, capped at 4
        assert len(small.candidates) <= 4 and len(large.candidates) <= 7
        assert small.candidates == large.candidates[: len(small.candidates)]
    greedy = registry.create("search", "greedy").instance
    one, many = greedy.run_budgets(ctx, problems, [1, 16], 0)
    assert one == many == greedy.run(ctx, problems, 8, 0)


def test_the_engine_asks_a_search_for_every_budget_at_once_when_it_can(registry, tmp_path):
    """A plugin search with ``run_budgets`` is called once per cell for all budgets; one
    without it once per budget; the tables agree."""
    from prmh.engine import open_run, prepare, run_eval
    from prmh.matrix import build_plan
    from prmh.plugins.searches import BestOfN
    from prmh.registry import Entry

    calls = []

    class PerBudget:
        def run(self, ctx, problems, budget, seed):
            calls.append(("run", budget))
            return BestOfN().run(ctx, problems, budget, seed)

    class AllBudgets(PerBudget):
        def run_budgets(self, ctx, problems, budgets, seed):
            calls.append(("run_budgets", tuple(budgets)))
            return BestOfN().run_budgets(ctx, problems, budgets, seed)

    for name, factory in (("per-budget", PerBudget), ("all-budgets", AllBudgets)):
        registry.entries["search"][name] = Entry("search", name, factory, "test")
    options = {"world": "sim", "search": ["per-budget", "all-budgets"], "budget": [1, 4]}
    prepared = prepare(build_plan({}, {**options, "prm": ["oracle"], "limit": 5}), registry)
    with open_run(prepared.resolved_config(), tmp_path, ["test"], None) as run:
        run.metrics = run_eval(prepared, run)
    assert calls == [("run", 1), ("run", 4), ("run_budgets", (1, 4))] * 3  # per aggregator
    (table,) = run.metrics["tables"]
    for row in table["rows"][2:]:
        per, at_once = row["cells"][:2], row["cells"][2:]
        strip = lambda c: {k: v for k, v in c.items() if k != "search"}  # noqa: E731
        assert [strip(c) for c in per] == [strip(c) for c in at_once]


def test_a_prm_that_reuses_prefixes_is_charged_for_the_new_step_only(registry, world):
    """After steps 1..k-1 were ranked in a search, ranking steps 1..k with a PRM that keeps
    KV caches costs its ``tail_tokens``; without that capability, or the first time, the
    whole solution's ``num_tokens``."""
    from dataclasses import replace

    from prmh.types import Generation

    class Reusing:
        def __init__(self, prm, reuses):
            self.prm, self.reuses_prefixes = prm, reuses

        def score(self, requests):
            return [replace(x, tail_tokens=3) for x in self.prm.score(requests)]

    steps = ("Ben starts with 3 apples.", "Giving 1 away leaves 2.", "The answer is 2.")
    for reuses in (True, False):
        ctx, problems = world()
        ctx = replace(ctx, prm=replace(ctx.prm, instance=Reusing(ctx.prm.instance, reuses)))
        solutions = [ctx.read(Generation("\n\n".join(steps[:k]), k == 3, 5)) for k in (1, 2, 3)]
        costs = [ctx.rank([(problems[0], s)])[1][0].prm_tokens for s in solutions]
        (other,) = ctx.rank([(problems[1], solutions[1])])[1]  # its first step never ranked
        alone = [x.num_tokens for x in ctx.score_steps([(problems[0], s.steps) for s in solutions])]
        (other_alone,) = ctx.score_steps([(problems[1], solutions[1].steps)])
        assert costs == ([alone[0], 3, 3] if reuses else alone)
        assert other.prm_tokens == other_alone.num_tokens


def test_equal_beams_are_each_charged_the_prm_call_scored_once(world):
    """The compute of a ranking is what the search costs without prmh's cache: two beams that
    wrote the same steps are each charged one PRM call, its tokens and its seconds, though the
    PRM read them once. The releases score every active beam, repeats included, and drop
    repeats only after scoring (huggingface/search-and-learn src/sal/search/beam_search.py at
    6f81cac: one ``prm.score(prompts, completions)`` over all active beams, then
    ``filter_duplicates``)."""
    from dataclasses import replace

    from prmh.types import Generation

    class Once:
        def __init__(self, prm):
            self.prm, self.read = prm, []

        def score(self, requests):
            self.read += requests
            return [replace(x, seconds=0.5) for x in self.prm.score(requests)]

    ctx, problems = world()
    once = Once(ctx.prm.instance)
    ctx = replace(ctx, prm=replace(ctx.prm, instance=once))
    same = ctx.read(Generation("Ben starts with 3 apples.\n\nThe answer is 3.", True, 9))
    other = ctx.read(Generation("Ben starts with 4 apples.\n\nThe answer is 4.", True, 9))
    _, costs = ctx.rank([(problems[0], same), (problems[0], other), (problems[0], same)])
    assert len(once.read) == 2
    assert [c.prm_calls for c in costs] == [1, 1, 1]
    assert [c.wall_seconds for c in costs] == [0.5, 0.5, 0.5]
    assert costs[0].prm_tokens == costs[2].prm_tokens > 0


def test_a_matrix_cell_equals_the_same_cell_run_alone(cli, tmp_path):
    """Cells of one table share the pools they read and the step scores their first ranking
    reads (``SearchContext.pool`` and ``rank`` keep them in the workspace); what each
    aggregator and search makes of them is its own: every cell equals running it alone."""
    base = ["eval", "--json", "--world", "sim", "--limit", "25", "-n", "2", "-n", "4",
            "--prm", "oracle:noise=2", "--search", "best-of-n", "--search", "beam"]  # fmt: skip

    def rows(*extra, where):
        out = cli(*base, *extra, "--results-dir", str(tmp_path / where), "--recompute")
        assert out.exit_code == 0, out.output
        (table,) = json.loads(out.output)["metrics"]["tables"]
        return {r["agg"]: r["cells"] for r in table["rows"] if r["kind"] == "prm"}

    matrix = rows("--agg", "mean", "--agg", "min", "--agg", "last", where="matrix")
    for agg in ("mean", "min", "last"):
        alone = rows("--agg", agg, where=agg)
        strip = [{k: v for k, v in c.items() if k != "compute"} for c in alone[agg]]
        assert strip == [{k: v for k, v in c.items() if k != "compute"} for c in matrix[agg]]
        assert [c["compute"]["prm_tokens"] for c in alone[agg]] == [
            c["compute"]["prm_tokens"] for c in matrix[agg]
        ]
