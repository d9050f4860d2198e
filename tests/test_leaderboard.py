"""Leaderboards: accepting and rejecting records, identical rebuilds, ranks with ties, and the
page in a real headless browser (Debian's chromium, installed here when missing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import skip_without_extra

from prmh.board_file import load_board
from prmh.leaderboard import rows

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two successful runs of the bundled world and one that failed."""
    from click.testing import CliRunner

    from prmh.cli import cli

    results = tmp_path_factory.mktemp("lb") / "results"
    runner = CliRunner()
    paths = []  # in the order the runs were made (two ids of one second sort at random)
    for args in (
        ["--prm", "oracle", "--prm", "oracle:noise=3", "--agg", "mean", "--agg", "last"],
        ["--prm", "oracle:noise=6", "--search", "best-of-n", "--search", "beam", "--agg", "min"],
    ):
        before = set((results / "runs").glob("*.json"))
        out = runner.invoke(cli, ["eval", "--limit", "60", "--results-dir", str(results), *args])
        assert out.exit_code == 0, out.output
        (path,) = set((results / "runs").glob("*.json")) - before
        paths.append(path)
    failed = json.loads(paths[0].read_text())
    failed.update(status="error", run_id="20000101-000000-failed", error="boom")
    (results / "runs" / "20000101-000000-failed.json").write_text(json.dumps(failed))
    return results, paths


@pytest.fixture
def board(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(
        "leaderboard",
        "new",
        "demo",
        "--search",
        "best-of-n",
        "--search",
        "beam",
        "-n",
        "1",
        "-n",
        "4",
        "-n",
        "16",
        "--title",
        "Demo board",
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "leaderboards" / "demo"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_add_and_rebuild_identically(cli, runs, board):
    _, paths = runs
    added = cli("leaderboard", "add", "demo", *map(str, paths))
    assert added.exit_code == 0, added.output
    first = snapshot(board)
    assert {"board.toml", "README.md", "index.html", "board.json"} <= set(first)
    assert len([k for k in first if k.startswith("records/")]) == 2
    for name in ("README.md", "index.html", "board.json"):
        (board / name).unlink()
    assert cli("leaderboard", "build", "demo").exit_code == 0
    assert snapshot(board) == first
    readme = first["README.md"].decode()
    assert "| rank | PRM · agg · selector |" in readme
    for path in paths:
        assert f"(records/{path.stem}.json)" in readme
    data = json.loads(first["board.json"])
    assert data["board"]["task"] == "arith" and data["board"]["grader"] == "numeric"


def test_rows_within_their_intervals_share_a_rank(cli, runs, board):
    _, paths = runs
    cli("leaderboard", "add", "demo", *map(str, paths))
    table = rows(load_board(Path("leaderboards"), "demo"))
    key = "best-of-n@16"
    for r in table:
        above = [o for o in table if o["cells"][key]["low"] > r["cells"][key]["high"]]
        assert r["rank"] >= 1 + len(above)  # a paired test may separate more rows
    assert [r["rank"] for r in table] == sorted(r["rank"] for r in table)
    exact = [r for r in table if r["prm"] == "oracle"]
    noisy = [r for r in table if r["prm"] == "oracle:noise=6"]
    assert all(r["rank"] == 1 for r in exact) and all(r["rank"] > 1 for r in noisy)


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"status": "error"}, "status is 'error', not 'success'"),
        ({"git": {"revision": None, "dirty": None}}, "incomplete provenance: no git revision"),
        ({"libraries": None}, "incomplete provenance: no libraries"),
        ({"schema_version": 7}, "schema version 7 is not 1"),
        ("task_version", "task arith version 0 is not the board's 1"),
        ("grader", "graded with [('exact', '1')], not the board's numeric 1"),
    ],
)
def test_bad_records_are_rejected_and_the_board_is_unchanged(
    cli, runs, board, tmp_path, change, reason
):
    _, paths = runs
    assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
    before = snapshot(board)
    record = json.loads(paths[1].read_text())
    if change == "task_version":
        record["config"]["task"][0]["version"] = "0"
    elif change == "grader":
        for table in record["metrics"]["tables"]:
            table["grader"] = {"name": "exact", "version": "1"}
    else:
        record.update(change)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(record))
    result = cli("leaderboard", "add", "demo", str(bad))
    assert (
        result.exit_code == 2 and reason in result.output and "board is unchanged" in result.output
    )
    assert snapshot(board) == before
    checked = cli("leaderboard", "check", str(bad), "--board", "demo")
    assert checked.exit_code == 2 and reason in checked.output


