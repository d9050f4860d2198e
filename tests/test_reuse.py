"""A plan that already finished is read back from its run (``prmh.reuse``): the same tables and
per-sample results, and never when anything its results depend on differs or its files are
gone."""

from __future__ import annotations

import gzip
import json

import pytest

import prmh
from prmh import reuse
from prmh.store import Store

ARGS = ["--world", "sim", "--limit", "30", "-n", "2", "-n", "4", "--agg", "min", "--agg", "last"]


def _run(cli, *extra):
    out = cli("eval", "--json", *ARGS, *extra)
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def _samples(cli, record):
    path = cli.results_dir / "runs" / record["metrics"]["samples"]
    return gzip.decompress(path.read_bytes())


def test_a_finished_plan_is_read_back_with_the_same_results(cli):
    first = _run(cli)
    again = _run(cli)
    assert again["metrics"]["reused_run"] == first["run_id"] != again["run_id"]
    assert again["metrics"]["tables"] == first["metrics"]["tables"]
    assert again["plan_key"] == first["plan_key"]
    assert set(again["metrics"]["cache"]["computed"].values()) == {0}
    stored = again["metrics"]["cache"]["from_store"]
    assert stored["generation"] == first["metrics"]["cache"]["computed"]["generation"] > 0
    assert _samples(cli, again) == _samples(cli, first)  # its own copy, the same results
    assert again["metrics"]["samples"] != first["metrics"]["samples"]
    rows = prmh.load_run(again["run_id"], cli.results_dir).rows("candidate")
    assert rows == prmh.load_run(first["run_id"], cli.results_dir).rows("candidate")
    shown = cli("eval", *ARGS)
    assert f"the results of run {first['run_id']}" in shown.output.replace("\n", " ")
    recomputed = _run(cli, "--recompute")
    assert "reused_run" not in recomputed["metrics"]
    assert recomputed["metrics"]["tables"] == first["metrics"]["tables"]
    assert _run(cli)["metrics"]["reused_run"] == recomputed["run_id"]  # the latest one


@pytest.mark.parametrize(
    "change",
    [
        ["--limit", "31"],  # other problems
        ["--prm", "oracle:noise=2"],  # a component's options
        ["--grading-timeout", "4"],
        ["-n", "8"],  # the plan
        ["--shard", "0/2"],
    ],
)
def test_anything_the_results_depend_on_makes_a_new_plan(cli, change):
    first = _run(cli)
    other = _run(cli, *change)
    assert "reused_run" not in other["metrics"] and other["plan_key"] != first["plan_key"]


def test_edited_prmh_code_is_a_new_plan(cli, monkeypatch):
    """prmh's modules on disk (path, size, modification time) are part of the key."""
    first = _run(cli)
    monkeypatch.setattr(reuse, "code_fingerprint", lambda: "edited")
    again = _run(cli)
    assert "reused_run" not in again["metrics"] and again["plan_key"] != first["plan_key"]


EDITS = {
    "record says error": lambda r: {**r, "status": "error"},
    "record a list": lambda r: [r],
    "tables not a list": lambda r: {**r, "metrics": {**r["metrics"], "tables": "x"}},
    "counts not numbers": lambda r: {**r, "metrics": {**r["metrics"], "cache": {"computed": 1}}},
    "samples elsewhere": lambda r: {**r, "metrics": {**r["metrics"], "samples": "../x.gz"}},
    "another run's id": lambda r: {**r, "run_id": "20261128-000000-abcdef"},
}


def test_the_code_fingerprint_follows_every_module(tmp_path):
    """A module edited (its size or its modification time), added or removed changes it."""
    import os

    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "m.py").write_text("x = 1\n")
    before = reuse.files_fingerprint(roots)
    assert reuse.files_fingerprint(roots) == before
    module = roots[1] / "sub" / "m.py"
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = reuse.files_fingerprint(roots)
    assert touched != before
    module.write_text("x = 10\n")
    edited = reuse.files_fingerprint(roots)
    assert edited != touched
    (roots[0] / "new.py").write_text("")
    assert reuse.files_fingerprint(roots) != edited
    (roots[0] / "new.py").unlink()
    assert reuse.files_fingerprint(roots) == edited
    assert reuse.files_fingerprint(roots[::-1]) != reuse.files_fingerprint(roots)


SAMPLES_DAMAGE = {
    "samples gone": lambda path: path.unlink(),
    "samples cut short": lambda path: path.write_bytes(path.read_bytes()[:-100]),
    "samples edited": lambda path: path.write_bytes(
        gzip.compress(
            gzip.decompress(path.read_bytes()).replace(b'"correct":true', b'"correct":false')
        )
    ),
}


@pytest.mark.parametrize("damage", [*SAMPLES_DAMAGE, "record not JSON", *EDITS])
def test_a_run_whose_files_are_gone_or_damaged_is_computed_again(cli, damage):
    """A record or per-sample file that is gone, damaged or edited by hand is never read
    back: the plan runs again (from the store), says nothing was reused and writes the
    per-sample file the first run wrote."""
    first = _run(cli)
    runs = cli.results_dir / "runs"
    record = runs / f"{first['run_id']}.json"
    original = _samples(cli, first)
    assert b'"correct":true' in original  # what "samples edited" changes
    if damage in SAMPLES_DAMAGE:
        path = runs / first["metrics"]["samples"]
        written = path.read_bytes()
        SAMPLES_DAMAGE[damage](path)
        assert not path.exists() or path.read_bytes() != written
    elif damage == "record not JSON":
        record.write_text("{not json")
    else:
        record.write_text(json.dumps(EDITS[damage](first)))
    again = _run(cli)
    assert "reused_run" not in again["metrics"]
    assert again["metrics"]["tables"] == first["metrics"]["tables"]  # from the store
    assert set(again["metrics"]["cache"]["computed"].values()) == {0}
    assert _samples(cli, again) == original
    assert again["metrics"]["samples_sha256"] == first["metrics"]["samples_sha256"]


@pytest.mark.parametrize("run", ["../../../etc/passwd", 7, None, "20261128-000000-abcdef"])
def test_a_hostile_store_entry_is_ignored(cli, run):
    """The store names the run to read back; a name that is not a run id reads nothing, and
    a run id without its record reads nothing either."""
    first = _run(cli)
    store = Store(cli.results_dir)
    store.put_many(reuse.KIND, {first["plan_key"]: {"run": run}}, replace=True)
    assert reuse.finished_run(store, cli.results_dir / "runs", first["plan_key"]) is None
    store.close()
    assert "reused_run" not in _run(cli)["metrics"]


def test_the_python_api_reads_back_and_recomputes(tmp_path):
    options = {"world": "sim", "limit": 20, "budget": [2], "results_dir": tmp_path}
    first = prmh.evaluate(**options)
    again = prmh.evaluate(**options)
    assert again.record["metrics"]["reused_run"] == first.record["run_id"]
    assert again.tables == first.tables
    assert "reused_run" not in prmh.evaluate(recompute=True, **options).record["metrics"]
