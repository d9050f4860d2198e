"""GPU benchmark for a lent machine: prmh's PRM scoring and hf generation in real model shapes.

Random-weight models are built on the device in the shapes of Qwen2.5-Math-PRM-7B (a Qwen2.5-7B
backbone and the two-layer classifier head) and Qwen2.5-1.5B (the generator), saved, and loaded
through prmh's own components (``qwen-math-prm``, ``hf``) in bf16, so nothing is downloaded.
It reports PRM scoring tokens/s, its share of the GPU's measured bf16 matmul peak (FLOPs
counted as in benchmarks/prm_scoring.py) and its padding at prmh's default token budget per
batch and at others, and generation tokens/s against ``generate()``; each timed ``--repeats``
times (3 by default), interleaved, and reported as the median, every pass printed. ``--profile``
writes torch.profiler's busiest operators of one scoring pass and one generation call of each
kind to OUT. ``benchmarks/on_gpu.sh`` runs it with the CUDA tests in one call.

    python benchmarks/gpu.py                  # one H200: 135 s at 2 repeats (2026-11-28)
    python benchmarks/gpu.py --layers 8       # fewer layers of the same width: faster
    python benchmarks/gpu.py --tiny           # a CPU smoke test of the script itself
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

PRM_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
              num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)  # fmt: skip
GENERATOR_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, vocab_size=151936)  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=512)  # fmt: skip


BEGAN = time.perf_counter()


def say(message: str) -> None:
    """Progress with the seconds since the start, printed at once: a run cut off by its time
    limit still shows where the time went."""
    print(f"[{time.perf_counter() - BEGAN:6.1f} s] {message}", flush=True)


def build(torch, shape, layers, tokenizer, device, dtype, directory: Path, head: bool) -> Path:
    """A random-weight checkpoint of ``shape`` (a PRM backbone with a classifier head, or a
    causal LM), initialised on the device and saved with the tokenizer."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    shape = {**shape, "num_hidden_layers": layers or shape["num_hidden_layers"]}
    config = AutoConfig.for_model(
        "qwen2", **shape, max_position_embeddings=32768, tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    with torch.device(device):
        model = (AutoModel if head else AutoModelForCausalLM).from_config(config, dtype=dtype)
    model.save_pretrained(directory)
    if head:
        width = shape["hidden_size"]
        extra = {
            "score.0.weight": torch.randn(width, width) / width**0.5,
            "score.0.bias": torch.zeros(width),
            "score.2.weight": torch.randn(2, width) / width**0.5,
            "score.2.bias": torch.zeros(2),
        }
        save_file({k: v.to(dtype) for k, v in extra.items()}, directory / "score.safetensors")
    tokenizer.save_pretrained(directory)
    del model
    say(f"built and saved {directory.name} ({layers or shape['num_hidden_layers']} layers)")
    return directory


def solutions(count: int, rng: random.Random) -> list[tuple[str, list[str]]]:
    words = "add the numbers then subtract seven and multiply by three to get the total".split()
    return [
        (f"Problem {i}: what is the total?",
         [" ".join(rng.choice(words) for _ in range(rng.randint(20, 40))) + " = 42."
          for _ in range(rng.randint(8, 16))])
        for i in range(count)
    ]  # fmt: skip


def score_prm(args, torch, device, dtype, tokenizer, tmp: Path) -> dict:
    from prm_scoring import forward_flops, padding_share

    from prmh import Problem, ScoreRequest
    from prmh.registry import load_registry

    shape = TINY if args.tiny else PRM_7B
    started = time.perf_counter()
    path = build(torch, shape, args.layers, tokenizer, device, dtype, tmp / "prm", head=True)
    options = {"model": str(path), "device": device.type, "dtype": args.dtype,
               "prefix_cache_tokens": 0}  # fmt: skip
    prm = load_registry().create("prm", "qwen-math-prm", options).instance
    setup = time.perf_counter() - started
    say(f"loaded the PRM through prmh (max_tokens_per_batch {prm.scorer.max_tokens_per_batch})")
    requests = [
        ScoreRequest(Problem(str(i), q, ""), tuple(s))
        for i, (q, s) in enumerate(solutions(args.solutions, random.Random(0)))
    ]
    prm.score(requests[:4])  # warm-up
    timed: dict[int, list[float]] = {}
    lengths: list[int] = []
    default = prm.scorer.max_tokens_per_batch  # first: prmh's default for the device
    budgets = (default, *(b for b in args.batch_tokens if b != default))
    for _ in range(args.repeats):  # the budgets interleaved: warm-up hits none alone
        for budget in budgets:
            prm.scorer.max_tokens_per_batch = budget
            seconds, scored = _score_timed(torch, device, prm, requests)
            timed.setdefault(budget, []).append(seconds)
            lengths = lengths or [s.num_tokens for s in scored]
            say(f"scored {len(requests)} solutions in {timed[budget][-1]:.2f} s "
                f"(max_tokens_per_batch {budget})")  # fmt: skip
    if args.profile:  # one pass at prmh's default budget
        prm.scorer.max_tokens_per_batch = budgets[0]
        run = functools.partial(prm.score, requests)
        _profile(torch, device, run, Path(args.out or ".") / "profile-prm.txt")
    head = prm.scorer.model.score  # Linear(h, h), ReLU, Linear(h, 2) at each step
    rows = [(head[0].out_features + 2) * len(r.steps) for r in requests]
    flops = forward_flops(prm.scorer.backbone, lengths, rows)
    del prm
    padding = {budget: padding_share(lengths, budget) for budget in timed}
    return {"prm_tokens": sum(lengths), "prm_flops": flops, "prm_setup_seconds": setup,
            "prm_seconds_by_batch_tokens": timed,
            "prm_padding_by_batch_tokens": padding}  # fmt: skip


def _score_timed(torch, device, prm, requests) -> tuple[float, list]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    scored = prm.score(requests)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, scored


def generate(args, torch, device, dtype, tokenizer, tmp: Path) -> dict:
    from prmh import Problem, SampleRequest
    from prmh.registry import load_registry

    shape = TINY if args.tiny else GENERATOR_1_5B
    path = build(torch, shape, args.layers, tokenizer, device, dtype, tmp / "gen", head=False)
    options = {"model": str(path), "device": device.type, "dtype": args.dtype,
               "max_new_tokens": args.new_tokens, "batch_size": args.samples}  # fmt: skip
    generator = load_registry().create("generator", "hf", options).instance
    problem = Problem("p", "What is 2 + 3?", "5")
    requests = [SampleRequest(problem, "Q: What is 2 + 3?\nA:", args.samples, 0)]
    ids = torch.tensor(generator.contexts(requests[:1]) * args.samples, device=device)
    from decoding import tokens_until_end

    def ours() -> int:
        return sum(g.num_tokens for g in generator.sample(requests)[0])

    def theirs() -> int:
        with torch.inference_mode():
            out = generator.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0,
                max_new_tokens=args.new_tokens, pad_token_id=generator.pad,
                eos_token_id=sorted(generator.eos),
            )  # fmt: skip
        return tokens_until_end(torch, out[:, ids.shape[1] :], generator.eos)

    generator.sample([SampleRequest(problem, "warm up", 2, 1)])
    picking = _timed(generator.sampler, "pick")  # sampling each row's token (it ends in a sync)
    runs: dict[str, list[tuple[int, float]]] = {"hf": [], "generate()": []}
    for _ in range(args.repeats):  # interleaved
        for name, run in (("hf", ours), ("generate()", theirs)):
            start = time.perf_counter()
            tokens = run()
            runs[name].append((tokens, time.perf_counter() - start))
            say(f"{name}: {tokens} tokens in {runs[name][-1][1]:.2f} s")
    if args.profile:
        for name, run in (("hf", ours), ("generate", theirs)):
            _profile(torch, device, run, Path(args.out or ".") / f"profile-{name}.txt")
    spent = sum(seconds for _, seconds in runs["hf"])
    return {"generation_runs": runs, "sampling_share": picking[0] / spent}