def test_duplicates_and_check(cli, runs, board):
    results, paths = runs
    assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
    before = snapshot(board)
    again = cli("leaderboard", "add", "demo", str(paths[0]), str(paths[1]))
    assert again.exit_code == 2 and "already on the board" in again.output
    assert snapshot(board) == before  # the good second record was not added either
    twice = cli("leaderboard", "add", "demo", str(paths[1]), str(paths[1]))
    assert twice.exit_code == 2 and snapshot(board) == before
    ok = cli(
        "leaderboard", "check", paths[1].stem, "--board", "demo", "--results-dir", str(results)
    )
    assert ok.exit_code == 0 and ": ok" in ok.output
    failed = cli(
        "leaderboard",
        "check",
        "20000101-000000-failed",
        "--board",
        "demo",
        "--results-dir",
        str(results),
    )
    assert failed.exit_code == 2 and "status is 'error'" in failed.output
    # the board's name first, as `add` takes it (it was "Missing option '--board'")
    in_add_order = cli("leaderboard", "check", "demo", paths[1].stem, "--results-dir", str(results))
    assert in_add_order.exit_code == 0 and in_add_order.output == ok.output
    unnamed = cli("leaderboard", "check", paths[1].stem, "--results-dir", str(results))
    assert unnamed.exit_code == 2 and "name the board: prmh leaderboard check RUN..." in (
        unnamed.output
    )
    alone = cli("leaderboard", "check", "demo")
    assert alone.exit_code == 2 and "give the runs to check after the board's name" in alone.output
    assert snapshot(board) == before
    assert cli("leaderboard", "new", "demo").exit_code == 2
    assert "no board 'nope'" in cli("leaderboard", "build", "nope").output


def test_a_run_from_a_normal_install_joins_the_board_flagged(cli, runs, board, tmp_path):
    """A non-editable install has no git tree; its installed version and source name the code."""
    _, paths = runs
    record = json.loads(paths[0].read_text())
    record["git"] = {"revision": None, "dirty": None}
    record["install"] = {"version": "0.1.0", "source": "index", "url": None, "commit": None}
    path = tmp_path / "installed.json"
    path.write_text(json.dumps(record))
    added = cli("leaderboard", "add", "demo", str(path))
    assert added.exit_code == 0, added.output
    assert "(no git tree: prmh 0.1.0 (index))" in (board / "README.md").read_text()
    assert "no git tree: prmh 0.1.0 (index)" in (board / "index.html").read_text()
    record["install"] = {"version": "0.1.0", "source": "editable", "url": None, "commit": None}
    path.write_text(json.dumps(record))
    refused = cli("leaderboard", "check", str(path), "--board", "demo")
    assert refused.exit_code == 2 and "no git revision or installed version" in refused.output


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        (None, {"source": "index", "commit": None, "url": None}),
        (
            {
                "url": "https://user:KEY@example.org/prmh.git",
                "vcs_info": {"vcs": "git", "commit_id": "abc123"},
            },
            {"source": "git", "commit": "abc123", "url": "https://***@example.org/prmh.git"},
        ),
        ({"url": "file:///src/prmh", "dir_info": {"editable": True}}, {"source": "editable"}),
        ({"url": "file:///src/prmh", "dir_info": {}}, {"source": "directory"}),
        ({"url": "file:///w/prmh.whl", "archive_info": {}}, {"source": "archive"}),
    ],
)
def test_the_record_says_how_prmh_was_installed(monkeypatch, direct_url, expected):
    """PEP 610: pip writes direct_url.json for installs from a URL, folder or VCS; none for an
    install from an index."""
    from prmh import installed
    from prmh.provenance import install_state

    class Dist:
        version = "9.9"

        def read_text(self, name):
            assert name == "direct_url.json"
            return None if direct_url is None else json.dumps(direct_url)

    monkeypatch.setattr(installed, "distributions", lambda name: [Dist()])
    state = install_state()
    assert state["version"] == "9.9"
    assert {k: state[k] for k in expected} == expected


