"""Vote keys on 206 written answer pairs: which equivalent answers vote together.

Prints the confusion counts (pairs grouped or kept apart, against whether they are equal) of
the text canonical form prmh used before and of the graders' vote keys, computed as an
evaluation computes them: in grading workers under the grading timeout.

    python benchmarks/vote_keys.py [--grader sympy|math-verify]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from answer_pairs import PAIRS

from prmh.grading import GraderPool
from prmh.mathgrade import canonical


def confusion(same: dict[str, str]) -> dict[str, int]:
    counts = {
        "equal, grouped": 0,
        "equal, apart": 0,
        "different, grouped": 0,
        "different, apart": 0,
    }
    for a, b, equal in PAIRS:
        grouped = same[a] == same[b]
        counts[f"{'equal' if equal else 'different'}, {'grouped' if grouped else 'apart'}"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grader", default="sympy")
    args = parser.parse_args()
    answers = sorted({x for a, b, _ in PAIRS for x in (a, b)})
    started = time.perf_counter()
    with GraderPool() as pool:
        keys = pool.keys(args.grader, answers, timeout=10.0)
    seconds = time.perf_counter() - started
    print(f"{len(PAIRS)} pairs ({sum(e for *_, e in PAIRS)} equal), {len(answers)} answers")
    print("text canonical form:", confusion({a: canonical(a) for a in answers}))
    print(f"{args.grader} vote keys:", confusion(dict(zip(answers, keys, strict=True))))
    print(f"keys computed in {seconds:.2f} s (worker start included)")


if __name__ == "__main__":
    main()
