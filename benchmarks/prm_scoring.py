"""PRM scoring speed: prmh's one-pass scorer against naive per-prefix scoring.

Many research scripts score step k by running the model on the prefix up to step k, once per
step, and read full-vocabulary logits. prmh runs each solution once and reads every step from
that pass. This benchmark scores the same solutions both ways with a small local Math-Shepherd
style model and reports forward tokens, wall time, tokens per second, the agreement of the two
(they must give the same scores), the share of padding in prmh's length-sorted batches, and the
achieved fraction of the machine's measured matmul throughput. FLOPs are counted honestly: the
decoder's weight matrices (2 per parameter per token, embeddings and LM head excluded), causal
attention (QK and AV), and the LM-head rows each scorer applies (two rows at each step for
prmh, the whole vocabulary at every position for the per-prefix scripts).

    python benchmarks/prm_scoring.py                    # 64 solutions of 8-20 steps
    python benchmarks/prm_scoring.py --solutions 16 --hidden 128   # a quick run
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


def matmul_flops(torch, dtype, seconds: float = 2.0, size: int = 1024, device=None) -> float:
    """Measured FLOP/s of a square matmul on this machine (or ``device``), the throughput
    ceiling."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    if a.device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * n / (time.perf_counter() - start)


def forward_flops(model, lengths, head_rows_per_token) -> float:
    """Useful FLOPs of forward passes over sequences of ``lengths`` (no padding counted)."""
    config = model.config
    layers = getattr(model, "model", model).layers  # a causal LM's decoder, or a backbone
    linear = sum(p.numel() for p in layers.parameters() if p.dim() == 2)
    q_width = config.num_attention_heads * (config.hidden_size // config.num_attention_heads)
    total = 0.0
    for n, head_rows in zip(lengths, head_rows_per_token, strict=True):
        total += 2 * linear * n  # projections and MLP
        total += len(layers) * 2 * n * (n + 1) * q_width  # causal QK^T and AV
        total += 2 * config.hidden_size * head_rows  # the LM-head rows applied
    return total


def padding_share(lengths, max_tokens: int) -> float:
    """Padded tokens over all tokens in prmh's batches (``length_batches``, right padding)."""
    from prmh.plugins.prms.batching import length_batches

    padded = real = 0
    for batch in length_batches(lengths, max_tokens):
        width = max(lengths[i] for i in batch)
        padded += width * len(batch)
        real += sum(lengths[i] for i in batch)
    return 1 - real / padded


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


def naive_scores(torch, model, recipe, good_bad, solutions) -> tuple[list[list[float]], list]:
    """Score every prefix alone with full logits, as per-prefix research scripts do; the
    scores and each forward pass's length."""
    scores, tokens = [], []
    with torch.inference_mode():
        for question, steps in solutions:
            row = []
            for k in range(1, len(steps) + 1):
                enc = recipe.encode(question, steps[:k])
                logits = model(input_ids=torch.tensor([enc.ids])).logits[0, enc.positions[-1]]
                row.append(torch.softmax(logits[list(good_bad)], -1)[0].item())
                tokens.append(len(enc.ids))
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
    parser.add_argument("--repeats", type=int, default=3)
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
                    "prefix_cache_tokens": 0,  # every pass reads whole solutions
                },
            )
            .instance
        )
        requests = [
            ScoreRequest(Problem(str(i), q, ""), tuple(s)) for i, (q, s) in enumerate(solutions)
        ]
        model = prm.scorer.model
        prm.score(requests[:2])  # warm-up
        runs, fast, slow, seconds = _interleaved(args, torch, prm, requests, solutions)
        worst = max(
            abs(a - b)
            for f, s in zip(fast, slow, strict=True)
            for a, b in zip(f.probs, s, strict=True)
        )
        _report(args, torch, model, tokenizer, solutions, runs, worst)
        ratios = [s / f for f, s in zip(seconds["one-pass"], seconds["per-prefix"], strict=True)]
        print(f"pairs (per-prefix / one-pass wall time): {', '.join(f'{r:.1f}' for r in ratios)}")


def _interleaved(args, torch, prm, requests, solutions) -> tuple:
    """prmh's scorer batched and unbatched, then per-prefix scoring, interleaved
    ``--repeats`` times: per scorer (lengths, head rows applied, median seconds), both
    scorers' scores and each run's seconds."""
    runs: dict[str, tuple] = {}
    seconds: dict[str, list[float]] = {}
    model, recipe = prm.scorer.model, prm.recipe
    vocabulary = model.get_output_embeddings().weight.shape[0]
    for _ in range(args.repeats):
        for name, cap in (("one-pass", args.max_tokens_per_batch), ("one-pass, unbatched", 1)):
            prm.scorer.max_tokens_per_batch = cap  # 1: every solution alone, no padding
            start = time.perf_counter()
            fast = prm.score(requests)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
            lengths = [s.num_tokens for s in fast]
            steps = [2 * len(s.probs) for s in fast]  # two head rows at each step
            runs[name] = (lengths, steps, statistics.median(seconds[name]))
        start = time.perf_counter()
        slow, lengths = naive_scores(torch, model, recipe, recipe.good_bad, solutions)
        seconds.setdefault("per-prefix", []).append(time.perf_counter() - start)
        runs["per-prefix"] = (
            lengths,
            [vocabulary * n for n in lengths],
            statistics.median(seconds["per-prefix"]),
        )
    prm.scorer.max_tokens_per_batch = args.max_tokens_per_batch
    return runs, prm.score(requests), slow, seconds


def _report(args, torch, model, tokenizer, solutions, runs, worst) -> None:
    peak = matmul_flops(torch, torch.float32)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: Qwen2 {args.layers} layers, hidden {args.hidden}, {params / 1e6:.2f}M parameters, "
        f"vocabulary {len(tokenizer)}; {torch.get_num_threads()} CPU threads; 1-minute load "
        f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; medians of {args.repeats} "
        "interleaved runs"
    )
    steps = sum(len(s) for _, s in solutions)
    print(f"solutions: {len(solutions)}, steps: {steps} (8-20 per solution)")
    header = ("scorer", "forward tokens", "seconds", "tokens/s", "% of matmul peak")
    print("{:<22}{:>16}{:>10}{:>12}{:>18}".format(*header))
    for name, (lengths, head_rows, seconds) in runs.items():
        tokens = sum(lengths)
        share = 100 * forward_flops(model, lengths, head_rows) / seconds / peak
        print(f"{name:<22}{tokens:>16,}{seconds:>10.2f}{tokens / seconds:>12,.0f}{share:>17.1f}%")
    fast, slow = runs["one-pass"], runs["per-prefix"]
    print(
        f"forward tokens: {sum(slow[0]) / sum(fast[0]):.1f}x fewer; "
        f"wall time: {slow[2] / fast[2]:.1f}x lower"
    )
    print(
        f"padding in one-pass batches: "
        f"{100 * padding_share(fast[0], args.max_tokens_per_batch):.1f}% of tokens; batched / "
        f"unbatched wall time: {fast[2] / runs['one-pass, unbatched'][2]:.2f}x"
    )
    print(
        f"largest score difference between the two: {worst:.2e}; "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
