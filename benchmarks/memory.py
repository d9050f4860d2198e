"""Memory of step searches as the budget grows: peak resident memory of a sim eval with beam,
DVTS and beam-IAS at each budget, against the same command read back from its finished store
(Python, prmh and the plan, nothing computed), per generation the run computed.

What a table must hold grows with what it computes (each step sample, each finished
candidate): memory held that grows no faster than the generations computed is linear in the
work. Before prmh let each round's partial solutions go, the workspace held them all
to the end: 2.71 GB peak at N=256 on 100 problems, now 1.03 GB (token texts interned too).

    python benchmarks/memory.py                      # 100 problems, budgets 16, 64, 256
    python benchmarks/memory.py --limit 20 --budgets 16 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def peak(command: list[str]) -> tuple[float, dict]:
    """(peak resident MB, the run record) of one ``prmh eval --json`` in its own process."""
    env = {**os.environ, "PRMH_PROGRESS_SECONDS": "3600"}
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(command)} failed")
        out.seek(0)
        return usage.ru_maxrss / 1024, json.loads(out.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    searches = ["--search", "beam", "--search", "dvts", "--search", "beam-ias"]
    print(f"sim world, {args.limit} problems, beam + DVTS + beam-IAS, aggregators min and last; "
          f"1-minute load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'budget':>6} {'peak MB':>9} {'read back':>10} {'held MB':>8} "
          f"{'generations':>12} {'KB each':>8}")  # fmt: skip
    held, made = [], []
    for budget in args.budgets:
        with tempfile.TemporaryDirectory() as results:
            command = [sys.executable, "-m", "prmh", "eval", "--world", "sim", "--limit",
                       str(args.limit), "--prm", "oracle:noise=1", *searches, "-n", str(budget),
                       "--results-dir", results, "--json"]  # fmt: skip
            first, record = peak(command)
            floor, _ = peak(command)
        held.append(first - floor)
        made.append(record["metrics"]["cache"]["computed"]["generation"])
        print(f"{budget:>6} {first:>9.0f} {floor:>10.0f} {held[-1]:>8.0f} {made[-1]:>12,} "
              f"{held[-1] * 1024 / made[-1]:>8.2f}")  # fmt: skip
    growth = (held[-1] / held[0]) / (made[-1] / made[0])
    print(
        f"memory held grew {held[-1] / held[0]:.1f}x for {made[-1] / made[0]:.1f}x the "
        f"generations: {growth:.2f} (at most 1: linear in the work, or better)"
    )


if __name__ == "__main__":
    main()