def run_record(results: Path, *args: str) -> Path:
    from click.testing import CliRunner

    from prmh.cli import cli

    before = set((results / "runs").glob("*.json"))
    out = CliRunner().invoke(cli, ["eval", "--results-dir", str(results), *args])
    assert out.exit_code == 0, out.output
    (path,) = set((results / "runs").glob("*.json")) - before
    return path


def test_a_board_compares_like_with_like(cli, runs, board, tmp_path):
    """The first run pins problems, seeds, task options and generator; runs that differ are
    refused with the difference named, and the board is unchanged."""
    results, paths = runs
    assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
    pinned = tomllib.loads((board / "board.toml").read_text())["pinned"]
    assert pinned["problems"] == 60 and pinned["seeds"] == [0]
    assert pinned["generator"]["name"] == "sim" and pinned["task_args"]["split"] == "test"
    before = snapshot(board)
    cases = {
        "its problems 2 differ from the board's 60": ["--limit", "2"],
        "its seeds [1] differ from the board's [0]": ["--limit", "60", "--seed", "1"],
        "its generator": ["--limit", "60", "-G", "slip_rate=0.2"],
        "its task args": ["--limit", "60", "-T", "max_ops=3"],
    }
    for reason, args in cases.items():
        path = run_record(results, *args, "--prm", "oracle")
        refused = cli("leaderboard", "add", "demo", str(path))
        assert refused.exit_code == 2 and reason in refused.output, (reason, refused.output)
        assert snapshot(board) == before
    # a board about generators compares them: the generator is not pinned there
    assert cli("leaderboard", "new", "gens", "--about", "generator").exit_code == 0
    other = run_record(results, "--limit", "60", "-G", "slip_rate=0.2", "--prm", "oracle")
    assert cli("leaderboard", "add", "gens", str(paths[0]), str(other)).exit_code == 0
    readme = (board.parent / "gens" / "README.md").read_text()
    assert "| problems · seeds |" in readme and "| 60 · 0 |" in readme


def test_rows_separated_by_a_paired_test_on_the_same_problems_are_ranked_apart(
    cli, runs, board, tmp_path
):
    """Paired bootstrap resampling (Koehn 2004, "Statistical significance tests for machine
    translation evaluation"; Efron & Tibshirani's paired bootstrap): resample problems, take
    the mean per-problem difference; A is above B when the 2.5% quantile is above 0.

    By hand, on 60 problems where A is right wherever B is: with 6 more right answers the
    difference is 0 in a resample only when none of those 6 is drawn, probability (54/60)^60 =
    0.18% < 2.5%, so A ranks above B although their intervals overlap; with 1 more, (59/60)^60
    = 36% of resamples show no difference, so they tie."""
    _, paths = runs
    record = json.loads(paths[0].read_text())
    (table,) = record["metrics"]["tables"]
    prm_rows = [r for r in table["rows"] if r["kind"] == "prm"][:3]
    table["rows"] = prm_rows
    right = {"A": 36, "B": 30, "C": 35}
    for row, name in zip(prm_rows, right, strict=True):
        row["prm"] = name
        for cell in row["cells"]:
            per_problem = [1.0] * right[name] + [0.0] * (60 - right[name])
            mean = right[name] / 60
            cell.update(per_problem=per_problem, mean=mean, low=mean - 0.13, high=mean + 0.13)
    record["run_id"] = "20000101-000000-paired"
    path = tmp_path / "paired.json"
    path.write_text(json.dumps(record))
    assert cli("leaderboard", "add", "demo", str(path)).exit_code == 0
    ranks = {r["prm"]: r["rank"] for r in rows(load_board(Path("leaderboards"), "demo"))}
    # A over B (6 problems apart), B under C (5 apart: (55/60)^60 = 0.55%), A and C tie
    assert ranks == {"A": 1, "C": 1, "B": 3}
    assert all(abs(right[a] - right[b]) / 60 < 0.26 for a in right for b in right)  # overlap


