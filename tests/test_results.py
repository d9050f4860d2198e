"""Per-sample results: every cell, problem, candidate and scored step of a run, kept beside its
record, read back at each level and exported; the numbers agree with the run's own table."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json

import pytest

import prmh
from prmh.results import LEVELS

MATRIX = {
    "world": "sim",
    "prm": ["oracle", "oracle:noise=3"],
    "agg": ["min", "last"],
    "selector": ["argmax", "weighted-vote"],
    "search": ["best-of-n", "beam", "bon-ias"],
    "budget": [1, 4],
    "seed": [0, 1],
    "limit": 12,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    first = prmh.evaluate(**MATRIX, results_dir=results)
    again = prmh.evaluate(**MATRIX, results_dir=results)  # resumed: all from the store
    return results, first, again


def test_row_counts_follow_the_matrix(run):
    results, first, _ = run
    data = prmh.load_run(first.run_id, results)
    cells = 2 * 2 * 2 * 3 * 2 * 2  # prm x agg x selector x search x budget x seed
    assert len(data.rows("cell")) == cells
    assert len(data.rows("problem")) == cells * 12
    searches = [line for line in data.lines if line["t"] == "cell"]
    assert len(searches) == cells // 2 * 12  # selectors share a search cell
    candidates = data.rows("candidate")
    assert len(candidates) == sum(len(c["candidates"]) for c in searches)
    scored = [line for line in data.lines if line["t"] == "scores"]
    solutions = {s["id"]: s for s in data.lines if s["t"] == "solution"}
    steps = data.rows("step")
    assert len(steps) == sum(len(solutions[s["solution"]]["steps"]) for s in scored)
    for level, rows in (("cell", data.rows("cell")), ("step", steps)):
        assert all(list(r) == list(LEVELS[level]) for r in rows)


def test_cells_agree_with_the_table(run):
    """Each cell's accuracy, averaged over seeds, is the table's number for it."""
    results, first, _ = run
    frame = prmh.load_run(first.run_id, results).to_pandas("cell")
    means = frame.groupby(["prm", "agg", "selector", "search", "budget"]).accuracy.mean()
    compared = 0
    for table in first.tables:
        for row in table["rows"]:
            if row["kind"] != "prm":
                continue
            for cell in row["cells"]:
                key = (row["prm"], row["agg"], row["selector"], cell["search"], cell["budget"])
                assert means[key] == pytest.approx(cell["mean"]), key
                compared += 1
    assert compared == 2 * 2 * 2 * 3 * 2


def test_problem_rows_carry_the_choice_and_its_grade(run):
    results, first, _ = run
    data = prmh.load_run(first.run_id, results)
    rows = data.rows("problem")
    plain = [r for r in rows if r["search"] != "bon-ias"]
    assert all(r["outcome"] in ("right", "wrong", "no answer") for r in plain)
    assert all(r["correct"] == (r["outcome"] == "right") for r in plain)
    bon_ias = {r["outcome"] for r in rows if r["search"] == "bon-ias"}
    assert bon_ias <= {"subsets", "right", "wrong", "no answer"}
    candidates = data.rows("candidate")
    chosen = {
        (c["prm"], c["agg"], c["search"], c["budget"], c["seed"], c["problem_id"], s): c
        for c in candidates
        for s in c["chosen_by"].split(";")
        if s
    }
    for r in plain:
        key = (r["prm"], r["agg"], r["search"], r["budget"], r["seed"], r["problem_id"])
        if r["chosen"] is not None:
            assert chosen[(*key, r["selector"])]["answer"] == r["answer"]
    argmax = [
        r
        for r in plain
        if r["selector"] == "argmax" and r["search"] == "best-of-n" and r["candidates"]
    ]
    by_key = {}
    for c in candidates:
        by_key.setdefault(
            (c["prm"], c["agg"], c["search"], c["budget"], c["seed"], c["problem_id"]), []
        ).append(c)
    for r in argmax:  # argmax picks the highest score, the earliest on ties
        group = by_key[(r["prm"], r["agg"], r["search"], r["budget"], r["seed"], r["problem_id"])]
        best = max(group, key=lambda c: (c["score"], -c["candidate"]))
        assert r["chosen"] == best["candidate"]


def test_a_resumed_run_writes_the_same_samples(run):
    results, first, again = run
    assert not any(again.record["metrics"]["cache"]["computed"].values())
    names = [r.record["metrics"]["samples"] for r in (first, again)]
    files = [(results / "runs" / n).read_bytes() for n in names]
    assert names[0] != names[1] and files[0] == files[1]


@pytest.mark.parametrize(
    ("level", "fmt"), list(itertools.product(LEVELS, ("csv", "jsonl", "parquet")))
)
def test_export_at_each_level(cli, run, level, fmt, tmp_path):
    import pandas as pd

    results, first, _ = run
    expected = prmh.load_run(first.run_id, results).rows(level)
    out = tmp_path / f"x.{fmt}"
    done = cli("export", first.run_id, "--results-dir", str(results), "--level", level,
               "--format", fmt, "--out", str(out))  # fmt: skip
    assert done.exit_code == 0, done.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert list(rows[0]) == list(LEVELS[level])
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows == expected
    else:
        rows = pd.read_parquet(out)
        assert list(rows.columns) == list(LEVELS[level])
    assert len(rows) == len(expected)


def test_export_takes_the_format_from_the_files_suffix(cli, run, tmp_path):
    """``--out x.parquet`` without --format writes Parquet (it wrote CSV into x.parquet)."""
    import pandas as pd

    results, first, _ = run
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / f"x.{fmt}"
        done = cli("export", first.run_id, "--results-dir", str(results), "--out", str(out))
        assert done.exit_code == 0 and f"(problem level, {fmt})" in done.output
    assert list(pd.read_parquet(tmp_path / "x.parquet").columns) == list(LEVELS["problem"])
    json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])


def test_export_refuses_what_it_cannot_do(cli, run, tmp_path):
    results, first, _ = run
    binary = cli("export", first.run_id, "--results-dir", str(results), "--format", "parquet")
    assert binary.exit_code == 2 and "--out" in binary.output
    record = json.loads((results / "runs" / f"{first.run_id}.json").read_text())
    record["metrics"].pop("samples")
    old = tmp_path / "runs" / "old.json"
    old.parent.mkdir()
    old.write_text(json.dumps(record))
    missing = cli("export", str(old))
    assert missing.exit_code == 2 and "no per-sample results" in missing.output


def _candidate(text: str, score: float):
    from prmh.types import Candidate, Generation, Solution, StepScores

    solution = Solution(Generation(text, True, 1), (text,), text)
    return Candidate(solution, StepScores((score,)), score)


def test_a_budget_that_extends_the_last_is_written_as_its_new_candidates(tmp_path):
    """Budgets whose candidates begin with the previous budget's (the same objects) are
    written as the new candidates only, with ``extends``; read back, every cell line holds its
    whole list and the problems of the line it extends. A budget that does not extend (other
    objects, or another cell) is whole."""
    from prmh.samples import SampleLog, read_samples
    from prmh.types import Compute, Problem, SearchResult

    a, b, c, d, e = (
        _candidate(t, s) for t, s in zip("12345", (0.5, 0.25, 0.75, 0, 0.1), strict=True)
    )
    budgets = {1: [(a,), (c,)], 2: [(a, b), (c,)], 4: [(a, b, d), (e,)]}
    where = {"task": "t", "generator": "g", "prm": "p", "splitter": "s", "agg": "min",
             "search": "best-of-n", "seed": 0}  # fmt: skip
    log = SampleLog()
    log.add_problems("t", [Problem(q, "question", "1") for q in "xy"])
    for search in ("best-of-n", "beam"):
        for budget, rows in budgets.items():
            results = [
                SearchResult(q, row, Compute(len(row))) for q, row in zip("xy", rows, strict=True)
            ]
            chosen = {"argmax": [(0,) for _ in rows]}
            log.add_cell({**where, "search": search, "budget": budget}, results, chosen)
    log.write(tmp_path / "s.jsonl.gz")
    with gzip.open(tmp_path / "s.jsonl.gz", "rt") as f:
        written = [json.loads(line) for line in f if '"cells"' in line]
    assert [line.get("extends") for line in written] == [None, 1, None] * 2
    assert [len(x) for x in written[1]["candidates"]] == [1, 0]  # b after a; c again: nothing
    assert ["problem" in line for line in written] == [True, False, True] * 2  # extends: its own
    lines = [x for x in read_samples(tmp_path / "s.jsonl.gz") if x["t"] == "cell"]
    number = {s: i for i, s in enumerate("13245")}  # solutions are numbered as first seen
    for line in lines:
        row = budgets[line["budget"]]["xy".index(line["problem"])]
        expected = [[number[x.solution.text], x.score] for x in row]
        assert line["candidates"] == expected, line
        assert line["compute"]["generated_tokens"] == len(row)
    assert len(lines) == 2 * 3 * 2


def test_a_samples_file_whose_budget_extends_nothing_is_refused(tmp_path):
    from prmh.errors import PrmhError
    from prmh.samples import read_samples

    line = {"t": "cells", "task": "t", "search": "best-of-n", "budget": 4, "extends": 2,
            "problem": ["x"], "candidates": [[[0, 0.5]]], "chosen": {}, "compute": {}}  # fmt: skip
    with gzip.open(tmp_path / "s.jsonl.gz", "wt") as f:
        f.write(json.dumps(line) + "\n")
    with pytest.raises(PrmhError, match="extends budget 2, which no earlier line"):
        read_samples(tmp_path / "s.jsonl.gz")


def _rewrite(path, edit):
    lines = [json.loads(x) for x in gzip.open(path, "rt")]
    text = edit(lines)
    with gzip.open(path, "wt") as f:
        f.write(text if isinstance(text, str) else "".join(json.dumps(x) + "\n" for x in text))


def _first(lines, kind):
    return next(x for x in lines if x["t"] == kind)


DAMAGE = {
    "truncated": (None, "EOFError"),
    "not gzip": (None, "BadGzipFile"),
    "not JSON": (lambda lines: "{not json\n", "JSONDecodeError"),
    "one endless line": (None, "a line longer than 67,108,864 characters"),
    "a list": (lambda lines: [[1, 2], *lines], "not an entry of a known type"),
    "no budget": (lambda lines: [{**_first(lines, "cells"), "budget": None}], "budget"),
    "choice out of range": (
        lambda lines: [
            {**x, "chosen": {"argmax": [[99]] * len(x["problem"])}} if x["t"] == "cells" else x
            for x in lines
        ],
        "choices are not indices of its candidates",
    ),
    "unknown solution": (
        lambda lines: [*lines, {**_first(lines, "scores"), "solution": 10**6}],
        "scores of solution 1000000, which the file lacks",
    ),
    "text scores": (
        lambda lines: [{**x, "probs": ["\x1b[31m"]} if x["t"] == "scores" else x for x in lines],
        "scores that are not all numbers",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_per_sample_file_is_refused_with_the_way_out(cli, damage):
    """Export and the viewer refuse a per-sample file that is cut short, not gzip, not JSON,
    of the wrong shapes or pointing at entries it lacks: one message naming the file and what
    is wrong, exit status 2, no traceback; --recompute writes a good one again."""
    first = cli("eval", "--world", "sim", "--limit", "3", "-n", "2", "--json")
    assert first.exit_code == 0, first.output
    path = cli.results_dir / "runs" / json.loads(first.output)["metrics"]["samples"]
    edit, expected = DAMAGE[damage]
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "one endless line":  # 65 MB of one line in a 64 KB file: not read whole
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(b"[" + b" " * (65 << 20))
    elif damage == "not gzip":
        path.write_bytes(b"no gzip here")
    else:
        _rewrite(path, edit)
    for command in (["export", "latest", "--out", str(path.parent / "x.csv")],
                    ["view", "latest", "--out", str(path.parent / "x.html")]):  # fmt: skip
        refused = cli(*command)
        assert refused.exit_code == 2, refused.output
        assert "is damaged or not prmh's" in refused.output and expected in refused.output
        assert "--recompute" in refused.output and "Traceback" not in refused.output
        assert "\x1b" not in refused.output
    again = cli("eval", "--world", "sim", "--limit", "3", "-n", "2", "--recompute")
    assert again.exit_code == 0, again.output
    assert cli("export", "latest", "--out", str(path.parent / "y.csv")).exit_code == 0


def test_csv_export_keeps_model_text_from_running_as_a_formula(run):
    """Model text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
    formula to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` fetches a URL when the
    file is opened). OWASP's CSV injection advice (owasp.org/www-community/attacks/CSV_Injection):
    prefix such a cell with ``'``. Numbers (``-3``, ``+2.5e3``) stay as they are; JSON lines
    keep the text as it is. A carriage return inside a cell is quoted (RFC 4180 line ends; with
    ``\n`` ones it was left bare, and a reader split the row there)."""
    results, first, _ = run
    data = prmh.load_run(first.run_id, results)
    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
               "\t=1", "\r=1", "-3", "+2.5e3", "safe = 1", "one\rtwo"]  # fmt: skip
    lines = [dict(line) for line in data.lines]
    solution = next(line for line in lines if line["t"] == "solution")
    solution["steps"] = hostile
    scored = next(x for x in lines if x["t"] == "scores" and x["solution"] == solution["id"])
    scored["probs"] = [0.5] * len(hostile)
    edited = prmh.results.RunResults(data.record, lines)
    rows = csv.DictReader(io.StringIO(edited.export("step", "csv").decode()))
    cells = [r["text"] for r in rows if r["solution_id"] == str(solution["id"])][: len(hostile)]
    assert cells == ["'" + t for t in hostile[:6]] + ["-3", "+2.5e3", "safe = 1", "one\rtwo"]
    raw = [json.loads(x) for x in edited.export("step", "jsonl").decode().splitlines()]
    assert [r["text"] for r in raw if r["solution_id"] == solution["id"]][:10] == hostile


def test_a_per_sample_file_larger_than_memory_allows_is_refused(run, monkeypatch):
    """A small gzip bomb of many lines (deflate expands ~1,000 times) is refused once its
    text passes an eighth of the machine's memory, before the rows fill it."""
    from prmh import samples
    from prmh.errors import PrmhError

    results, first, _ = run
    path = results / "runs" / first.record["metrics"]["samples"]
    assert samples.read_samples(path)
    monkeypatch.setattr(samples, "_memory_bytes", lambda: 8 * 10_000)
    with pytest.raises(PrmhError, match="expands to more than 10,000 characters, an eighth"):
        samples.read_samples(path)


@pytest.mark.parametrize("name", ["../../secret.samples.jsonl.gz", "/etc/passwd", ["x"]])
def test_a_record_naming_a_per_sample_file_elsewhere_is_refused(cli, name):
    """A record (perhaps a stranger's) whose per-sample file is a path out of its runs folder,
    or not a name at all: refused with what is wrong, nothing read from that path."""
    done = cli("eval", "--world", "sim", "--limit", "2", "-n", "1", "--json")
    record_path = next((cli.results_dir / "runs").glob("*.json"))
    record = json.loads(record_path.read_text())
    record["metrics"]["samples"] = name
    record_path.write_text(json.dumps(record))
    refused = cli("export", "latest", "--out", str(cli.results_dir / "x.csv"))
    assert done.exit_code == 0 and refused.exit_code == 2, refused.output
    assert "names its per-sample file" in refused.output and "Traceback" not in refused.output


def test_an_output_that_is_a_pipe_or_device_is_written_into(cli, tmp_path):
    """``--out /dev/stdout`` or a named pipe is written into. The atomic write renamed its
    temporary file over the target, which replaced the pipe, or as root (a container) the
    device node itself: ``export --out /dev/null`` left /dev/null a regular file. (Shown on a
    named pipe here: a test must not risk /dev.)"""
    import os
    import stat

    assert cli("eval", "--world", "sim", "--limit", "2", "-n", "1").exit_code == 0
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # the writer's open finds a reader
    try:
        done = cli("export", "latest", "--out", str(pipe), "--format", "csv")
        assert done.exit_code == 0, done.output
        assert stat.S_ISFIFO(os.stat(pipe).st_mode)
        assert os.read(reader, 1 << 16).decode().startswith("task,generator,prm,")
    finally:
        os.close(reader)


def test_a_full_disk_is_one_message_naming_the_file(cli, tmp_path, monkeypatch):
    """A write that fails (ENOSPC on a full disk, simulated at fsync) was an OSError traceback
    at the end of the command; it is one line naming the file, and no temporary file stays."""
    import errno
    import os

    import prmh.files

    assert cli("eval", "--world", "sim", "--limit", "2", "-n", "1").exit_code == 0

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(prmh.files.os, "fsync", full)
    out = tmp_path / "x.csv"
    done = cli("export", "latest", "--out", str(out))
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert f"cannot write {str(out)!r}: No space left on device." in done.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_run_without_per_sample_results_says_why(cli, tmp_path):
    """export, view and plot on a run still going said it was "made by an older prmh" and to
    run its command again (show said "started" alone); an interrupted run says to resume it."""
    import os
    import platform

    assert cli("eval", "--world", "sim", "--limit", "2", "-n", "1").exit_code == 0
    (path,) = (cli.results_dir / "runs").glob("*.json")
    record = json.loads(path.read_text())
    record.update(status="started", owner={"host": platform.node(), "pid": os.getpid()})
    del record["metrics"]
    path.write_text(json.dumps(record))
    for command in (["export", "latest", "--out", str(tmp_path / "x.csv")],
                    ["view", "latest", "--out", str(tmp_path / "x.html")]):  # fmt: skip
        refused = cli(*command)
        assert refused.exit_code == 2 and "it is still running; they are written" in refused.output
    plotted = cli("plot", "latest", "--kind", "scaling", "--out", str(tmp_path / "x.png"))
    assert plotted.exit_code == 2 and "is still running: its tables come" in plotted.output
    shown = cli("show", "latest")
    assert f"still running (pid {os.getpid()} on {platform.node()})" in shown.output
    record.update(status="interrupted")
    path.write_text(json.dumps(record))
    refused = cli("export", "latest", "--out", str(tmp_path / "x.csv"))
    assert "it was interrupted before writing them; run its command again" in refused.output


def test_a_run_that_is_no_evaluation_names_the_latest_that_is(cli, tmp_path):
    """``prmh view`` after ``prmh label`` read the label run ("latest") and said it was "made
    by an older prmh, or not an evaluation" and to run its command again, which would make
    another label run. Now it names what the run is and the latest evaluation."""
    assert cli("eval", "--world", "sim", "--limit", "2", "-n", "1").exit_code == 0
    (evaluation,) = (cli.results_dir / "runs").glob("*.json")
    labels = str(tmp_path / "labels.jsonl")
    assert cli("label", "--limit", "2", "-n", "1", "--out", labels).exit_code == 0
    refused = cli("view", "latest", "--out", str(tmp_path / "x.html"))
    assert refused.exit_code == 2
    assert "it is not an evaluation (a `prmh label` run): give an evaluation's run id; the " in (
        refused.output
    )
    assert f"the latest evaluation here is {evaluation.stem}." in refused.output


def test_a_run_is_named_by_text_or_path(run):
    """``load_run(123)`` was a TypeError from deep in pathlib, and an empty id matched every run
    (the one run of a results directory, whichever it was)."""
    results, first, _ = run
    record = results / "runs" / f"{first.run_id}.json"
    assert prmh.load_run(record).record["run_id"] == first.run_id  # a Path, as well as text
    for bad in [(123,), (first.run_id, 5), (None,)]:
        with pytest.raises(prmh.PrmhError, match="load_run takes a run id"):
            prmh.load_run(*bad)
    for empty in ("", "  "):
        with pytest.raises(prmh.PrmhError, match="no run named: give a run id"):
            prmh.load_run(empty, results)
