"""The evaluation matrix's overhead: a 3 PRMs × 5 aggregators × 5 budgets sim run against one
command with the same 3 PRMs at their largest cell only (one aggregator, N=16), and a fully
cached re-run of the matrix against its first run. Interleaved pairs, median ratios.

    python benchmarks/matrix.py [--pairs 3] [--limit 200]
"""

from __future__ import annotations

import argparse
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
    done = subprocess.run([*command, *args, "--results-dir", results], capture_output=True)
    if done.returncode != 0:
        sys.exit(done.stderr.decode()[-2000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    matrix, cached = [], []
    for pair in range(args.pairs):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            cell = timed(CELL, a, args.limit)
            full = timed(MATRIX, b, args.limit)
            again = timed(MATRIX, b, args.limit)
        matrix.append(full / cell)
        cached.append(again / full)
        print(f"pair {pair + 1}: one cell {cell:.1f} s, matrix {full:.1f} s, cached re-run "
              f"{again:.1f} s", flush=True)  # fmt: skip
    print(f"matrix / one cell: {statistics.median(matrix):.2f}x (target <= 1.2x)")
    print(f"cached re-run / first run: {statistics.median(cached):.2f}x (target <= 0.1x)")


if __name__ == "__main__":
    main()
