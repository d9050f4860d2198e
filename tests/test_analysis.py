"""PRM analysis: metrics by hand, ProcessBench and calibration from the command line, and the
calibrated PRM beating the uncalibrated one on the bundled world."""

from __future__ import annotations

import json
import math
import re
import textwrap

import numpy as np
import pytest

from prmh.analysis import (
    calibration_scores,
    first_error,
    pearson,
    pearson_interval,
    processbench_scores,
    quantile_coverage,
)
from prmh.errors import PrmhError


def test_processbench_metrics_by_hand():
    probs = [[0.9, 0.2, 0.1], [0.9, 0.8], [0.3, 0.9], [0.9, 0.9, 0.9]]
    labels = [1, -1, 1, 2]
    assert [first_error(p, 0.5) for p in probs] == [1, -1, 0, -1]
    r = processbench_scores(probs, labels, 0.5)
    # erroneous: #0 right (1), #2 wrong (0 != 1), #3 wrong (-1 != 2): 1/3; correct: #1 right
    assert r["error_accuracy"] == pytest.approx(1 / 3) and r["correct_accuracy"] == 1.0
    assert r["f1"] == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    assert (r["erroneous"], r["correct"]) == (3, 1)
    # ProcessBench's F1 = 2ab/(a+b) is undefined with an empty subset or a = b = 0, not 0.0
    assert math.isnan(processbench_scores([[0.9]], [-1], 0.5)["f1"])  # no erroneous samples
    assert math.isnan(processbench_scores([[0.9], [0.1]], [0, -1], 0.5)["f1"])  # both 0


def test_processbench_matches_the_official_evaluation():
    """QwenLM/ProcessBench, code/run_eval_prm_trl.py at 04d347e7282ce12124be7b0a9cc2fa4d7c562d53:
    a step is wrong where the argmax of its two class probabilities is class 0
    (``find_first_zero``); ``match`` is prediction == label; per subset acc1 (erroneous) and
    acc2 (correct) are means of ``match``, F1 = 2 acc1 acc2 / (acc1 + acc2), and the headline
    is ``np.mean`` of the subsets' F1. Derived here from random scores, no tie at 0.5."""
    from prmh.analysis.processbench import _average

    rng = np.random.default_rng(7)
    per_task, official = {}, []
    for subset in range(4):
        n = 30 + 10 * subset
        probs = [list(rng.choice([0.1, 0.3, 0.7, 0.9], size=rng.integers(1, 6))) for _ in range(n)]
        labels = [int(rng.integers(-1, len(p))) for p in probs]
        predicted = []
        for p in probs:
            classes = np.argmax(np.stack([1 - np.array(p), np.array(p)], axis=1), axis=1)
            zeros = np.nonzero(classes == 0)[0]
            predicted.append(int(zeros[0]) if zeros.size else -1)
        match = [a == b for a, b in zip(predicted, labels, strict=True)]
        acc1 = np.mean([m for m, y in zip(match, labels, strict=True) if y != -1]) * 100
        acc2 = np.mean([m for m, y in zip(match, labels, strict=True) if y == -1]) * 100
        official.append(2 * acc1 * acc2 / (acc1 + acc2))
        ours = processbench_scores(probs, labels, 0.5)
        assert 100 * ours["error_accuracy"] == pytest.approx(acc1)
        assert 100 * ours["correct_accuracy"] == pytest.approx(acc2)
        assert 100 * ours["f1"] == pytest.approx(official[-1])
        per_task[subset] = {"fixed": ours}
    assert 100 * _average(per_task, "fixed") == pytest.approx(np.mean(official))


def test_calibration_metrics_by_hand():
    r = calibration_scores([0.05, 0.15, 0.95, 0.85], [0.0, 0.0, 1.0, 0.5], bins=10)
    # bins 0, 1, 9, 8, one point each: ECE = mean |p - y|
    assert r["ece"] == pytest.approx((0.05 + 0.15 + 0.05 + 0.35) / 4)
    assert r["brier"] == pytest.approx((0.05**2 + 0.15**2 + 0.05**2 + 0.35**2) / 4)
    assert [d["count"] for d in r["diagram"]] == [1, 1, 1, 1]
    assert calibration_scores([0.5] * 4, [0.5] * 4)["ece"] == 0.0
    with pytest.raises(PrmhError, match="at least 1 bin"):  # was an ECE of 0.0 from no bin
        calibration_scores([0.9, 0.1], [0.0, 1.0], bins=0)
    coverage = quantile_coverage([[0.1, 0.5, 0.9]] * 4, [0.0, 0.3, 0.6, 1.0], (0.1, 0.5, 0.9))
    assert coverage == {"0.1": 0.25, "0.5": 0.5, "0.9": 0.75}


