"""``prmh plot``: paper figures from run records, checked as files and as rendered images;
the README's figures come from ``docs/figures/regenerate.py``, run here at a small size."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import skip_without_extra

ROOT = Path(__file__).parent.parent
KINDS = ("scaling", "compute", "reliability", "correlation", "processbench")


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    from click.testing import CliRunner

    from prmh.cli import cli

    results = tmp_path_factory.mktemp("results")
    args = ["eval", "--world", "sim", "--prm", "oracle:quantiles=true,noise=1", "--prm",
            "oracle:noise=3", "--agg", "min", "--search", "best-of-n", "--search", "beam-ias",
            "-n", "1", "-n", "4", "--limit", "12", "--results-dir", str(results)]  # fmt: skip
    assert CliRunner().invoke(cli, args).exit_code == 0
    return results


def _dpi(png: bytes) -> float:
    """The resolution a PNG declares (its pHYs chunk), in dots per inch."""
    at = png.index(b"pHYs")
    x, _, unit = struct.unpack(">IIB", png[at + 4 : at + 13])
    assert unit == 1  # metres
    return x * 0.0254


def _pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (no image library needed)."""
    width, height = struct.unpack(">II", png[16:24])
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            chunks.append(png[at + 8 : at + 8 + length])
        at += 12 + length
    return width, height, zlib.decompress(b"".join(chunks))


@pytest.mark.parametrize("kind", ["scaling", "compute"])
def test_a_png_at_300_dpi_that_shows_something(cli, evaluation, kind, tmp_path):
    out = tmp_path / f"{kind}.png"
    done = cli(
        "plot", "latest", "--results-dir", str(evaluation), "--kind", kind, "--out", str(out)
    )
    assert done.exit_code == 0, done.output
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and round(_dpi(png)) == 300
    width, height, pixels = _pixels(png)
    assert width > 1500 and height > 900  # inches x 300
    distinct = set(pixels[i : i + 4] for i in range(0, min(len(pixels), 4_000_000), 4))
    assert len(distinct) > 50  # lines, bands, text: not a blank canvas


def test_svg_is_deterministic_and_labelled(cli, evaluation, tmp_path):
    paths = [tmp_path / "a.svg", tmp_path / "b.svg"]
    for path in paths:
        args = ["plot", "latest", "--results-dir", str(evaluation), "--kind", "compute"]
        assert cli(*args, "--out", str(path)).exit_code == 0
    first, second = (p.read_bytes() for p in paths)
    assert first == second
    text = first.decode()
    labels = ["generated tokens per problem (log)", "PRM calls per problem (log)"]
    labels += ["accuracy (%, 95% interval)", "oracle:noise=3 · min · argmax · beam-ias"]
    for label in labels:
        assert label in text, label


def test_bad_figures_are_refused(cli, evaluation, tmp_path):
    where = ["--results-dir", str(evaluation)]
    unknown = cli("plot", "latest", *where, "--kind", "pie", "--out", str(tmp_path / "x.png"))
    assert unknown.exit_code == 2 and "scaling" in unknown.output
    suffix = cli("plot", "latest", *where, "--kind", "scaling", "--out", str(tmp_path / "x.jpg"))
    assert suffix.exit_code == 2 and ".svg" in suffix.output
    wrong = cli("plot", "latest", *where, "--kind", "reliability", "--out", str(tmp_path / "r.svg"))
    assert wrong.exit_code == 2 and "analyze calibration" in wrong.output