def test_the_page_in_a_headless_browser(cli, runs, board, chromium):
    from selenium.webdriver.common.by import By

    _, paths = runs
    assert cli("leaderboard", "add", "demo", *map(str, paths)).exit_code == 0
    chromium.get((board / "index.html").as_uri())
    errors = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    table = chromium.find_element(By.ID, "board")

    def column(i):
        return [
            r.find_elements(By.TAG_NAME, "td")[i].get_attribute("data-sort")
            for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]

    header = table.find_element(By.CSS_SELECTOR, 'th[title="best-of-n N=16"]')
    n16 = int(header.get_attribute("data-column"))
    before = column(1)
    header.click()  # ascending: the worst row first
    ascending = [float(x) for x in column(n16)]
    assert ascending == sorted(ascending) and column(1) != before
    header.click()
    assert [float(x) for x in column(n16)] == sorted(ascending, reverse=True)
    # the whole table fits a 1,400-pixel window: no column is cut or scrolled away
    fits = "var w = document.querySelector('.wrap'); return w.scrollWidth <= w.clientWidth"
    assert chromium.get_window_size()["width"] == 1400 and chromium.execute_script(fits)
    plots = chromium.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert len(plots) == 3  # two searches vs budget, one vs compute with both searches
    assert all(p.find_elements(By.TAG_NAME, "polyline") for p in plots)
    assert all(p.size["width"] > 300 for p in plots)
    labels = {r.find_elements(By.TAG_NAME, "td")[1].text for r in table.find_elements(
        By.CSS_SELECTOR, "tbody tr")}  # fmt: skip
    legend = {t.text for t in plots[0].find_elements(By.CSS_SELECTOR, "text.lg")}
    assert legend == labels  # every row plotted, every label in full
    compute = {t.text for t in plots[2].find_elements(By.CSS_SELECTOR, "text.lg")}
    assert {label.rsplit(" · ", 1)[1] for label in compute} == {"best-of-n", "beam"}
    assert all("accuracy (%)" in p.text for p in plots)
    ARTIFACTS.mkdir(exist_ok=True)
    assert chromium.save_screenshot(str(ARTIFACTS / "leaderboard.png"))


def test_calibration_runs_join_the_board_and_its_pages(cli, runs, board, tmp_path):
    """A `prmh analyze calibration` record is accepted on its own terms (no task table) and
    reaches the pages' calibration section, linked from the top."""
    results, paths = runs
    rollouts = tmp_path / "rollouts.jsonl"
    where = ["--results-dir", str(results)]
    assert cli("rollout", "--limit", "6", "-n", "2", "-k", "2", "--out", str(rollouts),
               *where).exit_code == 0  # fmt: skip
    made = cli("analyze", "calibration", "--prm", "tiny", "--prm", "tiny-calibrated",
               "--rollouts", str(rollouts), *where)  # fmt: skip
    if made.exit_code:
        skip_without_extra(made.output)
    assert made.exit_code == 0, made.output
    (record,) = [
        p for p in (results / "runs").glob("*.json")
        if (json.loads(p.read_text())["config"] or {}).get("analysis") == "calibration"
    ]  # fmt: skip
    added = cli("leaderboard", "add", "demo", str(paths[0]), str(record))
    assert added.exit_code == 0, added.output
    page, readme = (board / "index.html").read_text(), (board / "README.md").read_text()
    assert '<a href="#calibration">' in page and '<h2 id="calibration">' in page
    assert "[Calibration](#calibration)" in readme and "## Calibration" in readme
    assert "ece" in readme.split("## Calibration")[1]
    assert f"(records/{json.loads(paths[0].read_text())['run_id']}.json)" in readme
    # a record's nan (Python writes NaN, which JSON.parse and jq refuse): board.json says null
    copy = board / "records" / record.name
    data = json.loads(copy.read_text())
    data["metrics"]["calibration"][0]["brier"] = float("nan")
    copy.write_text(json.dumps(data))
    assert cli("leaderboard", "build", "demo").exit_code == 0

    def refuse(token):
        raise ValueError(token)

    built = json.loads((board / "board.json").read_text(), parse_constant=refuse)
    assert [c["brier"] is None for c in built["calibration"]] == [True, False]


