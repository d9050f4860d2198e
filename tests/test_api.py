"""The Python API's own keywords, and what ``result.accuracy()`` says about each cell."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(
    "keyword, message",
    [
        ({"results_dir": 5}, "results_dir must be a path or None, not 5"),
        ({"grading_timeout": "x"}, "grading_timeout must be a number of seconds, not 'x'"),
        ({"shard": 3}, "shard must be text, 'I/N', or None, not 3"),
        ({"progress": 5}, "progress must be a function (stage, done, total) or None"),
        ({"threads": 2.5}, "threads must be a whole number or None, not 2.5"),
        ({"recompute": "no"}, "recompute must be True or False, not 'no'"),
        ({"ray": "x"}, "ray must be a dict of address, actors, gpus or None"),
        ({"ray": {"actors": "2"}}, "ray must be a dict"),
        ({"ray": {"nodes": 2}}, "ray must be a dict"),
    ],
)
def test_the_python_api_names_a_keyword_of_the_wrong_type(tmp_path, keyword, message):
    """Each was a TypeError or AttributeError from deep in the run (``shard=3``: 'int' object
    has no attribute 'partition'), or taken as given (``recompute="no"`` recomputed), before
    anything was stored."""
    import prmh

    with pytest.raises(prmh.PrmhError, match=re.escape(f"prmh.evaluate(): {message}")):
        prmh.evaluate(world="sim", limit=2, **{"results_dir": tmp_path, **keyword})
    assert not (tmp_path / "runs").exists()


def test_cells_the_paired_bootstrap_cannot_tell_from_the_best_are_bold(tmp_path):
    """The oracle and its noisy copies score the same pool, so a column's cells pair problem
    by problem: the noisiest PRM is below the exact one at N=16, a copy with almost no noise
    is not. On a terminal the first is plain, the second bold."""
    import prmh
    from prmh.metrics import paired_above
    from prmh.report import _cell

    prms = ["oracle", "oracle:noise=0.001", "oracle:noise=5"]
    result = prmh.evaluate(world="sim", prm=prms, agg="min", budget=[1, 16], limit=80,
                           results_dir=tmp_path)  # fmt: skip
    cells = {(c["row"], c["budget"]): c for c in result.accuracy()}
    exact, twin, noisy = (cells[(f"{p} · min · argmax", 16)] for p in prms)
    assert exact["mean"] >= twin["mean"] and not exact["below_best"]
    assert twin["below_best"] is False and noisy["below_best"] is True
    assert cells[("pass@N", 16)]["below_best"] is None
    rows = {r.get("prm"): r["cells"][1] for r in result.tables[0]["rows"]}
    assert paired_above(rows["oracle"], rows["oracle:noise=5"])  # what the flag says
    ids = result.tables[0]["problem_ids"]  # accuracy()'s per-problem values, by problem id
    assert noisy["per_problem"] == dict(
        zip(ids, rows["oracle:noise=5"]["per_problem"], strict=True)
    )
    assert paired_above(exact, noisy) and not paired_above(exact, twin)
    assert len(cells[("pass@N", 16)]["per_problem"]) == 80  # reference cells pair too
    shuffled = {k: noisy["per_problem"][k] for k in reversed(ids)}  # aligned by problem id
    assert paired_above(exact, {"per_problem": shuffled})
    assert not paired_above(exact, {"per_problem": dict(list(shuffled.items())[1:])})
    assert [s.style for s in _cell({**twin, "below_best": False}, exact["mean"] + 1).spans] == [
        "bold"
    ]
    assert _cell({**twin, "below_best": True}, exact["mean"] + 1).spans == []


def test_the_readmes_python_runs_as_a_script_and_from_standard_input(tmp_path):
    """The README's Python blocks, as written, saved as one file with no ``if __name__ ==
    "__main__":`` guard, and the same text piped to ``python -``. Grading workers were started
    by multiprocessing's spawn, which runs the parent's main script again in every child
    (CPython's Lib/multiprocessing/spawn.py, ``get_preparation_data``: ``init_main_from_path``;
    the "safe importing of main module" rule of the multiprocessing docs): the script began its
    evaluation again in each worker, every worker died in its "bootstrapping phase", and the
    run stopped with an error; from standard input no script could be run again at all."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 2 and "prmh.evaluate(" in blocks[0] and "load_run" in blocks[1]
    script = tmp_path / "example.py"
    script.write_text(
        "\n".join(blocks) + "print(len(result.accuracy()), result.record['status'], "
        "len(problems), len(wrong) < len(problems))\n"
    )
    for command, stdin in (([script.name], None), (["-"], script.read_text())):
        results = tmp_path / "prmh-results"
        done = subprocess.run([sys.executable, *command], input=stdin, capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        # 24 cells: 2 PRMs x 3 aggregators x 3 budgets, and pass@N, majority@N at each
        # budget; 900 problem rows: 50 problems in each of the 18 PRM cells
        assert done.stdout.split() == ["24", "success", "900", "True"], done.stdout
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        assert len(list((results / "runs").glob("*.json"))) == 1
        shutil.rmtree(results)


def test_every_stage_reports_zero_before_its_work(tmp_path):
    """A rate is told from a stage's reports, so each stage's first is 0 done: scoring and
    grading reported only when their first batch came back, and the progress lines divided
    by the time after it ("score tiny-calibrated: 299/299 (348.9/s)", 258/s from the start)."""
    import prmh

    reports: list[tuple[str, int, int]] = []
    prmh.evaluate(world="sim", limit=20, budget=[4], results_dir=tmp_path,
                  progress=lambda *report: reports.append(report))  # fmt: skip
    first: dict[str, int] = {}
    for stage, done, _ in reports:
        first.setdefault(stage, done)
    assert set(first) == {"generate sim", "score oracle", "grade"}
    assert set(first.values()) == {0}
