"""Regenerate the README's figures (one of each kind) from runs on the bundled worlds:

    python docs/figures/regenerate.py [--out docs/figures] [--limit 100] [--format svg]

Everything runs on CPU in a few minutes: the simulated world (solutions, rollouts and the exact
oracle PRM, with noise) for the scaling, compute and correlation figures; the shipped tiny PRMs
(before and after calibration) for the reliability diagram and for ProcessBench, whose samples
are simulated solutions labelled by the exact oracle (the first step it rejects).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def prmh(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "prmh", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"prmh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def recorded(results: Path, *args: str) -> str:
    """Run a prmh command; the path of the record it wrote (ids made in one second do not
    sort by time, so the new one is found by difference)."""
    before = set((results / "runs").glob("*.json"))
    prmh(*args)
    (record,) = set((results / "runs").glob("*.json")) - before
    return str(record)


def processbench_samples(path: Path, limit: int) -> None:
    """ProcessBench-format samples: simulated arith solutions, the label the oracle's first
    rejected step (-1: none)."""
    from prmh import ScoreRequest
    from prmh.registry import load_registry

    registry = load_registry()
    task = registry.create("task", "arith").instance
    generator = registry.create("generator", "sim").instance
    oracle = registry.create("prm", "oracle").instance
    problems = task.problems(limit)
    from prmh import SampleRequest

    pools = generator.sample([SampleRequest(p, task.prompt(p), 2, 0) for p in problems])
    rows = []
    for p, pool in zip(problems, pools, strict=True):
        for i, g in enumerate(pool):
            steps = [s for s in g.text.split("\n\n") if s.strip()]
            (scores,) = oracle.score([ScoreRequest(p, tuple(steps))])
            wrong = [k for k, x in enumerate(scores.probs) if x < 0.5]
            rows.append(
                {"id": f"{p.id}-{i}", "problem": p.question, "steps": steps,
                 "label": wrong[0] if wrong else -1, "final_answer_correct": not wrong}
            )  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--format", choices=("svg", "png", "pdf"), default="svg")
    args = parser.parse_args()
    limit = str(args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = ["--results-dir", str(work / "results")]
        matrix = ["--prm", "oracle:quantiles=true,noise=1", "--prm", "oracle:noise=3", "--agg",
                  "min", "--search", "best-of-n", "--search", "beam-ias", "-n", "1", "-n", "4",
                  "-n", "16", "--limit", limit]  # fmt: skip
        evaluation = recorded(work / "results", "eval", "--world", "sim", *matrix, *results)
        rollouts = work / "rollouts.jsonl"
        prmh("rollout", "--limit", limit, "-n", "4", "-k", "8", "--out", str(rollouts), *results)
        calibration = recorded(work / "results", "analyze", "calibration", "--prm", "tiny",
                               "--prm", "tiny-calibrated", "--rollouts", str(rollouts),
                               *results)  # fmt: skip
        correlation = recorded(work / "results", "analyze", "correlation", "--prm", "oracle",
                               "--prm", "oracle:noise=3", "--limit", limit, "-n", "4",
                               "--thresholds", "8,16,32,64", *results)  # fmt: skip
        samples = work / "processbench.jsonl"
        processbench_samples(samples, int(args.limit))
        processbench = recorded(work / "results", "analyze", "processbench", "--prm", "tiny",
                                "--prm", "tiny-calibrated", "--task", "processbench-gsm8k",
                                "-T", f"data={samples}", *results)  # fmt: skip
        for kind, run in (("scaling", evaluation), ("compute", evaluation),
                          ("reliability", calibration), ("correlation", correlation),
                          ("processbench", processbench)):  # fmt: skip
            print(
                prmh("plot", run, "--kind", kind, "--out", str(args.out / f"{kind}.{args.format}")),
                end="",
            )


if __name__ == "__main__":
    main()