def test_the_readme_figures_regenerate(tmp_path):
    """The documented command draws one figure of each kind (here from fewer problems)."""
    script = ROOT / "docs" / "figures" / "regenerate.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--limit", "12"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode:
        skip_without_extra(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    for kind in KINDS:
        svg = (tmp_path / f"{kind}.svg").read_text()
        assert svg.startswith("<?xml") and "<svg" in svg and svg.count("<path") > 10, kind
        assert (ROOT / "docs" / "figures" / f"{kind}.svg").is_file(), f"README lacks {kind}"


def test_labels_from_a_record_are_drawn_as_text(cli, evaluation, tmp_path):
    """A record's task and PRM labels are text, whoever wrote them: ``$\\foo{x}$`` was parsed as
    matplotlib mathtext (a ParseFatalException traceback; matplotlib's ``text.parse_math``,
    lib/matplotlib/mpl-data/matplotlibrc), and a label beginning with ``_`` was left out of
    the legend (matplotlib's Axes.legend documentation: such labels are ignored)."""
    import json
    import re

    record = json.loads(next((evaluation / "runs").glob("*.json")).read_text())
    for table in record["metrics"]["tables"]:
        table["task"] = "cost $\\foo{x}$ and"
        for row in table["rows"]:
            row["label"] = "_" + row.get("label", row.get("prm", ""))
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(record))
    for kind in ("scaling", "compute"):
        out = tmp_path / f"{kind}.svg"
        done = cli("plot", str(path), "--kind", kind, "--out", str(out))
        assert done.exit_code == 0, done.output
        svg = out.read_text()
        assert "<!-- cost $\\foo{x}$ and × " in svg
        legend = {x.split(" · ")[0] for x in re.findall(r"<!-- (.*) -->", svg)}
        drawn = [r for t in record["metrics"]["tables"] for r in t["rows"]]
        drawn = [r for r in drawn if kind == "scaling" or r["kind"] != "reference"]
        assert {" " + r["label"] for r in drawn} <= legend, legend


def test_a_lone_budget_still_shows_its_interval(cli, tmp_path):
    """A run of one budget draws each row's 95% interval as an error bar from its cell's low to
    its high: a band (matplotlib's ``fill_between``) over a single x has no width, so such a
    figure showed bare points under an axis that promises intervals."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection

    from prmh.analysis.figures import _compute, _pyplot, _scaling

    results = str(tmp_path / "results")
    args = ["--world", "sim", "--prm", "oracle:noise=3", "--agg", "min", "-n", "4"]
    assert cli("eval", *args, "--limit", "12", "--results-dir", results).exit_code == 0
    record = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    rows = record["metrics"]["tables"][0]["rows"]
    plt = _pyplot()
    for draw, shown in (
        (_scaling, rows),
        (_compute, [r for r in rows if r["kind"] != "reference"]),
    ):
        fig = draw(plt, [record])
        axis = fig.axes[0]
        bars = [c for c in axis.collections if isinstance(c, LineCollection)]
        drawn = sorted(tuple(s[:, 1].round(6)) for c in bars for s in c.get_segments())
        cells = [r["cells"][0] for r in shown]
        assert drawn == sorted((round(100 * c["low"], 6), round(100 * c["high"], 6)) for c in cells)
        labels = axis.get_legend_handles_labels()[1]
        assert len(labels) == len(shown)
        plt.close(fig)


def test_a_figure_with_nothing_to_scale_its_log_axis_by_says_so(cli, evaluation, tmp_path):
    """Every Pearson r undefined (a handful of solutions, all right) left the correlation
    figure's log axis with no positive value: `prmh analyze correlation` died in matplotlib
    ("Data cannot be log-scaled") after its work, and its record said error. A corpus without
    token counts put every cell at a made-up 1e-9 generated tokens. Both panels say it."""
    import json
    import math

    import matplotlib

    matplotlib.use("Agg")
    from prmh.analysis.figures import _compute, _pyplot, figure

    nan = {"r": math.nan, "low": math.nan, "high": math.nan}
    by_cut = {t: {"correctness": nan, "full_score": nan} for t in ("128", "256", "full")}
    record = {"run_id": "r", "config": {"analysis": "correlation"},
              "metrics": {"correlation": {"p": {"correlations": {"min": by_cut}}}}}  # fmt: skip
    out = figure("correlation", [record], tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    (run,) = (evaluation / "runs").glob("*.json")
    record = json.loads(run.read_text())
    for row in record["metrics"]["tables"][0]["rows"]:
        for c in row["cells"] if row["kind"] != "reference" else ():
            c["compute"]["generated_tokens"] = 0
    plt = _pyplot()
    fig = _compute(plt, [record])
    tokens, calls = fig.axes[:2]
    assert [t.get_text() for t in tokens.texts] == ["no cell recorded generated tokens per problem"]
    assert not tokens.lines and calls.lines
    assert fig.legends and fig.legends[0].get_texts()  # from the panel that has lines
    plt.close(fig)
