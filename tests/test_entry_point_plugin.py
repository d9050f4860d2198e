"""A real, pip-installed third-party plugin is found through its entry point."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import PYTHON, TESTS, python_env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install tests/fixture_plugin into a private directory (nothing global changes)."""
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(TESTS / "fixture_plugin", root / "src")
    target = root / "site"
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return python_env(PYTHONPATH=str(target))


def _prmh(env, *args):
    return subprocess.run(
        [PYTHON, "-m", "prmh", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_prmh_list_shows_the_installed_plugin(installed):
    out = _prmh(installed, "list", "prm")
    assert out.returncode == 0
    assert "arith-checker" in out.stdout and "Checks each step's arithmetic" in out.stdout
    plugins = json.loads(_prmh(installed, "plugins", "--json").stdout)
    ours = {p["name"]: p for p in plugins["plugins"]}["arith-checker"]
    assert ours["distribution"] == "prmh-arith-checker" and ours["version"] == "0.1.0"


def test_prmh_eval_runs_with_the_installed_plugin(installed, tmp_path):
    out = _prmh(
        installed,
        "eval",
        "--prm",
        "arith-checker",
        "--limit",
        "40",
        "-n",
        "1",
        "-n",
        "8",
        "-P",
        "good=0.8",
        "--results-dir",
        str(tmp_path),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    (prm,) = record["config"]["prm"]
    assert prm["name"] == "arith-checker" and prm["args"] == {"good": 0.8, "bad": 0.1}
    rows = {r["agg"]: r for r in record["metrics"]["tables"][0]["rows"] if r["kind"] == "prm"}
    # The checker catches slips but not traps: better than one sample, short of pass@8.
    best8 = rows["min"]["cells"][-1]["mean"]
    pass_rows = {r["label"]: r for r in record["metrics"]["tables"][0]["rows"] if "label" in r}
    assert (
        pass_rows["pass@N"]["cells"][0]["mean"] < best8 < pass_rows["pass@N"]["cells"][-1]["mean"]
    )


def test_disabling_the_plugin(installed):
    env = dict(installed, PRMH_DISABLE_PLUGINS="prmh-arith-checker")
    assert "arith-checker" not in _prmh(env, "list", "prm").stdout