def test_reproductions_join_the_board_and_its_pages(cli, runs, board):
    """A `prmh reproduce` record joins the pages' reproductions section with its claim, each
    comparison's estimates and its verdict; a hostile or malformed one is refused or escaped."""
    results, paths = runs
    made = cli("reproduce", "unprm-votes", "--quick", "--results-dir", str(results))
    assert made.exit_code == 0, made.output
    (record,) = [
        p for p in (results / "runs").glob("*.json")
        if (json.loads(p.read_text())["config"] or {}).get("command") == "reproduce"
    ]  # fmt: skip
    verdict = json.loads(record.read_text())["metrics"]["verdict"]
    added = cli("leaderboard", "add", "demo", str(paths[0]), str(record))
    assert added.exit_code == 0, added.output
    page, readme = (board / "index.html").read_text(), (board / "README.md").read_text()
    assert '<a href="#reproductions">' in page and '<h2 id="reproductions">' in page
    section = readme.split("## Reproductions")[1]
    assert "UnPRM" in section and f"| {verdict} |" in section and "majority@16" in section
    hostile = json.loads(record.read_text())
    hostile["metrics"]["claim"] = "<script>alert(1)</script> | [x](javascript:1)"
    hostile["run_id"] = "20990101-000000-hostile"
    (board.parent / "hostile.json").write_text(json.dumps(hostile))
    assert cli("leaderboard", "add", "demo", str(board.parent / "hostile.json")).exit_code == 0
    assert "<script>alert" not in (board / "index.html").read_text()
    assert "<script>" not in (board / "README.md").read_text()
    hostile["metrics"]["comparisons"][0]["better"]["mean"] = "high"
    hostile["run_id"] = "20990101-000000-malformed"
    (board.parent / "bad.json").write_text(json.dumps(hostile))
    refused = cli("leaderboard", "add", "demo", str(board.parent / "bad.json"))
    assert refused.exit_code == 2 and "comparisons are malformed" in refused.output


def test_the_maintained_board_rebuilds_identically(tmp_path):
    """leaderboards/arith-tiny in the repository is exactly what its records build."""
    from prmh.leaderboard import build

    source = Path(__file__).parent.parent / "leaderboards" / "arith-tiny"
    copy = shutil.copytree(source, tmp_path / "arith-tiny")
    build(load_board(tmp_path, "arith-tiny"))
    assert snapshot(copy) == snapshot(source)
    assert len(list((copy / "records").glob("*.json"))) >= 2


INJECTIONS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
    "| a | b |\n| --- |",
    "[click](javascript:alert(1))",
    "![x](http://evil.example/x.png)",
    "`code` **bold** _it_ # heading",
    "&lt;script&gt;",
    "line\nbreak\r\nand\ttab",
    "\u202eevil",
]


@pytest.mark.parametrize(
    "run_id", ["../../../x", "a/b", "..", "<img src=x onerror=alert(1)>", "", "x" * 200, 7]
)
def test_a_record_whose_run_id_is_no_plain_name_is_refused(cli, runs, board, tmp_path, run_id):
    _, paths = runs
    assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
    before = snapshot(board)
    record = json.loads(paths[1].read_text())
    record["run_id"] = run_id
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(record))
    outside = sorted(p.name for p in tmp_path.iterdir())
    result = cli("leaderboard", "add", "demo", str(path))
    assert result.exit_code == 2 and "is not a plain name" in result.output
    assert "Traceback" not in result.output
    assert snapshot(board) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == outside


