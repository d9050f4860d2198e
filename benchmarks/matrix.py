"""The evaluation matrix's overhead: a 3 PRMs × 5 aggregators × 5 budgets sim run against one
command with the same 3 PRMs at their largest cell only (one aggregator, N=16), a fully
cached re-run of the matrix (read back from the finished run) and one with --recompute
(searches replayed from the store) against its first run, and the floor under a cached
re-run: starting Python, importing and loading what any evaluation needs. Interleaved pairs,
median ratios. Python caches compiled modules as it does by default (a
PYTHONDONTWRITEBYTECODE in the environment is dropped: an installed prmh has them).

    python benchmarks/matrix.py [--pairs 3] [--limit 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PRMS = ["--prm", "oracle", "--prm", "oracle:noise=1", "--prm", "oracle:noise=3"]
MATRIX = [*PRMS, *(x for a in ("mean", "min", "last", "max", "prod") for x in ("--agg", a)),
          *(x for n in (1, 2, 4, 8, 16) for x in ("-n", str(n)))]  # fmt: skip
CELL = [*PRMS, "--agg", "min", "-n", "16"]


def timed(args: list[str], results: str, limit: int) -> float:
    command = [sys.executable, "-m", "prmh", "eval", "--world", "sim", "--limit", str(limit)]
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed
    done = subprocess.run([*command, *args, "--results-dir", results], capture_output=True, env=env)
    if done.returncode != 0:
        sys.exit(done.stderr.decode()[-2000:])
    return time.perf_counter() - started


FLOOR = (  # what every `prmh eval` imports and loads before it reads the store
    "import prmh.cli.evaluation, prmh.api, prmh.engine, prmh.reuse, prmh.report, rich.table; "
    "from prmh.registry import load_registry; load_registry()"
)


def floor_seconds() -> float:
    """Starting Python and importing and loading what an evaluation needs, nothing run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR], check=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    matrix, cached, replayed, floors = [], [], [], []
    print(f"1-minute load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    for pair in range(args.pairs):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            cell = timed(CELL, a, args.limit)
            full = timed(MATRIX, b, args.limit)
            again = timed(MATRIX, b, args.limit)
            replay = timed([*MATRIX, "--recompute"], b, args.limit)
            floor = floor_seconds()
        matrix.append(full / cell)
        floors.append(floor / full)
        cached.append(again / full)
        replayed.append(replay / full)
        print(f"pair {pair + 1}: one cell {cell:.2f} s, matrix {full:.2f} s, cached re-run "
              f"{again:.2f} s, --recompute {replay:.1f} s, floor {floor:.2f} s",
              flush=True)  # fmt: skip
    print(f"matrix / one cell: {statistics.median(matrix):.2f}x (target <= 1.2x)")
    print(f"cached re-run / first run: {statistics.median(cached):.2f}x (target <= 0.1x)")
    print(f"--recompute re-run / first run: {statistics.median(replayed):.2f}x")
    print(f"floor / first run: {statistics.median(floors):.2f}x (starting Python, importing "
          "and loading what any evaluation needs before it reads the store)")  # fmt: skip


if __name__ == "__main__":
    main()
