"""Partial-solution scoring: one forward pass per solution against truncate-and-rescore.

The reliability analysis cuts each solution at several token thresholds and scores every cut.
Rescoring runs the PRM on each cut separately; prmh's one-pass path runs the full solution
once and, for each cut, only the tokens after what it shares with the full solution (a KV cache
cropped to the shared prefix). Both give the same scores; this reports forward tokens and wall
time for six thresholds on a small local Math-Shepherd-style model and long solutions.

    python benchmarks/correlation.py                    # 16 solutions of ~700 tokens
    python benchmarks/correlation.py --solutions 4 --hidden 128 --pairs 1

The two run in interleaved pairs (--pairs, 3 by default); the speed-up is the median of the
pairs' ratios, printed with the load they ran under.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--solutions", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--thresholds", default="128,256,384,512,768,1024")
    parser.add_argument("--pairs", type=int, default=3)
    return parser.parse_args()


def _texts(solutions: int, steps: int) -> list[str]:
    rng = random.Random(0)
    words = "add the numbers then subtract seven and multiply by three to get the total".split()
    return [
        "\n\n".join(
            " ".join(rng.choice(words) for _ in range(12)) + f" = {rng.randint(1, 99)}."
            for _ in range(steps)
        )
        for _ in range(solutions)
    ]


def _time(
    prm: Any, splitter: Any, texts: list[str], cuts: list[int], pairs: int
) -> dict[str, tuple]:
    """(seconds of each pair, forward tokens, step scores) of every text, one pass and
    truncate-and-rescore, interleaved."""
    from prmh import Problem
    from prmh.analysis.correlation import partial_scores

    problem = Problem("p", "How much is the total?", "")
    partial_scores(prm, splitter, problem, texts[0], cuts[:1], True, whole=False)  # warm-up
    timings: dict[str, tuple] = {}
    for _ in range(pairs):
        for name, one_pass in (("one-pass", True), ("rescore", False)):
            start = time.perf_counter()
            tokens, results = 0, []
            for text in texts:
                probs, _, spent = partial_scores(
                    prm, splitter, problem, text, cuts, one_pass, whole=False
                )
                tokens += spent
                results.append(probs)
            seconds = timings.get(name, ([],))[0] + [time.perf_counter() - start]
            timings[name] = (seconds, tokens, results)
    return timings


def main() -> None:
    args = _arguments()
    warnings.filterwarnings("ignore")
    from prmh.registry import load_registry
    from prmh.testing import save_tiny_prm, tiny_tokenizer

    texts = _texts(args.solutions, args.steps)
    cuts = [int(t) for t in args.thresholds.split(",")]
    registry = load_registry()
    tokenizer = tiny_tokenizer(extra_tokens=["ки"], corpus=texts[:4], vocab_size=600)
    with tempfile.TemporaryDirectory() as tmp:
        directory = save_tiny_prm(
            Path(tmp) / "prm", "lm", tokenizer, layers=args.layers, hidden=args.hidden
        )
        # no prefix cache: rescoring reads every truncation whole, as scripts that rescore do
        options = {"model": str(directory), "max_length": 4096, "prefix_cache_tokens": 0}
        prm = registry.create("prm", "math-shepherd", options)
        splitter = registry.create("splitter", "double-newline").instance
        timings = _time(prm, splitter, texts, cuts, args.pairs)
    (fast, fast_tokens, a), (slow, slow_tokens, b) = timings["one-pass"], timings["rescore"]
    worst = max(
        abs(x - y)
        for ra, rb in zip(a, b, strict=True)
        for pa, pb in zip(ra, rb, strict=True)
        for x, y in zip(pa, pb, strict=True)
    )
    length = len(tokenizer.encode(texts[0]))
    print(
        f"Qwen2 {args.layers} layers, hidden {args.hidden}; {len(texts)} solutions of about "
        f"{length} tokens, thresholds {cuts} (whole-block scores excluded from both); "
        f"1-minute load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"one-pass: {statistics.median(fast):6.2f} s, {fast_tokens:,} forward tokens")
    print(f"rescore:  {statistics.median(slow):6.2f} s, {slow_tokens:,} forward tokens")
    ratios = [s / f for f, s in zip(fast, slow, strict=True)]
    print(f"pairs (rescore / one-pass): {', '.join(f'{r:.2f}' for r in ratios)}")
    print(
        f"speed-up {statistics.median(ratios):.1f}x, {slow_tokens / fast_tokens:.1f}x fewer "
        f"tokens; largest difference {worst:.1e}"
    )


if __name__ == "__main__":
    main()