def _profile(torch, device, run, path: Path) -> None:
    """torch.profiler's busiest operators in one call of ``run`` (host time, and the GPU's
    where there is one), written to ``path``; the host table's top lines printed."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    activities += [ProfilerActivity.CUDA] if device.type == "cuda" else []
    with profile(activities=activities) as trace:
        run()
    averages = trace.key_averages()
    tables = [averages.table(sort_by="self_cpu_time_total", row_limit=30)]
    if device.type == "cuda":
        tables.append(averages.table(sort_by="self_cuda_time_total", row_limit=30))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(tables))
    say(f"profile of {path.stem}, busiest on the host:")
    print("\n".join(tables[0].splitlines()[:14]), flush=True)


def _timed(instance, name: str) -> list[float]:
    """Seconds spent in ``instance.name`` from now on, summed into the list's one item."""
    spent, method = [0.0], getattr(instance, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    setattr(instance, name, timed)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on any device")
    parser.add_argument("--layers", type=int, default=0, help="decoder layers (0: the real count)")
    parser.add_argument("--solutions", type=int, default=256)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--batch-tokens", type=int, nargs="*", default=[8192, 32768],
                        help="other max_tokens_per_batch values to time the PRM at")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each kind")
    parser.add_argument("--profile", action="store_true",
                        help="profile one scoring pass and one generation call of each kind "
                             "into OUT")  # fmt: skip
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for results.json")
    args = parser.parse_args()
    import torch

    from prmh.testing import tiny_tokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("no CUDA GPU here: run with --tiny for a smoke test of the script.")
    args.dtype = "bf16" if device.type == "cuda" else "fp32"
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = tiny_tokenizer(extra_tokens=["<extra_0>"])
    from prm_scoring import matmul_flops

    size = 8192 if device.type == "cuda" else 512
    peak = matmul_flops(torch, dtype, size=size, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  "matmul_peak_flops": peak}  # fmt: skip
        result |= score_prm(args, torch, device, dtype, tokenizer, Path(tmp))
        result |= generate(args, torch, device, dtype, tokenizer, Path(tmp))
    # the peak again, on a GPU warmed by the work (the first reading met idle clocks): the
    # larger of the two is the ceiling every share above is taken of
    peak = result["matmul_peak_flops"] = max(
        peak, matmul_flops(torch, dtype, size=size, device=device)
    )
    print(f"{result['device']}: bf16 matmul peak {peak / 1e12:.1f} TFLOP/s" if args.dtype == "bf16"
          else f"{result['device']}: fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(f"1-minute load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for budget, runs in result["prm_seconds_by_batch_tokens"].items():
        shares = [100 * result["prm_flops"] / s / peak for s in runs]
        print(f"PRM scoring at max_tokens_per_batch {budget}: "
              f"{result['prm_tokens'] / statistics.median(runs):,.0f} tokens/s, "
              f"{statistics.median(shares):.1f}% of the matmul peak (target >= 50%; passes: "
              f"{', '.join(f'{x:.1f}%' for x in shares)}), "
              f"{100 * result['prm_padding_by_batch_tokens'][budget]:.1f}% padding")  # fmt: skip
    rates = {name: [t / s for t, s in runs] for name, runs in result["generation_runs"].items()}
    pairs = [a / b for a, b in zip(rates["hf"], rates["generate()"], strict=True)]
    ours, theirs = (statistics.median(rates[name]) for name in ("hf", "generate()"))
    print(f"hf generation: {ours:,.0f} tokens/s; generate(): {theirs:,.0f} tokens/s "
          f"({statistics.median(pairs):.2f}x, median of {len(pairs)} interleaved pairs: "
          f"{', '.join(f'{x:.2f}' for x in pairs)}); "
          f"sampling took {100 * result['sampling_share']:.0f}% of it")  # fmt: skip
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
