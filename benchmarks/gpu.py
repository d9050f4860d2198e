"""GPU benchmark for a lent machine: prmh's PRM scoring and hf generation in real model shapes.

Random-weight models are built on the device in the shapes of Qwen2.5-Math-PRM-7B (a Qwen2.5-7B
backbone and the two-layer classifier head) and Qwen2.5-1.5B (the generator), saved, and loaded
through prmh's own components (``qwen-math-prm``, ``hf``) in bf16, so nothing is downloaded.
It reports PRM scoring tokens/s and the share of the GPU's measured bf16 matmul peak (FLOPs
counted as in benchmarks/prm_scoring.py), and generation tokens/s against ``generate()``.

    python benchmarks/gpu.py                  # one H100: about 6 minutes, most of it saving
    python benchmarks/gpu.py --layers 8       # fewer layers of the same width: faster
    python benchmarks/gpu.py --tiny           # a CPU smoke test of the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

PRM_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
              num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)  # fmt: skip
GENERATOR_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, vocab_size=151936)  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=512)  # fmt: skip


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
    from prm_scoring import forward_flops

    from prmh import Problem, ScoreRequest
    from prmh.registry import load_registry

    shape = TINY if args.tiny else PRM_7B
    started = time.perf_counter()
    path = build(torch, shape, args.layers, tokenizer, device, dtype, tmp / "prm", head=True)
    options = {"model": str(path), "device": device.type, "dtype": args.dtype,
               "prefix_cache_tokens": 0}  # fmt: skip
    prm = load_registry().create("prm", "qwen-math-prm", options).instance
    setup = time.perf_counter() - started
    requests = [
        ScoreRequest(Problem(str(i), q, ""), tuple(s))
        for i, (q, s) in enumerate(solutions(args.solutions, random.Random(0)))
    ]
    prm.score(requests[:4])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    scored = prm.score(requests)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    lengths = [s.num_tokens for s in scored]
    head = prm.scorer.model.score  # Linear(h, h), ReLU, Linear(h, 2) at each step
    rows = [(head[0].out_features + 2) * len(s.probs) for s in scored]
    flops = forward_flops(prm.scorer.backbone, lengths, rows)
    del prm
    return {"prm_tokens": sum(lengths), "prm_seconds": seconds, "prm_flops": flops,
            "prm_setup_seconds": setup}  # fmt: skip


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
    generator.sample([SampleRequest(problem, "warm up", 2, 1)])
    picking = _timed(generator, "_pick")  # sampling each row's token (it ends in a sync)
    start = time.perf_counter()
    ours = sum(g.num_tokens for g in generator.sample(requests)[0])
    ours_seconds = time.perf_counter() - start
    ids = torch.tensor(generator.contexts(requests[:1]) * args.samples, device=device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = generator.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0,
            max_new_tokens=args.new_tokens, pad_token_id=generator.pad,
            eos_token_id=sorted(generator.eos),
        )  # fmt: skip
    seconds = time.perf_counter() - start
    from decoding import tokens_until_end

    theirs = tokens_until_end(torch, out[:, ids.shape[1] :], generator.eos)
    return {"generated_tokens": ours, "generate_seconds": ours_seconds,
            "sampling_seconds": picking[0], "reference_tokens": theirs,
            "reference_seconds": seconds}  # fmt: skip


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

    peak = matmul_flops(torch, dtype, size=8192 if device.type == "cuda" else 512, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  "matmul_peak_flops": peak}  # fmt: skip
        result |= score_prm(args, torch, device, dtype, tokenizer, Path(tmp))
        result |= generate(args, torch, device, dtype, tokenizer, Path(tmp))
    share = result["prm_flops"] / result["prm_seconds"] / peak
    print(f"{result['device']}: bf16 matmul peak {peak / 1e12:.1f} TFLOP/s" if args.dtype == "bf16"
          else f"{result['device']}: fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(f"PRM scoring: {result['prm_tokens'] / result['prm_seconds']:,.0f} tokens/s, "
          f"{100 * share:.1f}% of the matmul peak (target >= 50%)")  # fmt: skip
    ours = result["generated_tokens"] / result["generate_seconds"]
    theirs = result["reference_tokens"] / result["reference_seconds"]
    sampling = result["sampling_seconds"] / result["generate_seconds"]
    print(f"hf generation: {ours:,.0f} tokens/s; generate(): {theirs:,.0f} tokens/s "
          f"({ours / theirs:.2f}x); sampling took {100 * sampling:.0f}% of it")  # fmt: skip
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
