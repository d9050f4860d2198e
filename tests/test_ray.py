"""The Ray executor on a real local Ray instance (2 CPUs): generators and PRMs in actors, the
driver the only writer of the store; results equal the local executor's, and a killed run
resumes without computing again what it stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

ARGS = ["--world", "sim", "--search", "best-of-n", "--search", "beam", "--search", "backtrack",
        "-n", "4", "--limit", "12", "--json"]  # fmt: skip


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def tables(record):
    out = record["metrics"]["tables"]
    for table in out:
        for row in table["rows"]:
            for cell in row["cells"]:
                cell.get("compute", {}).pop("wall_seconds", None)
    return out


def test_ray_actors_give_the_local_executors_results(cli, tmp_path, local_ray):
    remote = cli("eval", *ARGS, "--executor", "ray", "--ray-actors", "2", "--results-dir",
                 str(tmp_path / "ray"))  # fmt: skip
    assert remote.exit_code == 0, remote.output
    local = cli("eval", *ARGS, "--results-dir", str(tmp_path / "local"))
    ray_record, local_record = json.loads(remote.output), json.loads(local.output)
    assert tables(ray_record) == tables(local_record)
    assert (
        ray_record["metrics"]["cache"]["computed"] == local_record["metrics"]["cache"]["computed"]
    )
    again = cli("eval", *ARGS, "--executor", "ray", "--results-dir", str(tmp_path / "ray"))
    assert sum(json.loads(again.output)["metrics"]["cache"]["computed"].values()) == 0
    import prmh  # the Python API too

    api = prmh.evaluate(world="sim", search=["best-of-n", "beam", "backtrack"], budget=[4],
                        limit=12, ray={"actors": 1}, results_dir=tmp_path / "api")  # fmt: skip
    assert tables(api.record) == tables(local_record)


def test_a_killed_ray_run_resumes_from_what_it_stored(tmp_path):
    """SIGKILL the driver of a Ray run once it has stored some work; the local run that
    follows computes only the rest and prints the whole run's table."""
    results = tmp_path / "killed"
    args = ["--world", "sim", "--search", "beam", "-n", "8", "--limit", "200", "--json"]
    env = {**os.environ, "PRMH_RESULTS_DIR": str(results)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "prmh", "eval", *args, "--executor", "ray"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    store = results / "store.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if store.exists() and _entries(store) > 50:
            break
        time.sleep(0.2)
    running = driver.poll() is None
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    driver.wait()
    stored = _entries(store)
    assert running and stored > 50  # killed mid-run, with work stored
    resumed = subprocess.run([sys.executable, "-m", "prmh", "eval", *args], env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads(resumed.stdout)
    assert sum(record["metrics"]["cache"]["from_store"].values()) >= stored
    assert sum(record["metrics"]["cache"]["computed"].values()) > 0  # the rest
    fresh = subprocess.run([sys.executable, "-m", "prmh", "eval", *args],
                           env={**env, "PRMH_RESULTS_DIR": str(tmp_path / "fresh")},
                           capture_output=True, text=True)  # fmt: skip
    assert tables(record) == tables(json.loads(fresh.stdout))


def _entries(store):
    import sqlite3

    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
