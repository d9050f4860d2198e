"""Every bad input: exit status 2, one clear message naming the problem, no traceback, and
the store, run records and boards byte-identical before and after.

One results directory with a finished run and one board are made first; each case runs a
command against them (with files it writes itself) and compares every byte afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import skip_without_extra

BINARY = bytes(range(256)) * 4


def _files(tmp: Path) -> dict[str, bytes | str]:
    """Files the cases refer to by name (written once per test directory)."""
    record = {"schema_version": 1, "run_id": "r", "status": "success", "config": {}}
    return {
        "binary.toml": BINARY,
        "latin1.toml": 'prm = ["caf\xe9"]\n'.encode("latin-1"),
        "invalid.toml": 'prm = ["oracle"\n',
        "deep.toml": "x = " + "[" * 5_000 + "]" * 5_000 + "\n",  # deeper than tomllib goes
        "unknown_key.toml": "colour = 1\n",
        "world_list.toml": "world = [1]\n",
        "results_int.toml": "results_dir = 5\n",
        "prm_table.toml": "prm_args = 5\n",
        "budget_text.toml": 'budget = ["x"]\n',
        "prm_nested.toml": "prm = [[1]]\n",
        "binary.jsonl": BINARY,
        "empty.jsonl": "",
        "not_json.jsonl": "{nope\n",
        "deep.jsonl": "[" * 100_000 + "]" * 100_000 + "\n",  # deeper than json's decoder goes
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "wrong_fields.jsonl": '{"a": 1}\n',
        "steps_labels.jsonl": '{"prompt": "q", "completions": ["a"], "labels": [true, false]}\n',
        "labels.jsonl": '{"prompt": "q", "completions": ["a"], "labels": [true]}\n',
        "rollouts.jsonl": json.dumps(
            {"question": "q", "steps": ["a"], "values": [{"k": 0, "rate": 0.5, "weighted": 0.5}]}
        ),
        "bad_label.jsonl": '{"prompt": "q", "completions": ["a"], "labels": ["maybe"]}\n',
        "x.parquet": b"PAR1" + BINARY,
        "list.json": "[1, 2]",
        "binary.json": BINARY,
        "not_json.json": "{",
        "no_version.json": json.dumps({**record, "schema_version": None}),
        "bad_tables.json": json.dumps({**record, "metrics": {"tables": [{"rows": 5}]}}),
        "bad_cell.json": json.dumps(
            {
                **record,
                "metrics": {
                    "tables": [
                        {
                            "task": "arith",
                            "generator": "sim",
                            "grader": {"name": "numeric"},
                            "problems": 2,
                            "seeds": [0],
                            "rows": [
                                {
                                    "kind": "prm",
                                    "prm": "p",
                                    "agg": "a",
                                    "selector": "s",
                                    "cells": [{"search": "best-of-n", "budget": 1, "mean": 2}],
                                }
                            ],
                        }
                    ]
                },
            }
        ),
        "path_run_id.json": json.dumps({**record, "run_id": "../../x"}),
        "prm_self/prmh_prm.json": "SELF",
        "prm_unknown/prmh_prm.json": json.dumps({"recipe": "oracle", "options": {"bogus": 1}}),
        "prm_model/prmh_prm.json": json.dumps({"recipe": "value-head", "options": {"model": "x"}}),
        "prm_not_json/prmh_prm.json": "{",
        "prm_no_recipe/prmh_prm.json": json.dumps({"options": {}}),
        "prm_options_list/prmh_prm.json": json.dumps({"recipe": "oracle", "options": [1]}),
        "prm_binary/prmh_prm.json": BINARY,
        "prm_empty/README": "no prmh_prm.json here",
    }


TINY = ["eval", "--world", "tiny"]
AT_LEAST_1 = "a whole number of at least 1"
E = ["eval", "--limit", "2", "-n", "1"]
CASES = [
    # unknown names
    ([*E, "--prm", "oracel"], "unknown prm 'oracel'"),
    ([*E, "--generator", "simm"], "unknown generator 'simm'"),
    ([*E, "--task", "arithh"], "unknown task 'arithh'"),
    ([*E, "--splitter", "lines"], "unknown splitter 'lines'"),
    ([*E, "--agg", "median"], "unknown aggregator 'median'"),
    ([*E, "--selector", "vote"], "unknown selector 'vote'"),
    ([*E, "--search", "bfs"], "unknown search 'bfs'"),
    ([*E, "--world", "huge"], "unknown world 'huge'"),
    ([*E, "--prm", ":noise=1"], "empty component name"),
    ([*E, "--prm", "{dir}/prm_empty"], "is a directory without prmh_prm.json"),
    # budgets, limits, seeds, timeouts
    (["eval", "-n", "0"], "--budget must be a whole number >= 1"),
    (["eval", "-n", "-3"], "--budget must be a whole number >= 1"),
    (["eval", "-n", "x"], "Invalid value for '-n'"),
    (["eval", "-n", "1.5"], "Invalid value for '-n'"),
    (["eval", "--limit", "0"], "--limit must be a whole number >= 1"),
    (["eval", "--limit", "-1"], "--limit must be a whole number >= 1"),
    (["eval", "--limit", "many"], "Invalid value for '--limit'"),
    (["eval", "-n", "8", "--pool", "4", "--limit", "2"], "larger than the pool"),
    (["eval", "--seed", "s"], "Invalid value for '--seed'"),
    ([*E, "--grading-timeout", "0"], "--grading-timeout must be a positive"),
    ([*E, "--grading-timeout", "-1"], "--grading-timeout must be a positive"),
    ([*E, "--grading-timeout", "nan"], "positive number of seconds up to 86400"),
    ([*E, "--grading-timeout", "inf"], "positive number of seconds up to 86400"),
    # 1e308 passed as finite, then overflowed the grading workers' wait (a traceback)
    ([*E, "--grading-timeout", "1e308"], "up to 86400 (a day; one answer's grading), not 1e+308"),
    # 10**20 samples per problem: generation keys filled memory for minutes, then the OOM killer
    ([*E, "-n", "100000000000000000000"], "is more samples per problem than prmh draws"),
    ([*E, "--pool", "65537"], "--pool 65537 is more samples per problem than prmh draws: use at"),
    ([*E, "--grading-timeout", "soon"], "Invalid value for '--grading-timeout'"),
    # Ray retried an unreachable cluster for minutes, printing as it went
    ([*E, "--executor", "ray", "--ray-address", "127.0.0.1:1"], "(Connection refused): start"),
    # nan GPUs passed the check (nan < 0 is false) and Ray raised after starting
    ([*E, "--executor", "ray", "--ray-gpus", "nan"], "--ray-gpus a number of at least 0, not"),
    ([*E, "--executor", "ray", "--ray-actors", "0"], "--ray-actors must be at least 1"),
    ([*E, "--shard", "3/4"], "--shard 3/4 holds no problem of task 'arith', which has 2: use at"),
    # component options
    ([*E, "-P", "nosie=1"], "has no option 'nosie'"),
    ([*E, "-P", "noise"], "expected key=value"),
    ([*E, "-P", "=1"], "expected key=value"),
    ([*E, "-P", "noise=abc"], "option 'noise' needs a finite number"),
    ([*E, "-P", "noise=nan"], "option 'noise' needs a finite number"),
    ([*E, "-P", "noise=inf"], "option 'noise' needs a finite number"),
    ([*E, "-P", "noise=-inf"], "option 'noise' needs a finite number"),
    ([*E, "-P", "noise=[1]"], "option 'noise' needs a finite number"),
    # the model's PRMs: max_length=abc was a TypeError traceback; -3 failed after generating
    *(
        ([*TINY, "-P", f"max_length={v}"], f"'max_length' needs {AT_LEAST_1}")
        for v in ("abc", 0, -3)
    ),
    ([*TINY, "-P", "prefix_cache_tokens=-1"], "needs a whole number of at least 0"),
    # vLLM's share of GPU memory was taken as given (2, 0) until vLLM loaded, minutes later
    *(
        ([*E, "--generator", f"vllm:model=m,{o}"], f"'{o.split('=')[0]}' needs {n}")
        for o, n in [
            ("gpu_memory_utilization=2", "a finite number above 0 and at most 1"),
            ("tensor_parallel_size=0", AT_LEAST_1),
            ("max_model_len=0", AT_LEAST_1),
        ]
    ),
    ([*TINY, "-P", "vllm=true", "-P", "gpu_memory_utilization=0"], "above 0 and at most 1"),
    # the tiny world's options were typed by their defaults only: scale=abc was a traceback
    ([*TINY, "-P", "scale=abc"], "option 'scale' needs a finite number, got 'abc'"),
    ([*TINY, "-G", "max_new_tokens=x"], "option 'max_new_tokens' needs a whole number, got 'x'"),
    ([*E, "-P", "quantiles=maybe"], "option 'quantiles' needs true or false"),
    ([*E, "-P", "quantiles=2"], "option 'quantiles' needs true or false"),
    ([*E, "--prm", "oracle:confidence=x"], "option 'confidence' needs a finite number"),
    ([*E, "-G", "slip_rate=3"], "slip_rate must be in [0, 1]"),
    ([*E, "-G", "slip_rate=nan"], "option 'slip_rate' needs a finite number"),
    ([*E, "-G", "slipp=1"], "has no option 'slipp'"),
    ([*E, "-T", "split=dev"], "arith has splits test, train"),
    ([*E, "-T", "max_ops=x"], "option 'max_ops' needs a whole number"),
    ([*E, "-T", "max_ops=2.5"], "option 'max_ops' needs a whole number"),
    ([*E, "-T", "grader=nope"], "unknown grader 'nope'"),
    ([*E, "-S", "width=x", "--search", "beam"], "option 'width' needs a whole number"),
    ([*E, "-S", "confidence=2", "--search", "bon-ias"], "confidence must be in (0, 1)"),
    ([*E, "--selector", "hybrid-vote:threshold=x"], "option 'threshold' needs a finite number"),
    ([*E, "--generator", "openai"], "missing a required argument: 'model'"),
    ([*E, "--splitter", "separator"], "missing a required argument: 'at'. Its options: at."),
    ([*E, "--splitter", "separator:at= "], "--splitter 'separator:at=.'"),
    ([*E, "--generator", "openai", "-G", "model=m", "-G", "concurrency=x"], "'concurrency'"),
    # configs
    ([*E, "--config", "{dir}/missing.toml"], "cannot read config"),
    ([*E, "--config", "{dir}/binary.toml"], "is not UTF-8 text"),
    ([*E, "--config", "{dir}/latin1.toml"], "is not UTF-8 text"),
    ([*E, "--config", "{dir}/invalid.toml"], "is not valid TOML"),
    ([*E, "--config", "{dir}/deep.toml"], "is not valid TOML: nested too deeply"),
    ([*E, "--task", "{dir}/deep.toml"], "is not valid TOML: nested too deeply"),
    ([*E, "-P", "noise=" + "[" * 5_000 + "]" * 5_000], "option 'noise' needs a finite number"),
    ([*E, "--config", "{dir}/unknown_key.toml"], "unknown key(s) colour"),
    ([*E, "--config", "{dir}/world_list.toml"], "world must be text"),
    ([*E, "--config", "{dir}/results_int.toml"], "results_dir must be text"),
    ([*E, "--config", "{dir}/prm_table.toml"], "prm_args must be a table"),
    (["eval", "--limit", "2", "--config", "{dir}/budget_text.toml"], "--budget must be a whole"),
    ([*E, "--config", "{dir}/prm_nested.toml"], "prm must list names or numbers"),
    # PRM directories
    ([*E, "--prm", "{dir}/prm_self"], "which is not a PRM recipe"),
    ([*E, "--prm", "{dir}/prm_unknown"], "has no option(s) bogus"),
    ([*E, "--prm", "{dir}/prm_model"], "sets 'model'"),
    ([*E, "--prm", "{dir}/prm_not_json"], "cannot read"),
    ([*E, "--prm", "{dir}/prm_no_recipe"], 'must hold {"recipe"'),
    ([*E, "--prm", "{dir}/prm_options_list"], "options must be an object"),
    ([*E, "--prm", "{dir}/prm_binary"], "cannot read"),
    # show
    (["show", "nosuchrun"], "no run 'nosuchrun'"),
    (["show", ""], "no run named: give a run id"),  # "" began every id: the one run was shown
    (["show", "{dir}/list.json"], "is not a valid run record"),
    (["show", "{dir}/binary.json"], "cannot read run record"),
    (["show", "{dir}/not_json.json"], "cannot read run record"),
    (["show", "{dir}/no_version.json"], "schema version None"),
    (["show", "{dir}/bad_tables.json"], "is not a valid run record"),
    (["show", "{dir}/bad_cell.json"], "needs finite numbers low, mean and high"),
    (["show", "{dir}/path_run_id.json"], "is not a plain name"),
    # list
    (["list", "widget"], "unknown kind 'widget'"),
    # leaderboards
    (["leaderboard", "new", "x\n"], "board name"),
    (["leaderboard", "new", "../up"], "board name"),
    (["leaderboard", "new", "Upper"], "board name"),
    (["leaderboard", "new", "demo"], "already exists"),
    (["leaderboard", "new", "other", "-n", "0"], "budgets of at least 1"),
    (["leaderboard", "new", "other", "--task", "nope"], "unknown task 'nope'"),
    (["leaderboard", "build", "nope"], "no board 'nope'"),
    (["leaderboard", "add", "nope", "{run}"], "no board 'nope'"),
    (["leaderboard", "add", "demo", "{dir}/missing.json"], "no run"),
    (["leaderboard", "add", "demo", "{dir}/list.json"], "is not a run record"),
    (["leaderboard", "add", "demo", "{dir}/binary.json"], "is not a readable JSON run record"),
    (["leaderboard", "add", "demo", "{dir}/bad_cell.json"], "needs finite numbers"),
    (["leaderboard", "add", "demo", "{dir}/path_run_id.json"], "is not a plain name"),
    (["leaderboard", "add", "demo", "{run}"], "already on the board"),
    (["leaderboard", "check", "{dir}/bad_tables.json", "--board", "demo"], "malformed record"),
    # labelled data for training
    (["train", "--data", "{dir}/missing.jsonl", "--model", "m", "--out", "{dir}/o"], "missing"),
    (["train", "--data", "{dir}/binary.jsonl", "--model", "m", "--out", "{dir}/o"], "not UTF-8"),
    (["train", "--data", "{dir}/x.parquet", "--model", "m", "--out", "{dir}/o"], "Parquet"),
    (["train", "--data", "{dir}/empty.jsonl", "--model", "m", "--out", "{dir}/o"], "holds no"),
    (["train", "--data", "{dir}/not_json.jsonl", "--model", "m", "--out", "{dir}/o"], "not valid"),
    (["train", "--data", "{dir}/deep.jsonl", "--model", "m", "--out", "{dir}/o"], "too deeply"),
    # numbers no trainer can use: a traceback from the optimiser or peft, or (--beta nan) a
    # model of nan saved as if trained
    *[
        (
            [
                "train",
                "--data",
                "{dir}/labels.jsonl",
                "--model",
                "m",
                "--out",
                "{dir}/o",
                *option,
            ],
            message,
        )
        for option, message in [
            (["--lr", "nan"], "--lr must be a number > 0, got nan"),
            (["--epochs", "-1"], "--epochs must be a number > 0, got -1.0"),
            (["--lora-r", "0"], "--lora-r must be at least 1, got 0"),
            (["--head", "implicit", "--beta", "nan"], "--beta must be a number > 0, got nan"),
        ]
    ],
    (["show", "{dir}/deep.json"], "nested too deeply"),
    (["analyze", "calibration", "--prm", "oracle", "--rollouts", "{dir}/deep.jsonl"], "deeply"),
    # a simulated PRM has no head to convert: an AttributeError traceback
    (
        ["calibrate", "--prm", "oracle", "--rollouts", "{dir}/rollouts.jsonl", "--out", "{dir}/c"],
        "converts a released PRM's classifier or lm head; 'oracle' has none",
    ),
    (["train", "--data", "{dir}/wrong_fields.jsonl", "--model", "m", "--out", "{dir}/o"], "tell"),
    (
        ["train", "--data", "{dir}/steps_labels.jsonl", "--model", "m", "--out", "{dir}/o"],
        "1 steps",
    ),
    (["train", "--data", "{dir}/bad_label.jsonl", "--model", "m", "--out", "{dir}/o"], "label"),
    (
        [
            "train",
            "--data",
            "{dir}/steps_labels.jsonl",
            "--model",
            "m",
            "--out",
            "o",
            "--head",
            "x",
        ],
        "x",
    ),
    # rollouts, labels, analyses
    (["rollout", "--out", "{dir}/r.jsonl", "-k", "0"], "at least 1"),
    # 10**11 rollouts or samples filled memory with requests before any was sent; 10**9 bins
    # was a loop of a billion in Python
    (["rollout", "--out", "{dir}/r.jsonl", "-k", str(10**11)], "at most 65536, not 1000"),
    (["rollout", "--out", "{dir}/r.jsonl", "-n", str(10**11)], "--samples must be at most 65536"),
    (["label", "--out", "{dir}/l.jsonl", "-n", str(10**11)], "--samples must be at most 65536"),
    (
        [
            "analyze",
            "calibration",
            "--prm",
            "oracle",
            "--rollouts",
            "{dir}/rollouts.jsonl",
            "--bins",
            str(10**9),
        ],
        "1000000000 is not in the range 1<=x<=10000",
    ),
    # output files in a folder that is missing: refused before any work (was a traceback at the
    # end, after the rollouts or the figure were computed)
    (["rollout", "--out", "{dir}/missing/r.jsonl"], "/missing' (No such file or directory)"),
    (["label", "--out", "{dir}/missing/l.jsonl"], "/missing' (No such file or directory)"),
    (["export", "{run}", "--out", "{dir}/missing/x.csv"], "/missing' (No such file or directory)"),
    (["view", "{run}", "--out", "{dir}/missing/x.html"], "/missing' (No such file or directory)"),
    (["view", "{run}", "--serve", "--port", "99999"], "99999 is not in the range 0<=x<=65535"),
    # an output over a file prmh keeps: the store became a CSV, the record a page
    (["export", "{run}", "--out", "{dir}/results/store.sqlite"], "is a results directory's store"),
    (["export", "{run}", "--out", "{dir}/results/store.sqlite-wal"], "directory's store"),
    (["view", "{run}", "--out", "{run}"], "is where a run's record or per-sample results are kept"),
    (["export", "{run}", "--out", "{dir}/results/runs/new.json"], "where a run's record"),
    (["rollout", "--out", "{dir}/x.samples.jsonl.gz"], "per-sample results are kept"),
    # an empty --out is the current folder: the rollouts were computed, then os.replace failed
    (["rollout", "--out", ""], "'.' is a folder: name a file in it"),
    (
        ["export", "{run}", "--out", "{dir}/leaderboards/demo/records/x.json"],
        "leaderboard's record",
    ),
    # a board naming no real search could take no run; --limit 0 trained on every problem
    (["leaderboard", "new", "b2", "--task", "arith", "--search", "beem"], "unknown search 'beem'"),
    (["train-generator", "--model", "m", "--out", "{dir}/g", "--limit", "0"], "0 is not in the"),
    (["plot", "{run}", "--kind", "scaling", "--out", "{dir}/missing/x.png"], "cannot write in"),
    (["export", "{run}", "--format", "jsonl", "--out", "{dir}/x.csv"], "names a .csv file but"),
    (["analyze", "correlation", "--prm", "oracle", "--plot", "{dir}/missing/x.png"], "/missing'"),
    # zero bins reported an expected calibration error of 0.0 (perfect) from no bin at all
    (["analyze", "calibration", "--rollouts", "{dir}/empty.jsonl", "--bins", "0"], "1<=x<=10000"),
    (["rollout", "--out", "{dir}/r.jsonl", "--generator", "nope"], "unknown generator 'nope'"),
    (["label", "--out", "{dir}/l.jsonl", "--labeler", "nope"], "unknown labeler 'nope'"),
    (["label", "--out", "{dir}/l.jsonl", "-L", "n=x"], "option 'n' needs a whole number"),
    (["analyze", "correlation", "--prm", "oracle", "--thresholds", "0,5"], "positive token"),
    (["analyze", "correlation", "--prm", "oracle", "--thresholds", "a"], "whole numbers"),
    (["analyze", "correlation", "--prm", "nope"], "unknown prm 'nope'"),
    # checked after the data was loaded, if at all: nan flagged no step, 0 samples scored none
    (["analyze", "processbench", "--prm", "oracle", "--threshold", "nan"], "in [0, 1], not nan"),
    (["analyze", "processbench", "--prm", "oracle", "--threshold", "1.5"], "in [0, 1], not 1.5"),
    (["analyze", "processbench", "--prm", "oracle", "--limit", "0"], "--limit must be at least 1"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A results directory with a finished run, a board holding it, and the case files."""
    from click.testing import CliRunner

    from prmh.cli import cli

    root = tmp_path_factory.mktemp("bad")
    for name, content in _files(root).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "SELF":
            content = json.dumps({"recipe": str(path.parent), "options": {}})
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    runner = CliRunner()
    results = root / "results"
    done = runner.invoke(cli, ["eval", "--limit", "4", "-n", "1", "--results-dir", str(results)])
    assert done.exit_code == 0, done.output
    (run,) = (results / "runs").glob("*.json")
    boards = root / "leaderboards"
    assert runner.invoke(cli, ["leaderboard", "new", "demo", "--root", str(boards)]).exit_code == 0
    added = runner.invoke(cli, ["leaderboard", "add", "demo", str(run), "--root", str(boards)])
    assert added.exit_code == 0, added.output
    return root, results, boards, run


def _snapshot(*folders: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_the_table_is_large():
    assert len(CASES) >= 100


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(world, monkeypatch, args, message):
    from click.testing import CliRunner

    from prmh.cli import cli

    root, results, boards, run = world
    monkeypatch.chdir(root)
    monkeypatch.setenv("PRMH_RESULTS_DIR", str(results))
    args = [a.replace("{dir}", str(root)).replace("{run}", str(run)) for a in args]
    if args[0] == "leaderboard":
        args += ["--root", str(boards)]
    before = _snapshot(results, boards)
    result = CliRunner().invoke(cli, args)
    if message not in result.output:
        skip_without_extra(result.output)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert _snapshot(results, boards) == before