def test_text_from_records_is_escaped_on_every_page(cli, runs, board, tmp_path):
    """Labels, generator names and calibration entries from a record reach README.md and
    index.html as text: no HTML element, link or table cell of the record's own."""
    _, paths = runs
    record = json.loads(paths[0].read_text())
    (table,) = record["metrics"]["tables"]
    prm_rows = [r for r in table["rows"] if r["kind"] == "prm"]
    for row, text in zip(prm_rows, INJECTIONS, strict=False):
        row["prm"] = text
    table["generator"] = INJECTIONS[1]
    record["metrics"]["calibration"] = [{"prm": INJECTIONS[0], INJECTIONS[2]: INJECTIONS[4]}]
    path = tmp_path / "injected.json"
    path.write_text(json.dumps(record))
    added = cli("leaderboard", "add", "demo", str(path))
    assert added.exit_code == 0, added.output
    page = (board / "index.html").read_text()
    readme = (board / "README.md").read_text()
    assert "<img" not in page and "<svg onload" not in page and "<script>alert" not in page
    assert "<img" not in readme and "<script>" not in readme and "<svg" not in readme
    assert not re.search(r"(?<!\\)\]\((?:javascript|http)", readme)  # no link of a record's
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| rank"))
    main = lines[start : lines.index("", start)]
    widths = {len(re.split(r"(?<!\\)\|", line)) for line in main}
    assert len(widths) == 1 and len(main) > 3  # every row has the header's cells


def test_what_a_run_warned_about_a_row_is_on_the_board(cli, runs, board, tmp_path):
    """A row whose run warned below its table (beam-ias that kept every beam, a splitter that
    found no steps) sat on the board like any other: its warnings are now listed under the
    rows, once per run, the row is marked, and the text stays text. A warning about another
    PRM's rows, or a search the board does not show, is not the row's."""
    _, paths = runs
    record = json.loads(paths[1].read_text())  # oracle:noise=6, best-of-n and beam, min
    (table,) = record["metrics"]["tables"]
    mine = [
        "beam with oracle:noise=6: <img src=x onerror=alert(1)> kept every beam",
        "splitter double-newline read every one of 9 finished solutions as one step",
    ]
    others = ["beam with oracle: not this row", "dvts with oracle:noise=6: not on the board"]
    table["warnings"] = [*mine, *others, 5]  # fmt: skip
    path = tmp_path / "warned.json"
    path.write_text(json.dumps({**record, "run_id": "20990101-000000-warned"}))
    added = cli("leaderboard", "add", "demo", str(path), str(paths[0]))
    assert added.exit_code == 0, added.output
    data = json.loads((board / "board.json").read_text())
    for row in data["rows"]:
        assert row["warnings"] == (mine if row["run_id"] == "20990101-000000-warned" else [])
    readme = (board / "README.md").read_text()
    section = readme.split("## Warnings", 1)[1].strip().split("\n\n")[1]
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert section.splitlines() == [
        f"- 20990101-000000-warned: beam with oracle:noise=6: {escaped} kept every beam",
        f"- 20990101-000000-warned: {mine[1]}",
    ]
    assert readme.count("warned: see Warnings") == 1  # its one row (min, argmax)
    page = (board / "index.html").read_text()
    assert "<img" not in page and page.count("<li>20990101-000000-warned: ") == 2
    assert "warned: see Warnings" in page


