"""``prmh view``: the run viewer page, in a real headless browser (Debian's chromium), and its
escaping of hostile text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from click.testing import CliRunner

    from prmh.cli import cli

    results = tmp_path_factory.mktemp("results")
    args = ["eval", "--world", "sim", "--prm", "oracle", "--prm", "oracle:noise=3", "--agg", "min",
            "-n", "1", "-n", "4", "--limit", "8", "--results-dir", str(results)]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    out = results / "viewer.html"
    done = runner.invoke(cli, ["view", "--results-dir", str(results), "--out", str(out)])
    assert done.exit_code == 0, done.output
    return results, out


def test_the_viewer_in_a_headless_browser(page, chromium):
    from selenium.webdriver.common.by import By

    _, out = page
    chromium.get(out.as_uri())
    errors = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert chromium.find_element(By.ID, "title").text.startswith("prmh run ")
    # rows: pass@N, majority@N, then oracle, oracle:noise=3; columns: N=1, N=4
    chromium.find_element(By.ID, "cell-0-3-1").click()
    listed = chromium.find_elements(By.CSS_SELECTOR, "#problem-list tbody tr")
    assert len(listed) == 8
    outcomes = [r.find_elements(By.TAG_NAME, "td")[4].text for r in listed]
    chromium.find_element(By.ID, "filter-wrong").click()
    wrong = chromium.find_elements(By.CSS_SELECTOR, "#problem-list tbody tr")
    assert len(wrong) == sum(o != "right" for o in outcomes)
    chromium.find_element(By.ID, "filter-wrong").click()
    chromium.find_element(By.ID, "problem-0").click()
    candidates = chromium.find_elements(By.CSS_SELECTOR, "#detail .cand")
    assert 1 <= len(candidates) <= 4
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#detail .cand.chosen")) == 1
    steps = chromium.find_elements(By.CSS_SELECTOR, "#detail .step")
    colours = {s.value_of_css_property("background-color") for s in steps}
    assert steps and all(c.startswith("rgb") and c != "rgba(0, 0, 0, 0)" for c in colours)
    # the other PRM's score of the same steps is shown beside this one's
    assert all("oracle " in s.text and "oracle:noise=3 " in s.text for s in steps)
    ARTIFACTS.mkdir(exist_ok=True)
    assert chromium.save_screenshot(str(ARTIFACTS / "viewer.png"))
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]


def test_cells_that_tie_with_the_best_are_bold(chromium, tmp_path):
    """Bold as on a terminal: each column's best cell and those the paired bootstrap does not
    put below it (here the noisy PRM at N=8 is below, at N=1 it ties)."""
    from click.testing import CliRunner
    from selenium.webdriver.common.by import By

    from prmh.cli import cli

    args = ["eval", "--world", "sim", "--prm", "oracle", "--prm", "oracle:noise=5", "--agg", "min",
            "-n", "1", "-n", "8", "--limit", "40", "--results-dir", str(tmp_path)]  # fmt: skip
    assert CliRunner().invoke(cli, args).exit_code == 0
    out = tmp_path / "viewer.html"
    assert (
        CliRunner()
        .invoke(cli, ["view", "--results-dir", str(tmp_path), "--out", str(out)])
        .exit_code
        == 0
    )
    (table,) = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())["metrics"]["tables"]
    flags = [[c["below_best"] for c in row["cells"]] for row in table["rows"][2:]]
    assert flags == [[False, False], [False, True]]
    chromium.get(out.as_uri())
    weights = [[chromium.find_element(By.ID, f"cell-0-{r}-{c}").value_of_css_property("font-weight")
                for c in range(2)] for r in (2, 3)]  # fmt: skip
    assert weights == [["700", "700"], ["700", "400"]]


def test_the_viewer_marks_steps_two_prms_disagree_on(page):
    """Somewhere in the run the exact oracle and the noisy one fall on either side of 0.5."""
    from prmh.results import load_run
    from prmh.viewer import page_data

    results, _ = page
    data = page_data(load_run("latest", results))
    by_solution = {}
    for prm, solution, probs in data["scores"]:
        by_solution.setdefault(solution, {})[prm] = probs
    split = [
        (s, k)
        for s, scores in by_solution.items()
        if len(scores) == 2
        for k, (a, b) in enumerate(zip(*scores.values(), strict=False))
        if (a >= 0.5) != (b >= 0.5)
    ]
    assert split, "the two PRMs never disagree, so the page would mark nothing"


def test_hostile_text_stays_text():
    from prmh.results import RunResults
    from prmh.viewer import render

    evil = "</script><img src=x onerror=alert(1)> & <!--"
    lines = [
        {"t": "problem", "task": "t", "id": "p", "question": evil, "gold": evil},
        {"t": "solution", "id": 0, "task": "t", "generator": "g", "problem": "p",
         "text": evil, "steps": [evil], "answer": evil},
        {"t": "scores", "prm": evil, "solution": 0, "probs": [0.5], "quantiles": None},
    ]  # fmt: skip
    html = render(RunResults({"run_id": "r", "metrics": {"tables": []}}, lines))
    assert "<img src=x" not in html and "</script><img" not in html
    data = re.search(r'id="data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(data)["problems"]["t|p"] == [evil, evil]  # the text itself, intact


def _with_a_nan_score(results):
    """The page of the fixture's run with its first candidate's score nan (an aggregator
    plugin's) and one table cell's interval nan (an empty estimate)."""
    import prmh

    run = prmh.load_run("latest", results)
    cell = next(line for line in run.lines if line["t"] == "cell" and line["candidates"])
    cell["candidates"][0][1] = float("nan")
    run.record["metrics"]["tables"][0]["rows"][2]["cells"][0]["low"] = float("nan")
    return run, cell


def test_a_nan_score_is_strict_json_null(tmp_path):
    """Python writes nan as ``NaN``, which ``JSON.parse`` refuses (ECMA-404 has no such
    number): the page stayed blank. The page's data and the JSON lines export hold null
    (Python's json documentation, "Infinite and NaN Number Values")."""
    pytest.importorskip("pandas")
    from click.testing import CliRunner

    from prmh.cli import cli
    from prmh.viewer import render

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    args = ["eval", "--world", "sim", "--limit", "3", "-n", "2", "--results-dir", str(tmp_path)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    run, cell = _with_a_nan_score(tmp_path)
    html = render(run)
    exported = [
        json.loads(x, parse_constant=refuse)
        for x in run.export("candidate", "jsonl").decode().splitlines()
    ]
    assert any(r["score"] is None for r in exported)
    data = json.loads(re.search(r'id="data">(.*?)</script>', html, re.S).group(1),
                      parse_constant=refuse)  # fmt: skip
    cells = [c for c in data["cells"] if c[9] and c[9][0][0] == cell["candidates"][0][0]]
    assert any(c[9][0][1] is None for c in cells)


def test_a_nan_score_shows_as_a_dash(page, chromium, tmp_path):
    from selenium.webdriver.common.by import By

    from prmh.viewer import render

    results, _ = page
    html = render(_with_a_nan_score(results)[0])
    out = tmp_path / "nan.html"
    out.write_text(html)
    chromium.get(out.as_uri())
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert chromium.find_element(By.ID, "title").text.startswith("prmh run ")
    shown = chromium.find_element(By.ID, "cell-0-2-0")  # oracle · min, N=1: its first cell
    assert "[–-" in shown.text
    shown.click()
    chromium.find_element(By.ID, "problem-0").click()
    tags = [t.text for t in chromium.find_elements(By.CSS_SELECTOR, "#detail .cand .tag")]
    assert "score –" in tags, tags
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]


def test_a_tables_warnings_show_below_it_as_text(page, chromium, tmp_path):
    """The page drew the tables without what ``prmh eval`` prints below them (a search that
    could not do what its name says, a splitter that found no steps), so a reader of the page
    took such cells at face value. A warning names the user's specs: it stays text."""
    from selenium.webdriver.common.by import By

    import prmh
    from prmh.viewer import page_data, render

    args = dict(world="sim", search="beam-ias", prm="oracle:noise=3", agg="min", budget=[4],
                limit=3, results_dir=tmp_path / "r")  # fmt: skip
    record = prmh.evaluate(**args).record
    (said,) = record["metrics"]["tables"][0]["warnings"]
    assert page_data(prmh.load_run("latest", tmp_path / "r"))["tables"][0]["warnings"] == [said]
    results, _ = page
    run = prmh.load_run("latest", results)
    evil = "</script><img src=x onerror=alert(1)>"
    run.record["metrics"]["tables"][0]["warnings"] = [said, evil]
    out = tmp_path / "warned.html"
    out.write_text(render(run))
    chromium.get(out.as_uri())
    shown = [p.text for p in chromium.find_elements(By.CSS_SELECTOR, "#tables p.warning")]
    assert shown == [f"warning: {said}", f"warning: {evil}"]
    assert not chromium.find_elements(By.TAG_NAME, "img")
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]


def test_a_run_too_large_for_a_page_is_refused_and_limit_views_part(page, chromium, cli,
                                                                    monkeypatch):  # fmt: skip
    """A browser reads the page's data as one string (V8: at most 2**29 - 24 characters): a
    MATH-500 run at N=1024 (~800 MB of solutions) gave a blank page. Such a page is refused
    with the way out, and ``--limit N`` writes each task's first N problems (the tables
    whole), which the page says."""
    from selenium.webdriver.common.by import By

    import prmh.viewer

    results, _ = page
    whole = results / "whole.html"
    size = len(prmh.viewer.render(prmh.load_run("latest", results)))
    monkeypatch.setattr(prmh.viewer, "MAX_DATA_CHARS", size // 2)
    refused = cli("view", "--results-dir", str(results), "--out", str(whole))
    assert refused.exit_code == 2 and not whole.exists()
    assert "more than a browser reads in one page" in refused.output
    assert re.search(r"--limit N \(about [4-7] problems in all fit\)", refused.output)
    part = results / "part.html"
    done = cli("view", "--results-dir", str(results), "--limit", "3", "--out", str(part))
    assert done.exit_code == 0, done.output
    chromium.get(part.as_uri())
    assert "first 3 problems" in chromium.find_element(By.ID, "limit").text
    chromium.find_element(By.ID, "cell-0-3-1").click()
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#problem-list tbody tr")) == 3
    chromium.find_element(By.ID, "problem-2").click()
    assert chromium.find_elements(By.CSS_SELECTOR, "#detail .cand.chosen")
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]


def test_view_serves_on_localhost(page):
    results, _ = page
    args = [sys.executable, "-m", "prmh", "view", "--results-dir", str(results), "--serve",
            "--port", "0", "--out", str(results / "served.html")]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        url = None
        for _ in range(2):
            line = process.stdout.readline()
            url = url or next(
                iter(re.findall(r"serving (http://127\.0\.0\.1:\d+/\S+)", line)), None
            )
        assert url, "no URL printed"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b'id="data"' in response.read()
        # only the page: not the records and per-sample files beside it (the folder was
        # served, listing included), and not to a page that rebound its domain to this port
        record = next((results / "runs").glob("*.json")).name
        for path, host, status in [(f"/{record}", None, 404), ("/runs/", None, 404),
                                   ("/served.html", "evil.example:80", 403)]:  # fmt: skip
            request = urllib.request.Request(url.rsplit("/", 1)[0] + path)
            if host:
                request.add_header("Host", host)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == status
    finally:
        process.terminate()
        process.wait(timeout=10)
