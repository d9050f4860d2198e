"""The prmh command: the default matrix, tables, records, show, list, plugins and errors."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import PYTHON


def _eval_json(cli, *args):
    result = cli("eval", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _cell(table, label, search, budget):
    for row in table["rows"]:
        name = row.get("label") or f"{row['prm']} · {row['agg']} · {row['selector']}"
        if name == label:
            for cell in row["cells"]:
                if cell.get("budget") == budget and cell.get("search", search) == search:
                    return cell
    raise KeyError((label, search, budget))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One run of `prmh eval` with no options, shared by the tests that read its numbers."""
    from click.testing import CliRunner

    from prmh.cli import cli

    results = tmp_path_factory.mktemp("default")
    out = CliRunner().invoke(cli, ["eval", "--json", "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    return json.loads(out.output), results


def test_default_eval_makes_sense(default_run):
    """On arith with sim, best-of-N with the oracle beats majority voting and pass@1 at N >= 4."""
    record, _ = default_run
    assert record["status"] == "success"
    (table,) = record["metrics"]["tables"]
    assert table["problems"] == 200 and table["task"] == "arith" and table["generator"] == "sim"
    pass1 = _cell(table, "pass@N", "best-of-n", 1)["mean"]
    for budget in (4, 16):
        oracle = _cell(table, "oracle · mean · argmax", "best-of-n", budget)
        majority = _cell(table, "majority@N", "best-of-n", budget)
        assert oracle["mean"] > majority["mean"] + 0.1
        assert oracle["low"] > majority["high"]  # apart beyond their intervals
        assert oracle["mean"] > pass1 + 0.2
    # A noisy PRM is worse than the exact one, and more samples help it.
    noisy = [
        _cell(table, "oracle:noise=3 · mean · argmax", "best-of-n", n)["mean"] for n in (4, 16)
    ]
    exact = [_cell(table, "oracle · mean · argmax", "best-of-n", n)["mean"] for n in (4, 16)]
    assert noisy[0] < noisy[1] and noisy[1] < exact[1]
    # Compute grows with the budget: N samples scored by N PRM calls.
    c4 = _cell(table, "oracle · mean · argmax", "best-of-n", 4)["compute"]
    c16 = _cell(table, "oracle · mean · argmax", "best-of-n", 16)["compute"]
    assert c4["prm_calls"] == 4 and c16["prm_calls"] == 16
    assert c16["generated_tokens"] == pytest.approx(4 * c4["generated_tokens"], rel=0.1)


def test_default_record_is_complete(default_run):
    record, results = default_run
    assert record["schema_version"] == 1
    assert record["argv"] == ["eval", "--json", "--results-dir", str(results)]
    config = record["config"]
    assert [p["label"] for p in config["prm"]] == ["oracle", "oracle:noise=3"]
    assert config["prm"][1]["args"]["noise"] == 3 and "confidence" in config["prm"][1]["args"]
    assert config["budget"] == [1, 4, 16] and config["seed"] == [0]
    assert config["graders"] == [{"name": "numeric", "version": "1"}]
    assert {"prmh", "?"} >= {p["distribution"] for p in config["plugins"]}
    assert record["libraries"]["python"] and record["libraries"]["pluggy"]
    grading = record["metrics"]["tables"][0]["grading"]
    assert grading["answers"] > 100 and grading["timed_out"] == grading["errors"] == 0
    assert set(record["git"]) == {"revision", "dirty"}
    assert (results / "runs" / f"{record['run_id']}.json").is_file()


def test_show_re_renders_without_recomputing(default_run, cli):
    record, results = default_run
    before = (results / "store.sqlite").stat().st_mtime_ns
    shown = cli("show", record["run_id"][:17], "--results-dir", str(results), "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.output)["metrics"] == record["metrics"]
    table = cli("show", "latest", "--results-dir", str(results))
    assert "oracle · mean · argmax" in table.output and "majority@N" in table.output
    assert (results / "store.sqlite").stat().st_mtime_ns == before


def test_rerun_uses_the_store_and_gives_the_same_numbers(cli):
    first = _eval_json(cli, "--limit", "20", "-n", "2", "-n", "4")
    again = _eval_json(cli, "--limit", "20", "-n", "4", "-n", "2")
    assert again["metrics"]["cache"]["computed"] == {
        "generation": 0,
        "score": 0,
        "grade": 0,
        "vote key": 0,
    }
    assert first["metrics"]["tables"] == again["metrics"]["tables"]
    # A smaller budget reads the same pool: nothing new to generate.
    smaller = _eval_json(cli, "--limit", "20", "-n", "1", "--pool", "4")
    assert smaller["metrics"]["cache"]["computed"]["generation"] == 0


def test_table_output(cli):
    result = cli("eval", "--limit", "10", "-n", "2", "--prm", "oracle", "--agg", "min")
    assert result.exit_code == 0
    for text in (
        "accuracy % [95% CI]",
        "pass@N",
        "majority@N",
        "oracle · min · argmax",
        "best-of-n",
        "N=2",
        "compute per problem",
        "record:",
    ):
        assert text in result.output


def test_matrix_options_and_config_file(cli, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        'prm = ["oracle"]\nagg = "last"\nselector = ["argmax", "majority"]\nbudget = [2]\n'
        "limit = 12\nseed = [0, 1]\n[generator_args]\nslip_rate = 0.2\n"
        "[prm_args.oracle]\nnoise = 1.0\n"
    )
    record = _eval_json(cli, "--config", str(config), "-n", "3")  # the option wins over the file
    config_used = record["config"]
    assert config_used["budget"] == [3] and config_used["seed"] == [0, 1]
    assert config_used["generator"][0]["args"]["slip_rate"] == 0.2
    assert config_used["prm"][0]["args"]["noise"] == 1.0
    (table,) = record["metrics"]["tables"]
    labels = {f"{r['prm']} · {r['agg']} · {r['selector']}" for r in table["rows"] if "prm" in r}
    assert labels == {"oracle:noise=1.0 · last · argmax", "oracle:noise=1.0 · last · majority"}
    assert table["problems"] == 12 and table["seeds"] == [0, 1]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prm", "oracel"], "unknown prm 'oracel'. Close matches: oracle"),
        (["-n", "0"], "--budget must be a whole number >= 1, got 0"),
        (["-n", "-3"], "--budget must be a whole number >= 1, got -3"),
        (["-n", "8", "--pool", "4"], "budget 8 is larger than the pool of 4 samples"),
        (["-P", "nosie=1"], "prm 'oracle' has no option 'nosie'. Did you mean noise?"),
        (["-G", "slip_rate=3"], "sim option slip_rate must be in [0, 1]"),
        (["-T", "split=dev"], "arith has splits test, train"),
        (["-P", "noise"], "expected key=value, got 'noise'"),
        (["--limit", "0"], "--limit must be a whole number >= 1"),
        (["--grading-timeout", "0"], "--grading-timeout must be a positive"),
        (["--grading-timeout", "nan"], "positive number of seconds up to 86400"),
        (["--grading-timeout", "inf"], "positive number of seconds up to 86400"),
        (["-P", "noise=nan"], "option 'noise' needs a finite number, got nan"),
        (["-P", "noise=inf"], "option 'noise' needs a finite number, got inf"),
        (["--config", "/no/such/file.toml"], "cannot read config"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(cli, args, message):
    result = cli("eval", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (cli.results_dir / "runs").exists() or not any((cli.results_dir / "runs").iterdir())


def test_malformed_config(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('prm = ["oracle"\nbudget = 4\n')
    result = cli("eval", "--config", str(bad))
    assert (
        result.exit_code == 2 and "is not valid TOML" in result.output and "line" in result.output
    )
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("budgets = [4]\n")
    result = cli("eval", "--config", str(unknown))
    assert result.exit_code == 2 and "unknown key(s) budgets" in result.output


def test_errors_keep_what_is_stored(cli):
    assert cli("eval", "--limit", "5", "-n", "2").exit_code == 0
    from prmh.store import Store

    before = Store(cli.results_dir).count()
    assert cli("eval", "--limit", "5", "-n", "2", "--prm", "nope").exit_code == 2
    assert cli("eval", "--limit", "5", "-n", "0").exit_code == 2
    assert Store(cli.results_dir).count() == before


def test_show_unknown_run(cli):
    result = cli("show", "20990101")
    assert result.exit_code == 2 and "no run '20990101'" in result.output


def test_list_and_plugins(cli):
    result = cli("list", "prm")
    assert result.exit_code == 0 and "oracle" in result.output and "sim" not in result.output
    everything = json.loads(cli("list", "--json").output)
    assert {"task", "generator", "prm", "search"} <= {e["kind"] for e in everything}
    bad = cli("list", "prms")
    assert bad.exit_code == 2 and "unknown kind 'prms'" in bad.output
    plugins = json.loads(cli("plugins", "--json").output)
    builtin = {p["name"]: p for p in plugins["plugins"]}["prmh.plugins.oracle"]
    assert builtin["distribution"] == "prmh" and builtin["hooks"] == ["prmh_register_prm"]
    assert plugins["failures"] == []


def test_every_out_option_is_also_dash_o(cli, tmp_path):
    """Every command that writes a file or folder given by ``--out`` also takes ``-o`` (as
    compilers, curl and most CLIs do), and only for that option."""
    import importlib
    import re
    from inspect import getsource

    import click

    from prmh.cli import BUILT_IN
    from prmh.cli import cli as group

    for module in set(BUILT_IN.values()):
        importlib.import_module(f"prmh.cli.{module}")

    def commands(command: click.Command, path: str):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, f"{path} {name}")

    seen = 0
    for path, command in commands(group, "prmh"):
        for param in command.params:
            assert ("-o" in param.opts) == ("--out" in param.opts), (path, param.opts)
            seen += "--out" in param.opts
    assert seen >= 6
    cli("eval", "--world", "sim", "--limit", "3", "-n", "2")
    assert cli("export", "latest", "-o", str(tmp_path / "x.csv")).exit_code == 0
    assert (tmp_path / "x.csv").read_text().startswith("task,")
    # every command that writes a run record says where: train, calibrate and
    # train-generator wrote theirs to the default folder and refused --results-dir
    recording = [
        (path, command)
        for path, command in commands(group, "prmh")
        if command.callback and re.search(r"\b(opened|_analysis)\(", getsource(command.callback))
    ]
    assert {"prmh train", "prmh calibrate", "prmh train-generator"} <= {p for p, _ in recording}
    for path, command in recording:
        assert any("--results-dir" in param.opts for param in command.params), path


def test_version_and_help_run_as_a_program():
    from prmh import __version__

    out = subprocess.run([PYTHON, "-m", "prmh", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
    help_text = subprocess.run([PYTHON, "-m", "prmh", "--help"], capture_output=True, text=True)
    for command in ("eval", "list", "plugins", "show"):
        assert command in help_text.stdout


def test_a_real_error_exits_2_without_traceback(tmp_path):
    out = subprocess.run(
        [PYTHON, "-m", "prmh", "eval", "--prm", "nope", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("Error: unknown prm 'nope'") and "Traceback" not in out.stderr


def test_answers_that_time_out_are_counted_and_shown(cli):
    args = [
        "eval",
        "-T",
        "grader=grading_helpers:hang_if_negative",
        "--grading-timeout",
        "0.5",
        "--prm",
        "oracle",
        "--agg",
        "mean",
        "-n",
        "8",
        "--limit",
        "30",
    ]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    grading = json.loads(result.output)["metrics"]["tables"][0]["grading"]
    assert grading["timed_out"] > 0 and grading["errors"] == 0
    shown = cli(*args)  # from the store: the counts survive a re-run
    assert (
        f"grading: {grading['timed_out']} of {grading['answers']} distinct answers timed out"
        in shown.output
    )


def test_credentials_never_reach_the_terminal_or_the_record(cli):
    """A key in base_url (user:KEY@host) or in api_key is masked in the error, the record and
    every file of the results directory."""
    secret = "SECRETKEY123"
    openai = ["eval", "--generator", "openai", "-G", "model=m", "-G", f"api_key={secret}"]
    url = f'base_url="http://user:{secret}@127.0.0.1:9/v1"'
    result = cli(*openai, "-G", url, "-G", "retries=0", "--limit", "2", "-n", "1")
    assert result.exit_code == 2 and "***@127.0.0.1" in result.output
    assert secret not in result.output
    for path in cli.results_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    typed = cli(*openai, "-G", "top_p=abc")
    assert typed.exit_code == 2 and "'top_p' needs a finite number" in typed.output
    assert secret not in typed.output


def test_a_run_whose_process_died_is_shown_as_interrupted(cli):
    """A record left "started" by a process that no longer exists (or whose pid now belongs to
    a newer process) reads as interrupted in `prmh show` and after the next run."""
    import json
    import os
    import platform
    import subprocess
    import sys
    import time

    assert cli("eval", "--limit", "2", "-n", "1").exit_code == 0
    (path,) = (cli.results_dir / "runs").glob("*.json")
    record = json.loads(path.read_text())
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    record.update(status="started", owner={"host": platform.node(), "pid": int(dead)})
    path.write_text(json.dumps(record))
    shown = cli("show", record["run_id"])
    assert shown.exit_code == 0 and "interrupted" in shown.output
    assert json.loads(path.read_text())["status"] == "interrupted"
    # this very process is alive and began before the run: the run is still going
    record.update(status="started", owner={"host": platform.node(), "pid": os.getpid()})
    record["started"] = time.time()
    path.write_text(json.dumps(record))
    assert "started" in cli("show", record["run_id"]).output
    assert json.loads(path.read_text())["status"] == "started"
    record["started"] = 0.0  # a pid that started after the run: reused
    path.write_text(json.dumps(record))
    assert cli("eval", "--limit", "2", "-n", "1").exit_code == 0
    assert json.loads(path.read_text())["status"] == "interrupted"


def test_one_components_options_are_listed(cli):
    shown = cli("list", "prm", "oracle")
    assert shown.exit_code == 0
    lines = {line.split()[0]: line.split()[1:] for line in shown.output.splitlines()[2:] if line}
    assert lines["noise"] == ["float", "0.0"] and lines["quantiles"] == ["bool", "False"]
    data = json.loads(cli("list", "generator", "vllm", "--json").output)
    assert data["options"][0] == {"name": "model", "type": "str", "default": "(required)"}
    assert "prmh[vllm]" in cli("list", "generator").output  # brackets are text, not markup
    assert all(len(line) <= 130 for line in cli("list").output.splitlines())
    unknown = cli("list", "prm", "oracel")
    assert unknown.exit_code == 2 and "Close matches: oracle" in unknown.output
    # the tiny world's PRM: the recipe's documentation, not the internal preset class's
    tiny = cli("list", "prm", "tiny").output
    assert "An implicit PRM: sigmoid" in tiny and "shipped checkpoint preset" not in tiny
    assert "max_length              int >= 1 | None" in tiny


def test_a_directory_without_prmh_prm_json_says_how_to_name_the_recipe(cli, tmp_path):
    result = cli("eval", "--prm", str(tmp_path), "--limit", "2", "-n", "1")
    assert result.exit_code == 2 and "without prmh_prm.json" in result.output
    assert f"--prm value-head -P model={tmp_path}" in result.output


def test_records_are_readable_by_the_group(cli):
    import os
    import stat

    old = os.umask(0o022)
    try:
        assert cli("eval", "--limit", "2", "-n", "1").exit_code == 0
    finally:
        os.umask(old)
    (path,) = (cli.results_dir / "runs").glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_reference_rows_say_where_they_come_from(cli):
    shown = cli("eval", "--limit", "3", "-n", "2", "--search", "best-of-n", "--search", "beam")
    assert "pass@N and majority@N come from the pool of N samples" in shown.output
    plain = cli("eval", "--limit", "3", "-n", "2")
    assert "come from the pool" not in plain.output


def test_the_python_api_runs_an_evaluation_and_returns_its_tables(tmp_path):
    """prmh.evaluate takes the config file's keys and returns the record and tables; a second
    call computes nothing; the CLI's record for the same plan has the same cells."""
    import prmh

    result = prmh.evaluate(task="arith", world="sim", limit=20, results_dir=tmp_path)
    assert result.record["status"] == "success" and len(result.tables) == 1
    cells = result.accuracy()
    assert {c["row"] for c in cells} >= {"pass@N", "majority@N", "oracle · mean · argmax"}
    assert all(0 <= c["low"] <= c["mean"] <= c["high"] <= 1 for c in cells)
    again = prmh.evaluate(task="arith", world="sim", limit=20, results_dir=tmp_path)
    assert set(again.record["metrics"]["cache"]["computed"].values()) == {0}
    assert [(c["row"], c["mean"]) for c in again.accuracy()] == [
        (c["row"], c["mean"]) for c in cells
    ]
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(result)
    assert "oracle · mean · argmax" in console.export_text()
    from prmh.errors import PrmhError

    with pytest.raises(PrmhError, match="unknown key"):
        prmh.evaluate(colour="red")


def test_a_cached_rerun_says_whose_seconds_the_compute_table_shows(cli):
    first = cli("eval", "--limit", "3", "-n", "2")
    assert "as spent by the run that computed" not in first.output
    again = cli("eval", "--limit", "3", "-n", "2")
    assert "seconds: as spent by the run that computed each result" in again.output


def test_progress_is_plain_lines_in_logs(tmp_path):
    """Not on a terminal (CI, SLURM): one line per stage when it ends, and every N seconds."""
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "prmh", "eval", "--limit", "10", "-n", "2"]
    args += ["--results-dir", str(tmp_path / "r")]
    env = {**os.environ, "PRMH_WORLD": "sim"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "generate sim: 20/20" in done.stderr and "score oracle:" in done.stderr
    assert all(": " in line and "/" in line for line in lines)
    often = {**env, "PRMH_PROGRESS_SECONDS": "0"}
    fresh = [*args[:-1], str(tmp_path / "again")]
    chatty = subprocess.run(fresh, capture_output=True, text=True, env=often, timeout=120)
    assert len(chatty.stderr.splitlines()) > len(lines)
    for bad in ("soon", "-1", "nan", "inf"):  # a traceback once; now one line, nothing written
        refused = subprocess.run(
            [*args[:-1], str(tmp_path / bad)],
            capture_output=True,
            text=True,
            env={**env, "PRMH_PROGRESS_SECONDS": bad},
            timeout=120,
        )
        assert refused.returncode == 2, refused.stderr
        assert f"PRMH_PROGRESS_SECONDS must be a number of seconds >= 0, got '{bad}'" in (
            refused.stderr
        )
        assert "Traceback" not in refused.stderr and not (tmp_path / bad / "runs").exists()


def test_a_stage_done_in_one_report_shows_no_rate(capsys):
    """A stage whose first report is its last (8 solutions scored in one batch) printed
    "8/8 (0.0/s)": no time had passed between its reports to tell a rate by."""
    from prmh.progress import _ProgressLines

    clock = iter([10.0, 20.0, 20.0, 24.0])
    lines = _ProgressLines(every=30)
    lines.clock = lambda: next(clock)
    lines("score tiny", 8, 8)  # at 10 s: its only report
    lines("generate", 0, 40)  # at 20 s: started, not shown (less than 30 s since)
    lines("generate", 40, 40)  # at 20 s again: done, no time passed
    lines("grade", 5, 5)  # at 24 s
    assert capsys.readouterr().err.splitlines() == [
        "score tiny: 8/8",
        "generate: 40/40",
        "grade: 5/5",
    ]
    clock = iter([0.0, 2.0])
    lines = _ProgressLines(every=30)
    lines.clock = lambda: next(clock)
    lines("generate", 10, 40)  # at 0 s: started, not shown
    lines("generate", 40, 40)  # at 2 s
    assert capsys.readouterr().err.splitlines() == ["generate: 40/40 (20.0/s)"]


def test_a_stage_that_recurs_is_not_a_line_per_call(capsys):
    """Each round of a beam search extends and scores again, and a labeler rolls out each
    prefix in turn: every call's end printed a line ("rollout sim: 8/8" 68 times for 3 code
    problems), at a rate measured from the stage's first call. Now the first end shows, later
    calls only every 30 s, numbered, with their own rate."""
    from prmh.progress import _ProgressLines

    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 31.0, 33.0, 40.0, 61.0])
    lines = _ProgressLines(every=30)
    lines.clock = lambda: next(clock)
    lines("extend sim", 0, 8)  # 0 s: call 1
    lines("extend sim", 8, 8)  # 1 s: its end shows
    for done in (0, 8, 0, 8):  # 2-5 s: calls 2 and 3 end unseen
        lines("extend sim", done, 8)
    lines("extend sim", 0, 10)  # 31 s: call 4 starts, 30 s since the last line
    lines("extend sim", 4, 10)  # 33 s: too soon
    lines("extend sim", 10, 10)  # 40 s: its end, too soon
    lines("extend sim", 6, 12)  # 61 s: call 5, told by its count falling (no 0 reported)
    assert capsys.readouterr().err.splitlines() == [
        "extend sim: 8/8 (8.0/s)",
        "extend sim, call 4: 0/10",
        "extend sim, call 5: 6/12",
    ]


def test_progress_bars_on_a_terminal_start_on_the_first_report(monkeypatch, capsys):
    """On a terminal nothing is drawn (nor rich's progress module imported) until a stage
    reports; then its bar counts done/total and is cleared when the command ends."""
    import sys

    from prmh.progress import progress_bars

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delitem(sys.modules, "rich.progress", raising=False)
    bars = progress_bars()
    report = bars.__enter__()
    assert bars.bars is None and "rich.progress" not in sys.modules
    report("score oracle", 3, 8)
    assert bars.bars.tasks[0].completed == 3 and bars.bars.tasks[0].total == 8
    report("score oracle", 8, 8)
    bars.__exit__(None, None, None)
    assert bars.bars.finished and not bars.bars.live.is_started


def test_a_stage_name_is_shown_as_written_on_a_terminal(monkeypatch):
    """A stage's name holds the user's specs (a model path): its bar shows it as written, where
    rich markup raised on ``[/x]`` and turned ``:smile:`` into an emoji."""
    from prmh.progress import progress_bars

    monkeypatch.setenv("FORCE_COLOR", "1")
    bars = progress_bars()
    report = bars.__enter__()
    stage = "score prm:model=/runs/[/bold]:smile:"
    report(stage, 1, 2)
    bars.__exit__(None, None, None)
    assert bars.bars.columns[0].render(bars.bars.tasks[0]).plain == stage


def test_paths_print_as_written(cli, tmp_path):
    """A results directory named with rich markup and an emoji code: the run's tables and the
    record's path print, the path as written (rich read ``[/bold]`` as a closing tag and raised
    after the run had finished)."""
    where = tmp_path / "x[/bold]y:smile:"
    result = cli("eval", "--limit", "5", "-n", "2", "--prm", "oracle", "--results-dir", str(where))
    assert result.exit_code == 0, result.output
    assert f"record: {where}/runs/" in result.output


def test_every_long_command_reports_progress_in_logs(tmp_path):
    """rollout, label and the analyses print the same plain progress lines as eval when their
    output is not a terminal (train and calibrate report optimiser steps the same way)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PRMH_PROGRESS_SECONDS": "0"}
    base = [sys.executable, "-m", "prmh"]
    common = ["--limit", "4", "-n", "2", "--results-dir", str(tmp_path / "r")]
    for command in (
        ["rollout", *common, "-k", "2", "--out", str(tmp_path / "rollouts.jsonl")],
        ["label", *common, "--out", str(tmp_path / "labels.jsonl")],
        ["analyze", "correlation", "--prm", "oracle", *common, "--thresholds", "4,8"],
    ):
        done = subprocess.run(
            [*base, *command], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert lines and all(": " in line and "/" in line for line in lines), command
        stages = ("generate sim", "rollout sim", "cut and score oracle")
        assert any(stage in done.stderr for stage in stages), command


def test_latest_is_the_last_run_started_even_within_one_second(cli):
    """Run ids name the second they were made and a random suffix, so two runs of one second
    do not sort by time; "latest" still finds the last one started."""
    import json

    from prmh.lookup import find_record

    assert cli("eval", "--limit", "2", "-n", "1").exit_code == 0
    runs = cli.results_dir / "runs"
    (made,) = runs.glob("*.json")
    record = json.loads(made.read_text())
    made.unlink()
    for suffix, started in (("ffffff", 1.0), ("000000", 2.0)):
        run_id = f"20260101-000000-{suffix}"
        (runs / f"{run_id}.json").write_text(json.dumps({**record, "run_id": run_id,
                                                         "started": started}))  # fmt: skip
    assert find_record(cli.results_dir, "latest")["run_id"] == "20260101-000000-000000"


def test_a_record_nested_past_jsons_depth_does_not_stop_later_commands(cli):
    """Every command looks for records of dead runs in runs/; one nested deeper than json's
    decoder goes (merged in from elsewhere) raised RecursionError in all of them. It is left
    alone, like any record that is not JSON."""
    assert cli("eval", "--limit", "2", "-n", "1").exit_code == 0
    odd = cli.results_dir / "runs" / "20200101-000000-abcdef.json"
    odd.write_text('{"status": "started", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    again = cli("eval", "--limit", "3", "-n", "1")
    assert again.exit_code == 0, again.output
    assert odd.read_text().startswith('{"status": "started"')


def test_an_ascii_only_terminal_gets_the_tables(tmp_path):
    """Where stdout takes ASCII alone (PYTHONIOENCODING=ascii, some logs), the tables print
    with ASCII boxes and "?" for the rest ("×", "·"): it was a UnicodeEncodeError traceback
    after the run had finished."""
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "prmh", "eval", "--limit", "2", "-n", "1"]
    env = {**os.environ, "PRMH_WORLD": "sim", "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [*args, "--results-dir", str(tmp_path / "r")], capture_output=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert b"arith ? sim: accuracy" in done.stdout and b"oracle ? mean ? argmax" in done.stdout


ESCAPES = "ar\x1b[2J\x1b]0;owned\x07ith\u202e\x9b31m"  # clear, retitle, reorder, C1 CSI
WRITTEN = "ar\\x1b[2J\\x1b]0;owned\\x07ith\\u202e\\x9b31m"


def test_control_codes_from_a_record_never_reach_the_terminal(cli, tmp_path):
    """A stranger's record whose task and PRM names hold terminal escape sequences (clear the
    screen, set the window title, the bidirectional override that reorders what is shown, a
    C1 control): ``prmh show``, on a terminal with colour, writes them out as ``\\x1b`` and
    ``\\u202e``, with rich's own colour codes intact; they reached the terminal as they were
    (ECMA-48 control functions; Unicode's bidirectional algorithm, UAX #9)."""
    import json

    from prmh.report import literal_console, print_record

    done = cli("eval", "--world", "sim", "--limit", "4", "-n", "1", "--json")
    record = json.loads(done.output)
    record["metrics"]["tables"][0]["task"] = ESCAPES
    next(r for r in record["metrics"]["tables"][0]["rows"] if r["kind"] == "prm")["prm"] = ESCAPES
    console = literal_console(force_terminal=True, color_system="standard", width=300)
    with console.capture() as captured:
        print_record(record, console)
    shown = captured.get()
    assert shown.count(WRITTEN) == 3 and "\x1b[1m" in shown  # rich's bold: codes of its own
    assert not any(c in shown.replace("\x1b[", "") for c in "\x07\x9b\u202e")
    assert "\x1b[2J" not in shown and "\x1b]0;" not in shown


def test_json_output_is_strict(capsys):
    """``--json`` prints strict JSON: Python's ``NaN`` (an undefined correlation) broke jq and
    ``JSON.parse`` (RFC 8259 has no such number); it is null."""
    import json

    from prmh.cli.common import print_json

    print_json({"r": float("nan"), "n": 3, "inf": [float("inf")]})

    def refuse(token):
        raise ValueError(token)

    assert json.loads(capsys.readouterr().out, parse_constant=refuse) == {
        "r": None, "n": 3, "inf": [None]
    }  # fmt: skip


def test_a_commands_summary_spells_out_what_it_holds():
    """``prmh show`` of a training run printed every step's loss (thousands of numbers in a
    long run), and a label run's choice as a Python dict."""
    from prmh.report import _summary

    metrics = {"losses": [3.69587, 3.1, 2.9, 2.5, 2.31234], "steps": 5, "short": [1, 2],
               "selected": {"chosen": 12, "from": 40, "how": "uncertainty"}}  # fmt: skip
    assert _summary(metrics) == (
        "losses (5 values: 3.696 ... 2.312), steps 5, short [1, 2], "
        "selected (chosen 12, from 40, how uncertainty)"
    )