def test_pearson_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    # constant after rounding: numpy's std() is not 0 here; scipy's pearsonr gives nan
    # (scipy/stats/_stats_py.py, pearsonr: "if (x == x[0]).all() or (y == y[0]).all()")
    constant = [0.1] * 7
    assert np.std(constant) > 0
    assert math.isnan(pearson(constant, [0, 1, 0, 1, 1, 0, 1]))
    assert math.isnan(pearson([0, 1, 0, 1], [0.7] * 4))
    r = pearson_interval([0.1, 0.9, 0.2, 0.8, 0.3, 0.7] * 5, [0, 1, 0, 1, 0, 1] * 5)
    assert r["low"] <= r["r"] <= r["high"] and r["r"] > 0.9


@pytest.fixture
def keyword_prm(tmp_path, monkeypatch):
    """A PRM plugin installed for this test: a step mentioning 'wrong' scores 0.1."""
    root = tmp_path / "plugin"
    root.mkdir()
    (root / "keyword_prm.py").write_text(
        textwrap.dedent("""
        from prmh import StepScores, hookimpl

        class Keyword:
            def score(self, requests):
                return [StepScores(tuple(0.1 if "wrong" in s else 0.9 for s in r.steps))
                        for r in requests]

        @hookimpl
        def prmh_register_prm(register):
            register("keyword", Keyword)
    """)
    )
    info = root / "keyword_prm-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: keyword-prm\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[prmh]\nkeyword = keyword_prm\n")
    monkeypatch.syspath_prepend(str(root))


def test_processbench_from_the_command_line(cli, keyword_prm, tmp_path):
    rows = [
        {
            "id": "a",
            "problem": "P",
            "steps": ["ok", "wrong", "x"],
            "label": 1,
            "final_answer_correct": False,
        },
        {
            "id": "b",
            "problem": "P",
            "steps": ["ok", "ok"],
            "label": -1,
            "final_answer_correct": True,
        },
        {"id": "c", "problem": "P", "steps": ["wrong"], "label": 0, "final_answer_correct": False},
    ]
    data = tmp_path / "pb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot = tmp_path / "pb.png"
    result = cli(
        "analyze",
        "processbench",
        "--prm",
        "keyword",
        "--task",
        "processbench-gsm8k",
        "--task",
        "processbench-math",
        "-T",
        f"data={data}",
        "--pick-on",
        "processbench-gsm8k",
        "--plot",
        str(plot),
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)["keyword"]
    fixed = metrics["tasks"]["processbench-math"]["fixed"]
    assert (fixed["error_accuracy"], fixed["correct_accuracy"], fixed["f1"]) == (1.0, 1.0, 1.0)
    assert 0.1 < metrics["picked_threshold"] <= 0.9
    subsets = [metrics["tasks"][t]["fixed"]["f1"] for t in metrics["tasks"]]
    assert metrics["average_f1"] == pytest.approx(sum(subsets) / 2)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    records = list((cli.results_dir / "runs").glob("*.json"))
    assert json.loads(records[0].read_text())["metrics"]["processbench"]["keyword"]
    table = cli("analyze", "processbench", "--prm", "keyword", "--task", "processbench-gsm8k",
                "--task", "processbench-math", "-T", f"data={data}").output  # fmt: skip
    average = next(line for line in table.splitlines() if "keyword · average" in line)
    assert f"{100 * metrics['average_f1']:.1f}" in average
    _shown_as_printed(cli, table)
    bad = cli("analyze", "processbench", "--prm", "keyword", "--task", "arith")
    assert bad.exit_code == 2 and "has no ProcessBench samples" in bad.output


