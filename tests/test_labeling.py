"""Labelers against planted first errors, uncertainty measures, and label-file round trips."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

from prmh import Generation, Problem, RolloutValue
from prmh.errors import PrmhError
from prmh.labels import LabelledSolution, read_labels, write_labels
from prmh.plugins.uncertainty import step_entropy, step_log_sum, step_uncertainty

PROBLEM = Problem("p", "Q?", "1")


def planted(error: int, root: float = 0.6, good: float = 0.7, bad: float = 0.1):
    """A stand-in rollout: prefixes through a step before ``error`` keep a high value."""
    calls = []

    def rollout(k: int, n: int) -> RolloutValue:
        calls.append((k, n))
        if k == 0:
            value = root
        else:
            value = good if k - 1 < error else bad
        outcomes = tuple(i % 10 < round(10 * value) for i in range(n))
        return RolloutValue(sum(outcomes) / n, value, outcomes, tokens=5 * n)

    rollout.calls = calls
    return rollout


STRATEGIES = ["sequential", "binary", "adaptive-binary", "uncertainty", "uncertainty-delta"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("error", [0, 1, 3, 6, 8])
def test_unprm_searches_find_the_planted_error(registry, strategy, error):
    steps = [f"s{i}" for i in range(10)]
    # uncertainty peaks at the planted error (and rises most there)
    uncertainty = [1.0 + (5.0 if i == error else 0.0) for i in range(10)]
    labeler = registry.create("labeler", strategy).instance
    rollout = planted(error)
    out = labeler.label(PROBLEM, steps, False, rollout, uncertainty)
    if strategy == "uncertainty-delta" and error == 0:
        assert out.error_step != 0  # step 0 is never probed
        return
    assert out.error_step == error
    assert out.labels == tuple([1.0] * error + [0.0] * (10 - error))
    assert out.rollouts == sum(n for _, n in rollout.calls) and out.tokens == 5 * out.rollouts


def test_binary_search_costs_less_than_sequential(registry):
    steps = [f"s{i}" for i in range(16)]
    spent = {
        s: registry.create("labeler", s)
        .instance.label(PROBLEM, steps, False, planted(12), None)
        .rollouts
        for s in ("sequential", "binary")
    }
    assert spent["binary"] < spent["sequential"]


def test_no_failing_probe_blames_the_answer_step_and_correct_solutions_are_all_good(registry):
    labeler = registry.create("labeler", "sequential").instance
    out = labeler.label(PROBLEM, ["a", "b", "c"], False, planted(99), None)
    assert out.error_step == 2 and out.labels == (1.0, 1.0, 0.0)
    good = labeler.label(PROBLEM, ["a", "b"], True, planted(0), None)
    assert good.labels == (1.0, 1.0) and good.rollouts == 0


def test_adaptive_budget_by_hand(registry):
    labeler = registry.create("labeler", "adaptive-binary").instance
    rollout = planted(2, root=0.3)  # 3 of every 10 root rollouts succeed: 10th success at #32
    labeler.label(PROBLEM, ["a", "b", "c", "d"], False, rollout, None)
    assert rollout.calls[0] == (0, 72)
    assert rollout.calls[1] == (0, 32)  # max(16, 8 * ceil(32 / 8))
    assert all(n == 32 for _, n in rollout.calls[1:])
    # the release counts from the 0-based index of the 10th success: rollout 17 (index 16)
    # gives 16, not 24 (Jiuzhouh/UnPRM generate_train_data.py at 31b85ae: ceil(i/8)*8, i 0-based)
    for tenth, n in ((16, 16), (24, 24), (64, 64), (9, 16), (30, 32)):
        outcomes = (False,) * (tenth - 9) + (True,) * (81 - tenth)  # 72 rollouts
        calls = []

        def rollout(k, size, outcomes=outcomes, calls=calls):
            calls.append((k, size))
            return RolloutValue(0.5, 0.9 if k == 0 else 0.1, outcomes[:size], tokens=size)

        labeler.label(PROBLEM, ["a", "b", "c"], False, rollout, None)
        assert calls[1] == (0, n), tenth
    skipped = labeler.label(PROBLEM, ["a", "b"], False, planted(1, root=0.1), None)
    assert skipped.labels is None and skipped.rollouts == 72  # <= 10 successes of 72
    with pytest.raises(PrmhError, match="needs one uncertainty per step"):
        registry.create("labeler", "uncertainty").instance.label(
            PROBLEM, ["a", "b"], False, planted(1), None
        )


def test_monte_carlo_labels(registry):
    rollout = planted(2, good=0.5, bad=0.0)
    hard = registry.create("labeler", "mc-hard", {"n": 10}).instance.label(
        PROBLEM, ["a", "b", "c", "d"], False, rollout, None
    )
    assert hard.labels == (1.0, 1.0, 0.0, 0.0) and hard.error_step == 2 and hard.rollouts == 30
    soft = registry.create("labeler", "mc-soft", {"n": 10}).instance.label(
        PROBLEM, ["a", "b", "c"], True, planted(1, good=0.5, bad=0.2), None
    )
    assert soft.labels == (0.5, 0.2, 1.0)


def test_uncertainty_measures_by_hand():
    lps = [math.log(0.5), math.log(0.25)]
    pi = [math.exp(x / 5) for x in lps]
    pi = [p / sum(pi) for p in pi]
    assert step_entropy(lps) == pytest.approx(-sum(p * math.log(p) for p in pi))
    assert step_log_sum(lps) == pytest.approx(-sum(math.log(p) for p in pi))
    assert step_entropy([-1.0] * 8) == pytest.approx(math.log(8))  # bounded by log L
    g = Generation(
        "ab\n\ncd",
        True,
        4,
        token_logprobs=(-0.1, -0.2, -0.3, -0.4),
        tokens=("a", "b", "\n\nc", "d"),
    )
    # "\n\nc" starts inside the first step's part of the text: it stays with the first step
    assert step_uncertainty(g, ["ab", "cd"]) == [
        step_entropy([-0.1, -0.2, -0.3]),
        step_entropy([-0.4]),
    ]


def test_log_sum_and_entropy_survive_very_low_log_probabilities():
    lps = [-5000.0, -1.0, -20000.0]
    scaled = [x / 5 for x in lps]
    top = max(scaled)
    log_z = top + math.log(sum(math.exp(x - top) for x in scaled))
    assert step_log_sum(lps) == pytest.approx(-sum(x - log_z for x in scaled))
    assert step_entropy(lps) == pytest.approx(0.0, abs=1e-12)


def released_split_by_step(tokens, logprobs):
    """UnPRM's ``split_by_step`` (Jiuzhouh/UnPRM ``generate_train_data.py`` at 31b85ae): walk
    the tokens, start a new group at every token equal to 'Step' (closing the current group when
    it is not empty), add every other token to the current group."""
    groups, current = [], []
    for token, lp in zip(tokens, logprobs, strict=True):
        if token == "Step" and current:
            groups.append(current)
            current = []
        current.append(lp)
    return groups + ([current] if current else [])


def test_step_tokens_follow_unprm_split_by_step():
    """Each step's tokens are those UnPRM's release gives it: a step starts at its 'Step' token,
    and the token that ends a step ('.\n') stays with that step."""
    from prmh.plugins.uncertainty import step_logprobs

    tokens = ("Step", " 1", ":", " 2", " +", " 2", ".\n", "Step", " 2", ":", " so", " 4", ".")
    lps = tuple(-0.1 * (i + 1) for i in range(len(tokens)))
    g = Generation("".join(tokens), True, len(tokens), token_logprobs=lps, tokens=tokens)
    steps = ["Step 1: 2 + 2.", "Step 2: so 4."]
    assert step_logprobs(g, steps) == released_split_by_step(tokens, lps)


ITEMS = [
    LabelledSolution(
        "Tom has 3 apples. How many?",
        ("Step 1: He has 3.", "Step 2: The answer is 3."),
        (1.0, 1.0),
        "3",
    ),
    LabelledSolution(
        "What is 2 + 2?", ("Step 1: 2 + 2 = 5.", "Step 2: The answer is 5."), (0.0, 0.0), "4"
    ),
]


@pytest.mark.parametrize("fmt", ["math-shepherd", "unprm", "stepwise"])
def test_label_files_round_trip(tmp_path, fmt):
    path = tmp_path / f"labels.{fmt}"
    assert write_labels(path, ITEMS, fmt) == 2
    back = read_labels(path)  # the format is detected from the fields
    assert [(b.question, b.steps, b.labels) for b in back] == [
        (i.question, i.steps, i.labels) for i in ITEMS
    ]
    write_labels(tmp_path / "again", back, fmt)
    if fmt != "unprm":
        assert (tmp_path / "again").read_text() == path.read_text()


@pytest.mark.parametrize("fmt", ["math-shepherd", "unprm", "stepwise"])
def test_soft_labels_stay_numbers(tmp_path, fmt):
    soft = LabelledSolution("Q?", ("Step 1: a.", "Step 2: b."), (0.625, 0.0))
    write_labels(tmp_path / "soft", [soft], fmt)
    (back,) = read_labels(tmp_path / "soft")
    assert back.labels == (0.625, 0.0)
    hard = LabelledSolution("Q?", ("Step 1: a.", "Step 2: b."), (1.0, 0.0))
    write_labels(tmp_path / "hard", [hard], fmt)
    assert "soft_label" not in (tmp_path / "hard").read_text()
    if fmt != "math-shepherd":
        row = json.loads((tmp_path / "hard").read_text().strip().strip("[]"))
        assert row["label" if fmt == "unprm" else "labels"] == [True, False]


def test_math_shepherd_format_matches_the_dataset(tmp_path):
    write_labels(tmp_path / "ms.jsonl", ITEMS[1:], "math-shepherd")
    row = json.loads((tmp_path / "ms.jsonl").read_text())
    assert row["input"] == "What is 2 + 2? Step 1: 2 + 2 = 5. ки\nStep 2: The answer is 5. ки"
    assert row["label"] == "What is 2 + 2? Step 1: 2 + 2 = 5. -\nStep 2: The answer is 5. -"
    plain = LabelledSolution("Q", ("first", "second"), (1.0, 0.0))
    write_labels(tmp_path / "p.jsonl", [plain], "math-shepherd")
    assert read_labels(tmp_path / "p.jsonl")[0].steps == ("Step 1: first", "Step 2: second")


def test_trl_stepwise_data_reads_from_parquet_a_dataset_folder_and_hub_ids(
    tmp_path, monkeypatch, cli
):
    """TRL's stepwise supervision as its Hub datasets store it (trl-lib/math_shepherd: Parquet
    with ``prompt``, ``completions`` list<string>, ``labels`` list<bool>): a Parquet file and a
    downloaded dataset folder read as the same JSONL would; a Hub id not in the offline cache
    is one clear message."""
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("datasets")
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    write_labels(tmp_path / "steps.jsonl", ITEMS, "stepwise")
    expected = [(i.question, i.steps, i.labels) for i in read_labels(tmp_path / "steps.jsonl")]
    rows = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    table = pa.Table.from_pylist(rows)
    assert str(table.schema.field("labels").type) == "list<item: bool>"
    pq.write_table(table, tmp_path / "steps.parquet")
    (tmp_path / "folder" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "folder" / "data" / "train-00000-of-00001.parquet")
    for source in (tmp_path / "steps.parquet", tmp_path / "folder"):
        assert [(i.question, i.steps, i.labels) for i in read_labels(source)] == expected
    result = cli("train", "--data", "someone/not-cached:train", "--model", "m", "--out", "o")
    assert result.exit_code == 2, result.output
    assert "could not load the dataset someone/not-cached:train" in result.output
    assert "Traceback" not in result.output


def test_malformed_label_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "completions": ["a"], "labels": [true, false]}\n')
    with pytest.raises(PrmhError, match="line 1: 1 steps but 2 labels"):
        read_labels(bad)
    bad.write_text('{"prompt": "q"}\n')
    with pytest.raises(PrmhError, match="cannot tell the label format"):
        read_labels(bad)
    # each was a TypeError traceback or trained on a question made up from a number
    for text, message in [
        ("[1, 2]", "item 1: expected an object, got 1."),
        ("null\n", "line 1: expected an object, got None."),
        ('{"prompt": 5, "completions": ["a"], "labels": [true]}', "'prompt' must be the ques"),
        ('{"prompt": null, "completions": ["a"], "labels": [true]}', "not None"),
        ('{"prompt": "q", "completions": [3], "labels": [true]}', "list of steps (text), not [3]"),
    ]:
        bad.write_text(text)
        with pytest.raises(PrmhError, match=re.escape(message)):
            read_labels(bad)


def test_a_killed_label_run_leaves_no_half_file_and_resumes(tmp_path):
    """SIGKILL `prmh label` at 12 moments: the output is absent or whole (never a part), and
    a last run writes it from what the killed runs stored."""
    import signal
    import subprocess
    import sys
    import time

    out, results = tmp_path / "labels.jsonl", tmp_path / "results"
    args = [sys.executable, "-m", "prmh", "label", "--limit", "12", "-n", "2", "--out", str(out)]
    args += ["--results-dir", str(results), "-G", "delay=0.002"]
    seen = []
    for i in range(12):
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4 + 0.15 * i)
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen.append(out.read_bytes() if out.exists() else None)
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    whole = out.read_bytes()
    assert len(read_labels(out)) >= 20
    assert all(s in (None, whole) for s in seen)  # never a part of the file


def test_rollout_and_label_write_run_records(cli, tmp_path):
    """Every command that computes writes a run record: rollout and label too."""
    out = tmp_path / "labels.jsonl"
    assert cli("label", "--limit", "3", "-n", "2", "--out", str(out)).exit_code == 0
    assert (
        cli("rollout", "--limit", "3", "-n", "2", "-k", "2", "--out", str(tmp_path / "r")).exit_code
        == 0
    )
    records = [json.loads(p.read_text()) for p in sorted((cli.results_dir / "runs").glob("*.json"))]
    by_command = {r["config"]["command"]: r for r in records}
    assert set(by_command) == {"label", "rollout"}
    assert all(r["status"] == "success" for r in records)
    assert by_command["label"]["metrics"]["labelled"] == len(read_labels(out))
    assert by_command["rollout"]["metrics"]["solutions"] > 0
    shown = cli("show", by_command["label"]["run_id"])
    assert shown.exit_code == 0 and "label: " in shown.output and "labelled" in shown.output
    failed = cli("label", "--limit", "2", "--out", str(out), "-L", "n=0")
    assert failed.exit_code == 2


def test_rollout_and_label_take_a_world_and_split_code_by_lines(cli, tmp_path, monkeypatch):
    """``--world`` as for ``prmh eval`` (``prmh.matrix.WORLDS``). ``prmh label --task code``
    split the code task's programs with double-newline, the default: one step per program,
    labelled with no rollout at all. Now the code task brings the code world's code-lines."""
    from prmh.cli.data import with_world

    monkeypatch.delenv("PRMH_WORLD", raising=False)
    out = tmp_path / "labels.jsonl"
    labelled = cli("label", "--task", "code", "--limit", "2", "-n", "2", "--out", str(out))
    assert labelled.exit_code == 0, labelled.output
    assert all(len(item.steps) > 3 for item in read_labels(out))
    (record,) = [json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")]
    options = record["config"]["options"]
    assert (options["world"], options["splitter"], options["generator"]) == (
        "code", "code-lines", "sim"
    )  # fmt: skip
    given = {"world": "tiny", "task": None, "generator": None, "splitter": "fixed-tokens"}
    assert with_world(given) == {
        "world": "tiny", "task": "arith", "generator": "tiny", "splitter": "fixed-tokens"
    }  # fmt: skip
    assert with_world({"task": None, "generator": None, "splitter": None})["generator"] == "sim"
    wrong = cli("rollout", "--world", "moon", "--limit", "2", "--out", str(tmp_path / "r"))
    assert wrong.exit_code == 2 and "unknown world 'moon'; worlds are: tiny, sim, code" in (
        wrong.output
    )


def test_a_rollout_prefix_is_the_solution_text_up_to_the_next_step(registry):
    """Prefixes are the solution as written, cut where step k+1 begins (AdaptiveStep's
    boundaries are positions in the generated text: a mid-sentence boundary stays
    mid-sentence), not the steps re-joined with a blank line; without the text, the
    splitter's own join."""
    from prmh.rollout import Rollouts

    rollouts = Rollouts.__new__(Rollouts)  # prefix_text needs no workspace
    rollouts.separator, rollouts.splitter = "\n\n", None
    text = "Ben has 12 apples and gives 5 away, so 7 remain.\n\nThe answer is 7."
    adaptive = ("Ben has 12 app", "les and gives 5 away,", " so 7 remain.", "The answer is 7.")
    assert rollouts.prefix_text(adaptive, 1, text) == "Ben has 12 app"
    assert (
        rollouts.prefix_text(adaptive, 3, text)
        == "Ben has 12 apples and gives 5 away, so 7 remain.\n\n"
    )
    assert rollouts.prefix_text(adaptive, 4, text) == text
    assert rollouts.prefix_text(adaptive, 0, text) == ""
    paragraphs = ("Ben has 12 apples and gives 5 away, so 7 remain.", "The answer is 7.")
    assert rollouts.prefix_text(paragraphs, 1, text) == paragraphs[0] + "\n\n"  # as before
    fixed = registry.create("splitter", "fixed-tokens", {"size": 2}).instance
    rollouts.splitter = fixed
    squeezed = "Ben  has 12\napples."  # the splitter rewrote the white space: not found as is
    steps = tuple(fixed.split(squeezed))
    assert steps == ("Ben has", "12 apples.")
    assert rollouts.prefix_text(steps, 1, squeezed) == "Ben has "


def test_rollout_fits_an_adaptive_splitter_on_every_sample(cli, tmp_path):
    """Outside ``eval`` too, adaptive-confidence's threshold is the 2% quantile of the token
    probabilities of all the command's samples (AdaptiveStep's global threshold, methods.md
    section 6.2), not of the first solution read."""
    import math

    from prmh.engine import CacheStats, Workspace
    from prmh.registry import load_registry
    from prmh.store import Store

    out = tmp_path / "r.jsonl"
    args = ["rollout", "--limit", "4", "-n", "3", "-k", "1", "--splitter", "adaptive-confidence"]
    assert cli(*args, "--out", str(out)).exit_code == 0
    (path,) = (cli.results_dir / "runs").glob("*.json")
    fitted = json.loads(path.read_text())["metrics"]["fitted_splitter"]
    registry = load_registry()
    task = registry.create("task", "arith", {})
    workspace = Workspace(task, registry.create("generator", "sim"), Store(cli.results_dir),
                          "check", CacheStats(), lambda *a: None)  # fmt: skip
    pools = workspace.generations(task.instance.problems(4), 3, 0)
    probs = sorted(math.exp(lp) for pool in pools for g in pool for lp in g.token_logprobs)
    assert fitted == pytest.approx(probs[int(0.02 * len(probs))])


def _graded(problem_id, correct, tokens, logprobs, steps):
    from types import SimpleNamespace

    from prmh import Generation

    text = "".join(tokens)
    generation = Generation(text, True, len(tokens), tuple(logprobs), tuple(tokens))
    return SimpleNamespace(
        problem=SimpleNamespace(id=problem_id),
        generation=generation,
        solution=SimpleNamespace(steps=tuple(steps)),
        correct=correct,
    )


def test_unprm_selection_by_uncertainty_and_by_diversity():
    """Jiuzhouh/UnPRM ``generate_train_data.py`` at 31b85ae (``generate_train_solution_fixed``):
    2 correct, then 8 - that many incorrect, per problem; none correct: left out.
    ``choose_solution_uncertainty_driven`` (alpha = 1): mean |U_{i+1} - U_i| of the step
    entropies, min-max normalised, the argmax first, then the best remaining (strict >, so ties
    go to the earlier one). ``chose_solution``: greedy least mean cosine similarity to the
    chosen (strict <), from a seeded random start; prmh's similarity is of token counts."""
    from prmh.plugins.solution_select import select_solutions, solution_uncertainty
    from prmh.plugins.uncertainty import step_uncertainty

    def two_steps(i, correct, spread):
        tokens = ["Step", " one.", "\n", "Step", " two", " now."]
        logprobs = [-0.1, -0.1 * (1 + spread), -0.2, -0.1, -spread, -0.3]
        return _graded("p", correct, tokens, logprobs, ["Step one.\n", "Step two now."])

    pool = [two_steps(i, i < 3, spread) for i, spread in enumerate([0.5, 3.0, 3.0, 1, 2, 9])]
    pool += [two_steps(6 + i, False, 0.1 * i) for i in range(8)]
    pool.append(_graded("none", False, ["x"], [-1.0], ["x"]))  # no correct: left out
    u = [solution_uncertainty(step_uncertainty(x.generation, x.solution.steps)) for x in pool]
    right = sorted(range(3), key=lambda i: -u[i])[:2]  # stable: ties keep the earlier
    wrong = sorted(range(3, 14), key=lambda i: -u[i])[:6]
    chosen = select_solutions(pool, "uncertainty")
    assert [[id(y) for y in pool].index(id(x)) for x in chosen] == right + wrong
    assert u[1] == u[2] and right == [1, 2]

    def bag(i, words):
        return _graded("q", i == 0, words.split(), [-1.0] * len(words.split()), [words])

    texts = ["a b c", "a b c", "a b d", "x y z", "a x q", "p q r"]
    items = [bag(i, t) for i, t in enumerate(texts)]
    chosen = select_solutions(items, "diversity", seed=3)
    assert chosen[0] is items[0]  # the only correct one
    wrong = [items.index(x) for x in chosen[1:]]
    assert sorted(wrong) == [1, 2, 3, 4, 5]  # 5 incorrect <= 7 wanted: all of them
    many = [bag(i + 1, f"w{i} common") for i in range(9)] + [bag(0, "right answer")]
    picked = select_solutions(many, "diversity", seed=3)
    assert len(picked) == 8 and sum(x.correct for x in picked) == 1
    again = select_solutions(many, "diversity", seed=3)
    assert picked == again  # seeded start: the same choice every run
    # four correct: from the seeded start, the one least like it (cosine of word counts)
    words = ["a b", "a b", "a c", "z y"]
    start = random.Random("3:q").randrange(4)
    cos = [len(set(words[start].split()) & set(w.split())) / 2 for w in words]
    second = min((i for i in range(4) if i != start), key=lambda i: cos[i])
    chosen = select_solutions([bag(0, w) for w in words], "diversity", seed=3)
    assert [x.generation.text for x in chosen] == [
        words[start].replace(" ", ""),
        words[second].replace(" ", ""),
    ]


def test_label_select_keeps_two_correct_and_six_incorrect(cli, tmp_path):
    out = tmp_path / "labels.jsonl"
    result = cli("label", "--limit", "8", "-n", "16", "--select", "diversity", "--labeler",
                 "mc-hard", "-L", "n=2", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "selected" in result.output
    by_question = {}
    for item in read_labels(out):
        by_question.setdefault(item.question, []).append(item)
    assert by_question and all(len(items) <= 8 for items in by_question.values())
    (record,) = [
        json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")
        if json.loads(p.read_text())["config"].get("command") == "label"
    ]  # fmt: skip
    selected = record["metrics"]["selected"]
    assert selected["how"] == "diversity" and selected["chosen"] == len(read_labels(out))
    assert selected["from"] > selected["chosen"]
