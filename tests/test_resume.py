"""A run killed with SIGKILL mid-way resumes: nothing stored is lost or computed again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

from conftest import PYTHON

ARGS = ["eval", "--limit", "60", "-n", "2", "-n", "8", "--json"]
TOTAL_GENERATIONS = 60 * 8


def _eval(results, *extra):
    out = subprocess.run(
        [PYTHON, "-m", "prmh", *ARGS, "--results-dir", str(results), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _rows(results):
    db = sqlite3.connect(results / "store.sqlite")
    try:
        return {
            (kind, key): (value, run_id)
            for kind, key, value, run_id in db.execute(
                "SELECT kind, key, value, run_id FROM entries"
            )
        }
    finally:
        db.close()


def _strip_wall_time(tables):
    for table in tables:
        for row in table["rows"]:
            for cell in row["cells"]:
                cell.get("compute", {}).pop("wall_seconds", None)
    return tables


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    killed_dir = tmp_path / "killed"
    # `delay` only slows the generator down (it is not part of any cache key).
    proc = subprocess.Popen(
        [PYTHON, "-m", "prmh", *ARGS, "--results-dir", str(killed_dir), "-G", "delay=0.01"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            stored = len(_rows(killed_dir))
        except sqlite3.Error:
            continue
        if stored >= 2 * 32 * 2:  # at least two committed batches
            break
    assert proc.poll() is None, "the run finished before it could be killed; slow it down"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    before = _rows(killed_dir)
    assert 0 < len(before) < TOTAL_GENERATIONS
    (record_path,) = (killed_dir / "runs").glob("*.json")
    killed_record = json.loads(record_path.read_text())
    assert killed_record["status"] == "started"
    integrity = sqlite3.connect(killed_dir / "store.sqlite").execute("PRAGMA integrity_check")
    assert integrity.fetchone() == ("ok",)

    resumed = _eval(killed_dir)
    after = _rows(killed_dir)
    # Nothing lost, nothing rewritten: every row of the killed run is there, unchanged.
    assert all(after[k] == v for k, v in before.items())
    assert {run for _, run in before.values()} == {killed_record["run_id"]}
    # Nothing recomputed: the resumed run computed exactly what was missing.
    cache = resumed["metrics"]["cache"]
    assert cache["from_store"]["generation"] == sum(1 for k in before if k[0] == "generation")
    assert cache["from_store"]["generation"] + cache["computed"]["generation"] == TOTAL_GENERATIONS
    new_rows = {k for k, (_, run) in after.items() if run == resumed["run_id"]}
    assert new_rows == set(after) - set(before)

    # the later run found the killed one's process gone: its record says so now
    assert json.loads(record_path.read_text())["status"] == "interrupted"
    fresh = _eval(tmp_path / "fresh")
    assert _strip_wall_time(resumed["metrics"]["tables"]) == _strip_wall_time(
        fresh["metrics"]["tables"]
    )


def test_ctrl_c_says_how_to_resume(tmp_path):
    """Ctrl-C (SIGINT) mid-run: one line saying finished work is stored and the same command
    resumes, exit status 130 (128 + SIGINT, as a shell reports it), the record says
    interrupted. Click printed "Aborted!" with status 1."""
    results = tmp_path / "r"
    proc = subprocess.Popen(
        [PYTHON, "-m", "prmh", *ARGS, "--results-dir", str(results), "-G", "delay=0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(results.glob("runs/*.json")):
        time.sleep(0.1)
    time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: finished work is in the store, and the same command resumes" in err
    assert "Traceback" not in err and "Aborted!" not in err
    (record,) = (results / "runs").glob("*.json")
    assert json.loads(record.read_text())["status"] == "interrupted"


def test_a_pipe_or_device_among_the_records_is_passed_over(tmp_path):
    """A runs folder from elsewhere (unpacked, copied) holding a named pipe or a link to
    /dev/zero named like a record: every command's scan for dead runs opened the pipe and
    waited for a writer for ever, or read /dev/zero to the end of memory; `latest` chose them.
    They are passed over (read bounded, regular files only)."""
    import os

    results = tmp_path / "r"
    args = [PYTHON, "-m", "prmh", "eval", "--world", "sim", "--limit", "2", "-n", "1",
            "--results-dir", str(results)]  # fmt: skip
    assert subprocess.run(args, capture_output=True, timeout=120).returncode == 0
    os.mkfifo(results / "runs" / "zzzz.json")
    (results / "runs" / "zzzy.json").symlink_to("/dev/zero")
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    shown = subprocess.run([PYTHON, "-m", "prmh", "show", "latest", "--results-dir",
                            str(results)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0 and "success" in shown.stdout, shown.stderr
