"""Decoding speed of the ``hf`` generator on the shipped tiny generator (or, with
``--vocabulary N``, a random 2-layer model with an N-entry vocabulary: 152064 is Qwen2.5's,
where sampling each row from its own generator weighs most on a CPU).

1. tokens/s of prmh's decoding loop against ``transformers``' ``generate()`` with the same
   prompts, batch, sampling and length (128 samples, 160 new tokens at most), median of
   interleaved pairs;
2. text handling per sample as length grows: the token pieces (``Generation.tokens``) and the
   stop-string check, for random token sequences of 128 / 512 / 2,048 tokens, in ms per sample.

    python benchmarks/decoding.py [--pairs 3] [--samples 128]
    python benchmarks/decoding.py --vocabulary 152064 --samples 64 --new-tokens 48
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time


def _generator(batch: int, vocabulary: int, new_tokens: int, folder: str):
    from prmh.registry import load_registry

    registry = load_registry()
    task = registry.create("task", "arith").instance
    if not vocabulary:
        return task, registry.create("generator", "tiny", {"batch_size": batch}).instance.built()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from prmh.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    config = AutoConfig.for_model(
        "qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=vocabulary,
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    options = {"model": folder, "batch_size": batch, "max_new_tokens": new_tokens,
               "temperature": 1.0, "device": "cpu"}  # fmt: skip
    return task, registry.create("generator", "hf", options).instance


def _requests(task, count: int):
    from prmh import SampleRequest

    problems = task.problems(count)
    return [SampleRequest(p, task.prompt(p), 1, 0) for p in problems]


def _prmh(generator, requests) -> tuple[int, float]:
    started = time.perf_counter()
    out = generator.sample(requests)
    return sum(g.num_tokens for row in out for g in row), time.perf_counter() - started


def _generate(generator, requests) -> tuple[int, float]:
    """The same batch through ``model.generate()``: left-padded, sampling at the generator's
    temperature, stopped at its end-of-sequence tokens."""
    import torch

    model = generator.model
    contexts = generator.contexts(requests)
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), generator.pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, c in enumerate(contexts):
        ids[b, width - len(c) :], mask[b, width - len(c) :] = torch.tensor(c), 1
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, do_sample=True,
            temperature=generator.sampling.temperature, top_p=1.0, top_k=0,
            max_new_tokens=generator.sampling.max_new_tokens,
            eos_token_id=sorted(generator.eos), pad_token_id=generator.pad,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    return tokens_until_end(torch, out[:, width:], generator.eos), seconds


def tokens_until_end(torch, new, eos) -> int:
    """Tokens ``generate()`` produced per row up to and including its first end of sequence
    (what prmh's loop generates before it stops a row)."""
    ended = torch.isin(new, torch.tensor(sorted(eos), device=new.device))
    return int(torch.where(ended.any(1), ended.int().argmax(1) + 1, new.shape[1]).sum())


def _text_handling(generator, length: int, samples: int) -> float:
    """ms per sample to turn ``length`` random token ids into pieces and check a stop string
    after every token, as decoding does."""
    from prmh.plugins.generators.detokenize import Detokenizer, token_pieces

    rng = random.Random(length)
    vocab = [i for i in range(len(generator.tokenizer)) if i not in generator.eos]
    started = time.perf_counter()
    for _ in range(samples):
        ids = [rng.choice(vocab) for _ in range(length)]
        text = Detokenizer(generator.tokenizer)
        for token in ids:
            text.tail_stop(("\n\n\n\n",), text.push(token))
        token_pieces(generator.tokenizer, ids, text)
    return (time.perf_counter() - started) / samples * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--vocabulary", type=int, default=0, help="a random model's; 0: tiny")
    parser.add_argument("--new-tokens", type=int, default=48, help="with --vocabulary")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1-minute load average, {os.cpu_count()} CPUs)")
    folder = tempfile.TemporaryDirectory()
    task, generator = _generator(args.samples, args.vocabulary, args.new_tokens, folder.name)
    requests = _requests(task, args.samples)
    ratios = []
    for pair in range(args.pairs):
        ours_tokens, ours = _prmh(generator, requests)
        theirs_tokens, theirs = _generate(generator, requests)
        ratios.append((ours_tokens / ours) / (theirs_tokens / theirs))
        print(
            f"pair {pair + 1}: prmh {ours_tokens / ours:.0f} tokens/s ({ours_tokens} tokens), "
            f"generate() {theirs_tokens / theirs:.0f} tokens/s ({theirs_tokens} tokens)"
        )
    print(f"prmh / generate() tokens/s: {statistics.median(ratios):.2f}x (target >= 1.0x)")
    for length in (128, 512, 2048):
        ms = _text_handling(generator, length, 8 if length < 2048 else 3)
        print(f"text handling at {length} tokens: {ms:.1f} ms per sample")


if __name__ == "__main__":
    main()
