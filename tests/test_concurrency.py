"""Two `prmh eval` processes on one results directory split the work and never compute a
sample twice; when one is killed, the other takes over what it had claimed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

ARGS = ["-m", "prmh", "eval", "--world", "sim", "--limit", "200", "-n", "4", "--json"]
TOTAL = 200 * 4


def _start(results, *extra):
    return subprocess.Popen(
        [sys.executable, *ARGS, "--results-dir", str(results), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PRMH_WORLD": "sim"},
    )


def _finish(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out)


def _generations(results):
    db = sqlite3.connect(results / "store.sqlite")
    return db.execute("SELECT COUNT(*) FROM entries WHERE kind = 'generation'").fetchone()[0]


def _accuracy(record):
    return [
        (c["mean"], c["low"], c["high"])
        for t in record["metrics"]["tables"]
        for r in t["rows"]
        for c in r["cells"]
    ]


def test_two_runs_split_the_work(tmp_path):
    results = tmp_path / "results"
    first = _start(results, "-G", "delay=0.01")
    time.sleep(0.3)
    second = _start(results, "-G", "delay=0.01")
    a, b = _finish(first), _finish(second)
    computed = [r["metrics"]["cache"]["computed"]["generation"] for r in (a, b)]
    assert sum(computed) == TOTAL and min(computed) > 0, computed  # split, nothing twice
    assert _generations(results) == TOTAL
    scores = [r["metrics"]["cache"]["computed"]["score"] for r in (a, b)]
    from_store = [r["metrics"]["cache"]["from_store"]["score"] for r in (a, b)]
    needed = scores[0] + from_store[0]  # what one run needs
    assert scores[0] + scores[1] == needed  # each score computed once, by one of them
    assert _accuracy(a) == _accuracy(b)


def test_a_killed_claimant_is_taken_over(tmp_path):
    results = tmp_path / "results"
    first = _start(results, "-G", "delay=0.02")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if _generations(results) >= 64:
                break
        except sqlite3.Error:
            continue
    second = _start(results, "-G", "delay=0.02")
    time.sleep(1.5)  # the second run is waiting on, or sharing, the first one's units
    first.send_signal(signal.SIGKILL)
    first.wait()
    record = _finish(second)
    assert _generations(results) == TOTAL
    alone = _finish(_start(tmp_path / "alone"))
    assert _accuracy(record) == _accuracy(alone)