@pytest.mark.parametrize("name", ["x\n", "../x", "X", "a b", "_x", "x" * 100])
def test_board_names_are_plain(cli, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = cli("leaderboard", "new", name)
    assert result.exit_code == 2 and "board name" in result.output
    assert not (tmp_path / "leaderboards").exists() or not any(
        (tmp_path / "leaderboards").iterdir()
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t["rows"][2]["cells"][0].pop("low"), "needs finite numbers low, mean and high"),
        (lambda t: t["rows"][2]["cells"][0].update(mean=1.5), "must have 0 <= low <= mean"),
        (lambda t: t["rows"][2]["cells"][0].update(high=0.0), "must have 0 <= low <= mean"),
        (lambda t: t["rows"][2].update(prm=["x"]), "needs prm, agg and selector names"),
        (lambda t: t.update(seeds="0"), "seeds that are not whole numbers"),
        (lambda t: t.update(rows={}), "has no rows"),
        (lambda t: t.update(problems=True), "has no problem count"),
    ],
)
def test_malformed_records_are_refused_and_the_board_still_builds(
    cli, runs, board, tmp_path, change, reason
):
    _, paths = runs
    assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
    before = snapshot(board)
    record = json.loads(paths[1].read_text())
    change(record["metrics"]["tables"][0])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    result = cli("leaderboard", "add", "demo", str(path))
    assert result.exit_code == 2 and reason in result.output, result.output
    assert snapshot(board) == before
    assert cli("leaderboard", "build", "demo").exit_code == 0
    assert snapshot(board) == before


