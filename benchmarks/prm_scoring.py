"""PRM scoring speed: prmh's one-pass scorer against naive per-prefix scoring.

Many research scripts score step k by running the model on the prefix up to step k, once per
step, and read full-vocabulary logits. prmh runs each solution once and reads every step from
that pass. This benchmark scores the same solutions both ways with a small local Math-Shepherd
style model and reports forward tokens, wall time, tokens per second, the agreement of the two
(they must give the same scores), and the achieved fraction of the machine's measured matmul
throughput.

    python benchmarks/prm_scoring.py                    # 64 solutions of 8-20 steps
    python benchmarks/prm_scoring.py --solutions 16 --hidden 128   # a quick run
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import warnings
from pathlib import Path


def matmul_flops(torch, dtype, seconds: float = 2.0, size: int = 1024) -> float:
    """Measured FLOP/s of a square matmul on this machine, the throughput ceiling."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - start)


def make_solutions(count: int, rng: random.Random) -> list[tuple[str, list[str]]]:
    words = "add the numbers then subtract seven and multiply by three to get the total".split()
    out = []
    for i in range(count):
        steps = [
            " ".join(rng.choice(words) for _ in range(rng.randint(10, 20)))
            + f" = {rng.randint(1, 99)}."
            for _ in range(rng.randint(8, 20))
        ]
        out.append((f"Problem {i}: what is the total after these operations?", steps))
    return out


def naive_scores(torch, model, recipe, good_bad, solutions) -> tuple[list[list[float]], int]:
    """Score every prefix alone with full logits, as per-prefix research scripts do."""
    scores, tokens = [], 0
    with torch.inference_mode():
        for question, steps in solutions:
            row = []
            for k in range(1, len(steps) + 1):
                enc = recipe.encode(question, steps[:k])
                logits = model(input_ids=torch.tensor([enc.ids])).logits[0, enc.positions[-1]]
                row.append(torch.softmax(logits[list(good_bad)], -1)[0].item())
                tokens += len(enc.ids)
            scores.append(row)
    return scores, tokens


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--solutions", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-tokens-per-batch", type=int, default=8192)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from prmh import Problem, ScoreRequest
    from prmh.registry import load_registry
    from prmh.testing import save_tiny_prm, tiny_tokenizer

    rng = random.Random(0)
    solutions = make_solutions(args.solutions, rng)
    corpus = [" ".join(steps) for _, steps in solutions[:32]]
    tokenizer = tiny_tokenizer(extra_tokens=["ки"], corpus=corpus, vocab_size=2000)
    with tempfile.TemporaryDirectory() as tmp:
        directory = save_tiny_prm(
            Path(tmp) / "prm", "lm", tokenizer, layers=args.layers, hidden=args.hidden
        )
        prm = (
            load_registry()
            .create(
                "prm",
                "math-shepherd",
                {
                    "model": str(directory),
                    "max_tokens_per_batch": args.max_tokens_per_batch,
                    "max_length": 4096,
                },
            )
            .instance
        )
        requests = [
            ScoreRequest(Problem(str(i), q, ""), tuple(s)) for i, (q, s) in enumerate(solutions)
        ]
        params = sum(p.numel() for p in prm.scorer.model.parameters())

        prm.score(requests[:2])  # warm-up
        start = time.perf_counter()
        fast = prm.score(requests)
        fast_seconds = time.perf_counter() - start
        fast_tokens = sum(s.num_tokens for s in fast)

        start = time.perf_counter()
        slow, slow_tokens = naive_scores(
            torch, prm.scorer.model, prm.recipe, prm.recipe.good_bad, solutions
        )
        slow_seconds = time.perf_counter() - start

    worst = max(
        abs(a - b) for f, s in zip(fast, slow, strict=True) for a, b in zip(f.probs, s, strict=True)
    )
    peak = matmul_flops(torch, torch.float32)
    steps = sum(len(s) for _, s in solutions)
    print(
        f"model: Qwen2 {args.layers} layers, hidden {args.hidden}, {params / 1e6:.2f}M parameters, "
        f"vocabulary {len(tokenizer)}; {torch.get_num_threads()} CPU threads"
    )
    print(f"solutions: {len(solutions)}, steps: {steps} (8-20 per solution)")
    header = ("scorer", "forward tokens", "seconds", "tokens/s", "% of matmul peak")
    print("{:<12}{:>16}{:>10}{:>12}{:>18}".format(*header))
    for name, tokens, seconds in (
        ("one-pass", fast_tokens, fast_seconds),
        ("per-prefix", slow_tokens, slow_seconds),
    ):
        share = 100 * 2 * params * tokens / seconds / peak
        print(f"{name:<12}{tokens:>16,}{seconds:>10.2f}{tokens / seconds:>12,.0f}{share:>17.1f}%")
    print(
        f"forward tokens: {slow_tokens / fast_tokens:.1f}x fewer; "
        f"wall time: {slow_seconds / fast_seconds:.1f}x lower"
    )
    print(
        f"largest score difference between the two: {worst:.2e}; "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
