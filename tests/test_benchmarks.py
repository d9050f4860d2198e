"""The GPU benchmark, run in its tiny CPU mode, so the script a lent GPU machine runs works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_in_tiny_shapes(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--solutions", "4",
               "--samples", "4", "--new-tokens", "8", "--out", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PRMH_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PRM scoring:" in done.stdout and "hf generation:" in done.stdout
    assert (tmp_path / "results.json").is_file()
