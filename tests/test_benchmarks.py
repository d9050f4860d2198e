"""Benchmarks run small: the GPU one in its tiny CPU mode (so the script a lent GPU machine
runs works), the beam search one and the step scoring one on two problems, the matrix one on
five, the memory one on three."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_in_tiny_shapes(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--solutions", "4",
               "--samples", "4", "--new-tokens", "8", "--out", str(tmp_path),
               "--profile"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PRMH_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PRM scoring at max_tokens_per_batch 8192:" in done.stdout
    assert "hf generation:" in done.stdout
    result = json.loads((tmp_path / "results.json").read_text())
    assert 0 < result["sampling_share"] < 1
    timed = result["prm_seconds_by_batch_tokens"]
    assert list(timed) == ["8192", "32768"] and all(len(t) == 3 for t in timed.values())
    assert all(len(r) == 3 for r in result["generation_runs"].values())
    assert "median of 3 interleaved pairs" in done.stdout
    assert all("aten::" in (tmp_path / f"profile-{k}.txt").read_text() for k in ("prm", "hf"))


@pytest.mark.parametrize("world", ["random", "tiny"])
def test_the_beam_search_benchmark_runs_and_both_ways_agree(world):
    """benchmarks/beam_search.py on two problems: batched and one-at-a-time beam search give the
    same beams (the caches it empties between runs only save work); the tiny world's trained
    models finish solutions, so the comparison is not of empty lists."""
    command = [sys.executable, str(ROOT / "benchmarks" / "beam_search.py"), "--problems", "2",
               "--budget", "4", "--width", "2", "--steps", "2", "--pairs", "1",
               "--world", world, "--profile"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PRMH_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "same results: True" in done.stdout and "at most reach" in done.stdout
    steps = re.search(r"run: (\d+) decoding steps, .* attention \d+ ms \((\d+)%\)", done.stdout)
    assert steps and int(steps.group(1)) > 0 and 0 < int(steps.group(2)) < 100
    assert re.search(r"8 rows [\d.]+ µs, 128 rows [\d.]+ µs", done.stdout)
    finished = int(re.search(r"(\d+) finished solutions", done.stdout).group(1))
    if world == "tiny":
        assert finished > 0


def test_the_step_scoring_benchmark_matches_the_tables():
    """benchmarks/step_scoring.py on two problems prints both searches and both ratios."""
    command = [sys.executable, str(ROOT / "benchmarks" / "step_scoring.py"), "--limit", "2",
               "--budget", "2"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PRMH_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line}
    assert {"best-of-n", "beam-ias"} <= set(rows)
    assert all(float(v.replace(",", "")) > 0 for v in rows["beam-ias"])
    assert done.stdout.count("per generated token:") == 2


def test_the_prefix_cache_benchmark_runs():
    """benchmarks/prefix_cache.py: both indexes find every extension (it asserts so)."""
    command = [sys.executable, str(ROOT / "benchmarks" / "prefix_cache.py")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(" steps ") == 4


def test_the_decoding_benchmark_runs_at_a_large_vocabulary():
    """benchmarks/decoding.py --vocabulary: a random model with a vocabulary large enough for
    the threaded draws, against generate(), on two rows."""
    command = [sys.executable, str(ROOT / "benchmarks" / "decoding.py"), "--vocabulary", "9000",
               "--samples", "2", "--new-tokens", "4", "--pairs", "1"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PRMH_THREADS": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "prmh / generate() tokens/s:" in done.stdout


def test_the_matrix_benchmark_prints_every_ratio_and_its_floor():
    """benchmarks/matrix.py on five sim problems, one pair: the matrix, cached and
    --recompute ratios and the floor under a cached re-run."""
    command = [sys.executable, str(ROOT / "benchmarks" / "matrix.py"), "--pairs", "1",
               "--limit", "5"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for ratio in ("matrix / one cell", "cached re-run / first run", "--recompute re-run",
                  "floor / first run"):  # fmt: skip
        assert re.search(rf"{re.escape(ratio)}[^:]*: \d+\.\d\dx", done.stdout), done.stdout


def test_the_matrix_benchmark_times_the_engines_phases():
    """benchmarks/matrix.py --phases on five sim problems: each phase of a first run of one
    cell and of the matrix, and of the matrix read back, timed in-process (the engine's
    methods it wraps still exist and are called), the rest of the command and what the
    process spent before it."""
    command = [sys.executable, str(ROOT / "benchmarks" / "matrix.py"), "--phases", "--pairs",
               "1", "--limit", "5"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    number = r"\s+(-?[\d.]+)"
    found = re.findall(rf"^(\S.*?){number}{number}\s+[-+][\d.]+{number}$", done.stdout, re.M)
    rows = {label: tuple(map(float, ms)) for label, *ms in found}
    assert len(rows) == 14, done.stdout
    searches = rows["searches (generating, scoring, ranking)"]
    assert searches[0] > 0 and searches[1] > 0 and searches[2] == 0, done.stdout  # not re-run
    assert rows["reading back the finished run"][2] > 0, done.stdout
    for label in ("loading the registry", "run record (provenance, saving)", "printing"):
        assert all(ms > 0 for ms in rows[label]), done.stdout
    command_ms, process = rows["the command (in-process)"], rows["process"]
    assert all(p > c > 0 for p, c in zip(process, command_ms, strict=True)), done.stdout


def test_the_memory_benchmark_reads_each_budgets_peak():
    """benchmarks/memory.py on three problems: each budget's peak above its read-back run, per
    computed generation, and the growth against the generations."""
    command = [sys.executable, str(ROOT / "benchmarks" / "memory.py"), "--limit", "3",
               "--budgets", "2", "8"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[0].isdigit()]
    assert [r[0] for r in rows] == ["2", "8"]
    assert all(float(r[1]) > float(r[2]) > 0 for r in rows)  # the run holds more than read-back
    assert int(rows[1][4].replace(",", "")) > int(rows[0][4].replace(",", "")) > 0
    assert "generations:" in done.stdout
