"""Grading throughput: 10,000 answers in worker processes with a hard timeout per answer.

A realistic mix of math answers (integers, decimals, fractions, radicals, expressions,
intervals, tuples, text) and a few hostile ones, graded by the chosen grader.

    python benchmarks/grading.py                      # math-verify, 10,000 answers
    python benchmarks/grading.py --grader sympy --answers 2000
"""

from __future__ import annotations

import argparse
import os
import random
import time

from prmh.grading import grade_many

PAIRS = [
    ("{a}", "{a}"),
    ("{a}.0", "{a}"),
    ("{b}", "{a}"),
    ("\\frac{{{a}}}{{{c}}}", "{a}/{c}"),
    ("\\frac{{{a}}}{{{c}}}", "\\frac{{{b}}}{{{c}}}"),
    ("{a}\\sqrt{{2}}", "\\sqrt{{{d}}}"),
    ("\\sqrt{{{a}}}", "\\sqrt{{{a}}}"),
    ("x^2+{a}x", "x(x+{a})"),
    ("({a},{b})", "({a}, {b})"),
    ("[{a},{b})", "[{a},{b}]"),
    ("{a}^\\circ", "{a}"),
    ("{a}\\%", "{a}"),
    ("\\text{{Monday}}", "\\text{{Monday}}"),
    ("{a} \\text{{ cm}}", "{a}"),
    ("\\frac{{\\pi}}{{{c}}}", "\\frac{{1}}{{{c}}}\\pi"),
]
HOSTILE = ["9^9^9^9", "__import__('os').getcwd()", "1" * 20_000, "{" * 2000 + "}" * 2000]


def answers(count: int, hostile_every: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(count):
        if hostile_every and i % hostile_every == 0:
            out.append((rng.choice(HOSTILE), "1"))
            continue
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(2, 9)
        pred, gold = rng.choice(PAIRS)
        values = {"a": a, "b": b, "c": c, "d": 2 * a * a}
        out.append((pred.format(**values), gold.format(**values)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--grader", default="math-verify")
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--hostile-every", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    items = [
        (args.grader, p, g) for p, g in answers(args.answers, args.hostile_every, random.Random(0))
    ]
    started = time.perf_counter()
    verdicts = grade_many(items, timeout=args.timeout, workers=args.workers)
    seconds = time.perf_counter() - started
    correct = sum(v.correct for v in verdicts)
    timed_out = sum(v.timed_out for v in verdicts)
    print(
        f"grader {args.grader}: {len(items):,} answers in {seconds:.1f} s with {args.workers} "
        f"workers ({len(items) / seconds:,.0f}/s); {correct:,} correct, {timed_out} timed out, "
        f"{sum(v.error is not None for v in verdicts)} errors"
    )


if __name__ == "__main__":
    main()
