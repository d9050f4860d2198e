"""The default `prmh eval` quiet and beside one competing busy process, as a ratio.

Each pair runs the same command twice on fresh results directories: once on a quiet machine,
once while a busy process (a pure-Python loop per competing core, started and stopped here)
takes CPU. Pairs are interleaved; the median ratio is printed with the load each ran under.

    python benchmarks/under_load.py                  # --limit 20, 3 pairs, 1 competitor
    python benchmarks/under_load.py --limit 50 --pairs 3 --competitors 1 --threads 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time


def busy() -> None:
    while True:
        pass


def run(limit: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "prmh", "eval", "--limit", str(limit), "--results-dir", tmp]
        started = time.perf_counter()
        done = subprocess.run([*args, *extra], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr[-2000:])
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="prmh eval --threads")
    args = parser.parse_args()
    extra = [] if args.threads is None else ["--threads", str(args.threads)]
    ratios = []
    for pair in range(args.pairs):
        quiet = run(args.limit, extra)
        competitors = [mp.Process(target=busy, daemon=True) for _ in range(args.competitors)]
        for c in competitors:
            c.start()
        time.sleep(1.0)
        load = os.getloadavg()[0]
        try:
            loaded = run(args.limit, extra)
        finally:
            for c in competitors:
                c.kill()
                c.join()
        ratios.append(loaded / quiet)
        print(f"pair {pair + 1}: quiet {quiet:.1f} s, with {args.competitors} busy process(es) "
              f"{loaded:.1f} s (load {load:.1f}): {loaded / quiet:.2f}x", flush=True)  # fmt: skip
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"median ratio {statistics.median(ratios):.2f}x on {cpus} CPUs (target <= 2.5x)")


if __name__ == "__main__":
    main()