@pytest.mark.parametrize(
    ("make", "reason", "given"),  # given: what a command says of such a file named to it
    [
        # a MemoryError; named to a command, a path that is no regular file is no record's
        (lambda path: path.symlink_to("/dev/zero"), "not a regular file", "no run"),
        (lambda path: path.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply", None),
        (lambda path: path.write_bytes(b" " * (64 << 20) + b"{}"), "than the 67,108,864", None),
        (lambda path: os.mkfifo(path), "not a regular file", "no run"),  # open() would wait
    ],
    ids=["symlink to /dev/zero", "deep nesting", "64 MB", "named pipe"],
)
def test_a_hostile_record_file_is_refused_with_bounded_memory(
    cli, runs, board, make, reason, given
):
    """A record a pull request slips into the board (or submits): a symlink to an endless
    device, JSON nested deeper than Python's decoder goes (RecursionError), a file larger than
    any record. Building, checking or adding refuses it by name; nothing is written."""
    _, paths = runs
    assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
    before = snapshot(board)
    hostile = board / "records" / "hostile.json"
    make(hostile)
    built = cli("leaderboard", "build", "demo")
    assert built.exit_code == 2 and reason in built.output and "hostile.json" in built.output
    hostile.unlink()
    assert snapshot(board) == before
    submitted = board.parent.parent / "submitted.json"
    make(submitted)
    for command in (("check", str(submitted), "--board", "demo"), ("add", "demo", str(submitted))):
        refused = cli("leaderboard", *command)
        assert refused.exit_code == 2 and (given or reason) in refused.output, refused.output
    shown = cli("show", str(submitted))
    assert shown.exit_code == 2 and (given or reason) in shown.output, shown.output
    assert snapshot(board) == before


def test_the_record_added_is_the_one_checked(cli, runs, board, monkeypatch):
    """A record file rewritten while `leaderboard add` checks it (a submitter's swap): the
    board keeps the bytes that passed the checks; it read the file again to copy it."""
    import prmh.leaderboard

    _, paths = runs
    original = paths[0].read_bytes()
    check = prmh.leaderboard.check_record

    def swapped(board, record, *rest):
        paths[0].write_text(json.dumps({**record, "metrics": {"tables": "forged"}}))
        return check(board, record, *rest)

    monkeypatch.setattr(prmh.leaderboard, "check_record", swapped)
    try:
        assert cli("leaderboard", "add", "demo", str(paths[0])).exit_code == 0
        assert (board / "records" / f"{paths[0].stem}.json").read_bytes() == original
    finally:
        paths[0].write_bytes(original)


def test_a_killed_build_leaves_every_page_whole(cli, runs, board):
    """SIGKILL `prmh leaderboard build` at 20 moments: each page is the old or the new one."""
    import signal
    import sys
    import time

    _, paths = runs
    assert cli("leaderboard", "add", "demo", *map(str, paths)).exit_code == 0
    pages = {name: (board / name).read_bytes() for name in ("README.md", "index.html")}
    for i in range(20):
        process = subprocess.Popen(
            [sys.executable, "-m", "prmh", "leaderboard", "build", "demo"],
            cwd=board.parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.05 + 0.03 * i)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for name, content in pages.items():
            assert (board / name).read_bytes() == content, (i, name)


def test_the_page_names_the_rows_it_does_not_plot():
    from prmh.board_render import MAX_PLOTTED, _unplotted

    rows = [{"prm": f"p{i}", "agg": "min", "selector": "argmax"} for i in range(MAX_PLOTTED + 2)]
    assert _unplotted(rows[:MAX_PLOTTED]) == ""
    note = _unplotted(rows)
    assert f"first {MAX_PLOTTED} rows" in note and "p10 · min · argmax, p11 · min · argmax" in note


def test_a_records_control_codes_are_written_out_by_check(cli, runs, board, tmp_path):
    """`leaderboard check` says why a record is rejected, quoting what the record holds (its
    task version): terminal escape sequences there are written out (``\\x1b``), not sent to
    the maintainer's terminal (ECMA-48: ESC [ 2 J clears the screen, ESC ] 0 ; sets the title)."""
    _, paths = runs
    record = json.loads(paths[0].read_text())
    for task in record["config"]["task"]:
        task["version"] = "1\x1b[2J\x1b]0;owned\x07"
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(record))
    checked = cli("leaderboard", "check", str(path), "--board", "demo")
    assert checked.exit_code == 2 and "version 1\\x1b[2J\\x1b]0;owned\\x07 is not" in checked.output
    assert "\x1b" not in checked.output and "\x07" not in checked.output


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("budgets = [1, 4, 16]", 'budgets = ["x"]'), "budgets is ['x'], not a list of whole"),
        (("budgets = [1, 4, 16]", "budgets = []"), "budgets is [], not a list of whole numbers"),
        (('searches = ["best-of-n", "beam"]', "searches = 5"), "searches is 5, not a list"),
        (("rank_by = [", 'rank_by = ["nope", 99]\nx = ['), "rank_by is ['nope', 99], not [one of"),
        (('task = "arith"', "task = [5]"), "task is [5], not text"),
        (('about = "prm"', 'about = "x"'), "about is 'x', not 'prm' or 'generator'"),
        (('task = "arith"\n', ""), "it lacks task"),
    ],
)
def test_a_board_file_edited_by_hand_is_checked(cli, board, edit, message):
    """board.toml is meant to be edited (its comments say how): a value of the wrong kind was
    "is missing or has a bad invalid literal for int()", or taken (a rank_by naming no shown
    column, an empty budget list). Each is one message naming the field and the file."""
    path = board / "board.toml"
    text = path.read_text()
    assert edit[0] in text, text
    path.write_text(text.replace(edit[0], edit[1], 1))
    built = cli("leaderboard", "build", "demo")
    assert built.exit_code == 2 and "Traceback" not in built.output
    assert f"board.toml: {message}" in built.output and "Fix the file" in built.output


def test_a_board_file_that_is_no_file_is_refused(cli, board):
    """board.toml replaced by a link to /dev/zero (read whole: memory) or by bytes that are
    not UTF-8 (a UnicodeDecodeError traceback): one message naming the file."""
    path = board / "board.toml"
    path.unlink()
    path.symlink_to("/dev/zero")
    built = cli("leaderboard", "build", "demo")
    assert built.exit_code == 2 and "board.toml as a board file: not a regular file" in built.output
    path.unlink()
    path.write_bytes(b"\xff\xfe")
    built = cli("leaderboard", "build", "demo")
    assert built.exit_code == 2 and "as a board file: 'utf-8' codec can't decode" in built.output