def test_calibrating_a_trained_prm_lowers_its_calibration_error(cli, tmp_path):
    """The bundled world end to end: rollouts, labels, a trained PRM, its calibration, and the
    report on held-out rollouts."""
    pytest.importorskip("torch")
    from prmh.testing import tiny_qwen2, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    base = tmp_path / "base"
    tiny_qwen2(tokenizer, hidden=64, layers=2).save_pretrained(base)
    tokenizer.save_pretrained(base)
    train_rollouts, test_rollouts = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    assert (
        cli(
            "rollout",
            "-T",
            "split=train",
            "--limit",
            "40",
            "-n",
            "4",
            "-k",
            "8",
            "--out",
            str(train_rollouts),
        ).exit_code
        == 0
    )
    assert (
        cli(
            "rollout",
            "-T",
            "split=test",
            "--limit",
            "25",
            "-n",
            "4",
            "-k",
            "8",
            "--out",
            str(test_rollouts),
        ).exit_code
        == 0
    )
    labels = tmp_path / "labels.jsonl"
    assert (
        cli(
            "label",
            "-T",
            "split=train",
            "--limit",
            "40",
            "-n",
            "4",
            "--labeler",
            "mc-hard",
            "--out",
            str(labels),
        ).exit_code
        == 0
    )
    prm, calibrated = tmp_path / "prm", tmp_path / "calibrated"
    trained = cli(
        "train",
        "--data",
        str(labels),
        "--model",
        str(base),
        "--out",
        str(prm),
        "--full",
        "--loss",
        "bce",
        "--epochs",
        "3",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
    )
    assert trained.exit_code == 0, trained.output
    fitted = cli(
        "calibrate",
        "--rollouts",
        str(train_rollouts),
        "--prm",
        str(prm),
        "--out",
        str(calibrated),
        "--epochs",
        "3",
        "--lr",
        "1e-3",
    )
    assert fitted.exit_code == 0, fitted.output
    rows = [json.loads(line) for line in train_rollouts.read_text().splitlines()]
    counted = sum(len(r["values"]) for r in rows)  # what analyze calibration counts
    assert f"calibrated on {counted} prefixes of {len(rows)} solutions" in fitted.output
    records = [json.loads(p.read_text()) for p in (cli.results_dir / "runs").glob("*.json")]
    by_command = {r["config"].get("command"): r for r in records}
    assert by_command["train"]["status"] == "success"
    assert len(by_command["train"]["metrics"]["losses"]) == by_command["train"]["metrics"]["steps"]
    assert by_command["calibrate"]["config"]["options"]["prm"] == str(prm)
    assert by_command["calibrate"]["metrics"]["steps"] > 0
    report = cli(
        "analyze",
        "calibration",
        "--prm",
        str(prm),
        "--prm",
        str(calibrated),
        "--rollouts",
        str(test_rollouts),
        "--json",
    )
    assert report.exit_code == 0, report.output
    before, after = json.loads(report.output)
    assert after["ece"] < before["ece"] and after["brier"] < before["brier"]
    assert "coverage" in after and "coverage" not in before
    assert 0.3 < after["coverage"]["0.5"] < 0.7


def test_correlation_from_the_command_line(cli, tmp_path):
    args = [
        "analyze",
        "correlation",
        "--prm",
        "oracle:noise=1",
        "--limit",
        "15",
        "-n",
        "4",
        "--thresholds",
        "6,12,24,200",
        "--json",
    ]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output).values()
    table = entry["correlations"]
    assert set(table) == {"mean", "min", "last", "whole"}
    for how in table:
        assert set(table[how]) == {"6", "12", "24", "200", "full"}
        # cut past the end, a solution is whole again: the same score as the full solution
        assert table[how]["200"]["full_score"]["r"] == pytest.approx(1.0)
    # an exact-ish PRM: late cuts predict correctness better than early ones
    assert table["min"]["200"]["correctness"]["r"] > table["min"]["6"]["correctness"]["r"]
    # how many solutions each threshold cut, by the words and marks the oracle counts
    from prmh.analysis.correlation import token_count

    assert token_count("  Add 2 and 3: 5.  \n", None) == 7
    cut, n = [entry["cut"][t] for t in ("6", "12", "24", "200")], entry["solutions"]
    assert n == cut[0] >= cut[1] >= cut[2] > cut[3] == 0 and 24 < entry["longest"] < 200
    shown = cli(*args[:-1]).output  # the table: a threshold past every solution is named
    assert re.search(rf"tau=200\s*│\s*0 of {n}\s*│", shown), shown
    assert f"tau=200 cut no solution (the longest has {entry['longest']} tokens)" in shown
    _shown_as_printed(cli, shown)
    # the whole aggregator's full-solution row scores the full solution, not the largest cut
    short = cli(*args[:-2], "3", "--json")
    whole = json.loads(short.output)["oracle:noise=1"]["correlations"]["whole"]
    assert whole["full"] == table["whole"]["full"] != whole["3"]
    rescored = cli(*args, "--method", "rescore")
    assert json.loads(rescored.output)["oracle:noise=1"]["correlations"] == table
    bad = cli("analyze", "correlation", "--prm", "oracle", "--thresholds", "0,5")
    assert bad.exit_code == 2 and "positive token counts" in bad.output


