"""The evaluation matrix's overhead: a 3 PRMs × 5 aggregators × 5 budgets sim run against one
command with the same 3 PRMs at their largest cell only (one aggregator, N=16), a fully
cached re-run of the matrix (read back from the finished run) and one with --recompute
(searches replayed from the store) against its first run, and the floor under a cached
re-run: starting Python, importing and loading what any evaluation needs. Interleaved pairs,
median ratios. Python caches compiled modules as it does by default (a
PYTHONDONTWRITEBYTECODE in the environment is dropped: an installed prmh has them).

    python benchmarks/matrix.py [--pairs 3] [--limit 200]
    python benchmarks/matrix.py --phases      # where the matrix's extra time and a re-run's go
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PRMS = ["--prm", "oracle", "--prm", "oracle:noise=1", "--prm", "oracle:noise=3"]
MATRIX = [*PRMS, *(x for a in ("mean", "min", "last", "max", "prod") for x in ("--agg", a)),
          *(x for n in (1, 2, 4, 8, 16) for x in ("-n", str(n)))]  # fmt: skip
CELL = [*PRMS, "--agg", "min", "-n", "16"]
AS_INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(args: list[str], results: str, limit: int) -> float:
    command = [sys.executable, "-m", "prmh", "eval", "--world", "sim", "--limit", str(limit)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *args, "--results-dir", results], capture_output=True, env=AS_INSTALLED
    )
    if done.returncode != 0:
        sys.exit(done.stderr.decode()[-2000:])
    return time.perf_counter() - started


FLOOR = (  # what every `prmh eval` imports and loads before it reads the store
    "import prmh.cli.evaluation, prmh.api, prmh.engine, prmh.reuse, prmh.report, rich.table; "
    "from prmh.registry import load_registry; load_registry()"
)


def floor_seconds() -> float:
    """Starting Python and importing and loading what an evaluation needs, nothing run."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR], check=True, env=AS_INSTALLED)
    return time.perf_counter() - started


PHASES = (  # (label, module, attribute): timed in-process, each call's seconds summed
    ("loading the registry", "prmh.registry", "load_registry"),
    ("problems and plan", "prmh.engine", "prepare"),
    ("plan key", "prmh.reuse", "plan_key"),
    ("run record (provenance, saving)", "prmh.records", "RunRecord.__init__"),
    ("run record (provenance, saving)", "prmh.records", "RunRecord.save"),
    ("reading back the finished run", "prmh.reuse", "finished_run"),
    ("reading back the finished run", "prmh.reuse", "reused_metrics"),
    ("searches and recording", "prmh.engine.plan", "_Table.search_cell"),
    ("recording each budget", "prmh.engine.plan", "_Table.record"),
    ("result table", "prmh.engine.plan", "result_table"),
    ("per-sample file", "prmh.samples", "SampleLog.write"),
    ("printing", "prmh.report", "print_record"),
)


LABELS = list(dict.fromkeys(label for label, _, _ in PHASES))


def timed_phases(out: str, args: list[str]) -> None:
    """Run ``prmh eval`` with each of ``PHASES`` timed, the seconds written to ``out``."""
    import importlib

    spent = dict.fromkeys(LABELS, 0.0)
    for label, module, attribute in PHASES:
        owner = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _timed(getattr(owner, name), label, spent))
    from prmh.cli import main as prmh_main

    sys.argv = ["prmh", "eval", *args]
    started = time.perf_counter()
    try:
        prmh_main()
    except SystemExit as e:
        if e.code:
            raise
    Path(out).write_text(json.dumps({**spent, "total": time.perf_counter() - started}))


def _timed(f: Any, label: str, spent: dict[str, float]) -> Any:
    @functools.wraps(f)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start

    return timed


def _phases_of(args: list[str], results: str) -> dict[str, float]:
    """One ``prmh eval`` in a child process with its phases timed (``timed_phases``), and
    the process's wall time less the command's: starting Python and the imports before it
    (this script's few among them)."""
    out = Path(results) / "phases.json"
    command = [sys.executable, __file__, "--phases-of", str(out), "--", *args,
               "--results-dir", results]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=AS_INSTALLED)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(done.stderr[-2000:])
    timed = json.loads(out.read_text())
    timed["searches and recording"] -= timed["recording each budget"]
    timed["the rest"] = timed["total"] - sum(timed[label] for label in LABELS)
    return {**timed, "starting Python, imports": wall - timed["total"], "process": wall}


def phases(pairs: int, limit: int) -> None:
    """First runs of one cell and of the matrix, interleaved, and the matrix read back from
    its finished run: each phase's median (the searches without their recording), the rest
    of the command and what the process spent before it."""
    names = ("one cell", "matrix", "re-run")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    world = ["--world", "sim", "--limit", str(limit)]
    for _ in range(pairs):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            runs["one cell"].append(_phases_of([*world, *CELL], a))
            runs["matrix"].append(_phases_of([*world, *MATRIX], b))
            runs["re-run"].append(_phases_of([*world, *MATRIX], b))  # read back
    print(f"{'ms, medians of ' + str(pairs):40} {'one cell':>9} {'matrix':>9} {'extra':>9} "
          f"{'re-run':>9}")  # fmt: skip
    rows = [*LABELS, "the rest", "total", "starting Python, imports", "process"]
    for label in rows:
        cell, full, again = (statistics.median(r[label] * 1e3 for r in runs[n]) for n in names)
        shown = {"searches and recording": "searches (generating, scoring, ranking)",
                 "the rest": "the rest (grading, store, imports within)",
                 "total": "the command (in-process)"}.get(label, label)  # fmt: skip
        print(f"{shown:40} {cell:9.1f} {full:9.1f} {full - cell:+9.1f} {again:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--phases", action="store_true",
                        help="time the engine's phases in first runs, in-process")  # fmt: skip
    parser.add_argument("--phases-of", help=argparse.SUPPRESS)  # the child of --phases
    parser.add_argument("eval_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.eval_args and not args.phases_of:
        parser.error(f"unexpected arguments: {' '.join(args.eval_args)}")
    if args.phases_of:
        return timed_phases(args.phases_of, args.eval_args)
    if args.phases:
        return phases(args.pairs, args.limit)
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