def test_the_oracle_prm_is_calibrated_against_rollouts_of_arith(cli, tmp_path):
    """The rollout file keeps each arith problem's gold steps, so `analyze calibration` can
    score its prefixes with the oracle PRM (which checks steps against them)."""
    from prmh.plugins.arith import ArithTask

    out = tmp_path / "r.jsonl"
    assert cli("rollout", "--limit", "5", "-n", "2", "-k", "2", "--out", str(out)).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    gold = {p.id: list(p.steps) for p in ArithTask().problems(5)}
    assert all(r["gold_steps"] == gold[r["problem_id"]] for r in rows)
    result = cli("analyze", "calibration", "--prm", "oracle", "--rollouts", str(out), "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    assert entry["prm"] == "oracle" and entry["count"] == sum(len(r["values"]) for r in rows)
    printed = cli("analyze", "calibration", "--prm", "oracle", "--rollouts", str(out)).output
    assert "calibration against" in printed and str(entry["count"]) in printed
    _shown_as_printed(cli, printed)


def _shown_as_printed(cli, printed):
    """``prmh show`` of the analysis just run prints its table as the command did (it
    printed the record's metrics as Python dicts)."""
    shown = cli("show", "latest").output
    table = [line for line in printed.splitlines() if not line.startswith(("plot:", "reliab"))]
    assert "\n".join(table) in shown and "{'" not in shown


def test_truncations_keep_the_steps_a_confidence_splitter_read(cli):
    """A splitter that reads token confidences cannot split a truncation's plain text; each
    truncation keeps the steps it holds, the last one cut short (issue: the adaptive splitter
    was refused with a misleading error)."""
    from prmh.analysis.correlation import cut_steps

    text = "We add 2 and 3 so 5 then double it to 10 done"
    steps = ("We add 2 and 3", "so 5 then", "double it to 10 done")
    assert cut_steps(steps, text, text) == steps
    assert cut_steps(steps, text, text[:17]) == ("We add 2 and 3", "so")
    assert cut_steps(steps, text, text[:14]) == ("We add 2 and 3",)
    assert cut_steps(steps, text, "") == ()
    result = cli("analyze", "correlation", "--prm", "oracle:noise=1", "--limit", "8", "-n", "4",
                 "--splitter", "adaptive-confidence", "--thresholds", "6,12,400",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output).values()
    last = report["correlations"]["last"]
    assert last["400"]["full_score"]["r"] == pytest.approx(1.0)  # the whole solution
    assert last["6"]["full_score"]["r"] != pytest.approx(1.0)  # a cut one: other steps


def test_rollout_rows_of_the_wrong_shape_are_named(tmp_path):
    """Rollout rows with the right fields but values of the wrong kind (steps a number, values
    text, a rate outside [0, 1]; the release's success_prob text) were TypeError tracebacks or
    calibrated against nonsense: each is one message naming the row."""
    from prmh.analysis.calibration import read_rollouts
    from prmh.errors import PrmhError

    good = {"question": "q", "steps": ["a", "b"], "correct": True,
            "values": [{"k": 0, "rate": 0.5, "weighted": 0.5}]}  # fmt: skip
    path = tmp_path / "r.jsonl"
    for change, message in [
        ({"steps": 5}, "row 2: 'steps' is not a list of text"),
        ({"values": "x"}, "row 2: 'values' is not a list of"),
        ({"values": [{"k": 0, "rate": 1.5, "weighted": 0.5}]}, "row 2: 'values' is not"),
        ({"values": [{"k": "a", "rate": 0.5}]}, "row 2: 'values' is not"),
        ({"question": None}, "row 2: 'question' is not text"),
    ]:
        path.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
        with pytest.raises(PrmhError, match=re.escape(message)):
            read_rollouts(path)
    path.write_text(json.dumps(good) + "\n")
    assert read_rollouts(path) == [good]
    release = [{"question": "q", "reasoning_prefix": "", "success_prob": "high"}]
    path.write_text(json.dumps(release))
    with pytest.raises(PrmhError, match="row 1: 'success_prob' is not a number in"):
        read_rollouts(path)
