"""Beam search speed: all problems batched together against one problem at a time.

A tiny local Qwen2 generator (`hf`) and a tiny Math-Shepherd-style PRM run step-level beam
search on arith questions. prmh's searches send every problem's beams to the generator and the
PRM in one batched call per round; the comparison runs the same search problem by problem, as
scripts that loop over questions do. Both start from an empty store, so nothing is cached.

    python benchmarks/beam_search.py                       # 16 problems, budget 8, width 4
    python benchmarks/beam_search.py --problems 8 --budget 4
    python benchmarks/beam_search.py --world random        # a random model of a given size
    python benchmarks/beam_search.py --profile             # where a decoding step's time goes

`--world tiny` (the default) runs the tiny world's trained generator and implicit PRM (`prmh
eval`'s default models), whose beams go on step by step to an answer, so the results compared
are real solutions. `--world random` uses a random-weight model of the size given; its steps
end at "." and most beams stop without one (few rounds, no finished solution).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
import timeit
import warnings
from pathlib import Path
from typing import Any


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step-tokens", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--world", choices=("random", "tiny"), default="tiny")
    parser.add_argument("--profile", action="store_true",
                        help="one more batched run under torch's profiler: the generator's "
                             "decoding steps, their attention and matrix products")  # fmt: skip
    return parser.parse_args()


def _components(args: argparse.Namespace, tmp: Path) -> dict:
    """The generator and PRM (one saved random model, or the tiny world's), arith, beam
    search and the rest."""
    from prmh.registry import load_registry
    from prmh.testing import save_tiny_prm, tiny_tokenizer

    registry = load_registry()
    task = registry.create("task", "arith")
    problems = task.instance.problems(args.problems)
    if args.world == "tiny":  # its own step length and search depth (--steps, --step-tokens unused)
        return {
            "task": task,
            "generator": registry.create("generator", "tiny"),
            "prm": registry.create("prm", "tiny"),
            "splitter": registry.create("splitter", "double-newline"),
            "aggregate": registry.create("aggregator", "min").instance,
            "search": registry.create("search", "beam", {"width": args.width}).instance,
            "problems": problems,
        }
    tokenizer = tiny_tokenizer(extra_tokens=["ки"])
    model = str(save_tiny_prm(tmp / "lm", "lm", tokenizer, layers=args.layers, hidden=args.hidden))
    options = {"model": model, "max_new_tokens": args.step_tokens, "batch_size": 64}
    # A step ends at the next full stop (frequent enough in the tiny model's samples), for the
    # search and for the PRM alike: the splitter's separator is where the search stops.
    search = {"width": args.width, "max_steps": args.steps}
    return {
        "task": task,
        "generator": registry.create("generator", "hf", options),
        "prm": registry.create("prm", "math-shepherd", {"model": model}),
        "splitter": registry.create("splitter", "separator", {"at": "."}),
        "aggregate": registry.create("aggregator", "last").instance,
        "search": registry.create("search", "beam", search).instance,
        "problems": problems,
    }


def _run(args: argparse.Namespace, tmp: Path) -> tuple[list, list, list[tuple[float, float]]]:
    """Beam search over every problem in one call, then one problem at a time, each in a
    fresh store and with the models' prefix caches emptied: both results and each pair's
    seconds."""
    from prmh.engine import CacheStats, SearchContext, Workspace
    from prmh.store import Store, ensure_results_dir

    c = _components(args, tmp)
    generator, prm, search, problems = c["generator"], c["prm"], c["search"], c["problems"]

    def context(name: str) -> SearchContext:
        store = Store(ensure_results_dir(tmp / name))
        workspace = Workspace(c["task"], generator, store, "bench", CacheStats(), lambda *a: None)
        return SearchContext(workspace, prm, c["splitter"], c["aggregate"], args.budget)

    read: dict[str, list[int]] = {}
    args.linear = {}
    for name, model in _models(generator, prm):
        layers = getattr(model, "model", model).layers
        args.linear[name] = sum(p.numel() for p in layers.parameters() if p.dim() == 2)
        log = read.setdefault(name, [])
        model.register_forward_pre_hook(
            lambda m, a, kw, log=log: log.append(kw["input_ids"].numel()), with_kwargs=True
        )
    search.run(context("warm-up"), problems[:2], args.budget, 0)  # first calls set things up
    for log in read.values():
        log.clear()
    pairs = []
    for pair in range(args.pairs):  # interleaved: batched, then one at a time
        _forget(generator, prm)
        start = time.perf_counter()
        batched = search.run(context(f"batched-{pair}"), problems, args.budget, 0)
        batched_seconds = time.perf_counter() - start
        if pair == 0:
            args.forward_tokens = {name: sum(log) for name, log in read.items()}
        _forget(generator, prm)
        start = time.perf_counter()
        single = []
        for i, problem in enumerate(problems):
            single += search.run(context(f"single-{pair}-{i}"), [problem], args.budget, 0)
        pairs.append((batched_seconds, time.perf_counter() - start))
    args.profiled = []
    if args.profile:
        _forget(generator, prm)
        args.profiled = _profile_decoding(generator.instance.model, lambda: search.run(
            context("profiled"), problems, args.budget, 0))  # fmt: skip
    return batched, single, pairs


def _profile_decoding(model: Any, run: Any) -> list[str]:
    """Where the generator's decoding steps (one new token a row) spend their time in one
    batched run, by torch's profiler; and the attention kernel's time per row and KV head,
    as 8 rows (one problem's beams) and 128 rows (the batch) take it."""
    import torch

    marks: list[Any] = []

    def enter(module, args, kwargs) -> None:
        if kwargs["input_ids"].shape[1] == 1:
            marks.append(torch.autograd.profiler.record_function("decoding step"))
            marks[-1].__enter__()

    def leave(module, args, kwargs, output) -> None:
        if marks:
            marks.pop().__exit__(None, None, None)

    hooks = [model.register_forward_pre_hook(enter, with_kwargs=True),
             model.register_forward_hook(leave, with_kwargs=True)]  # fmt: skip
    with torch.autograd.profiler.profile() as trace:
        run()
    for hook in hooks:
        hook.remove()
    steps = [e for e in trace.function_events if e.name == "decoding step"]
    ops: dict[str, float] = {}
    stack = [child for e in steps for child in e.cpu_children]
    while stack:
        e = stack.pop()
        ops[e.name] = ops.get(e.name, 0.0) + e.self_cpu_time_total / 1e3
        stack += e.cpu_children
    total = sum(e.cpu_time_total for e in steps) / 1e3
    attention = sum(ms for name, ms in ops.items() if "attention" in name)
    products = sum(ops.get(name, 0.0) for name in ("aten::mm", "aten::addmm", "aten::bmm"))
    lines = [f"profiled batched run: {len(steps)} decoding steps, {total:.0f} ms; attention "
             f"{attention:.0f} ms ({100 * attention / total:.0f}%), matrix products "
             f"{products:.0f} ms ({100 * products / total:.0f}%)"]  # fmt: skip
    config, per_row = model.config, []
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    size = config.hidden_size // heads
    for rows in (8, 128):  # a new token a row over 150 positions, its query heads packed per
        # KV head as transformers' sdpa attention packs them when one token is read
        q = torch.randn(rows, kv_heads, heads // kv_heads, size)
        k, v = (torch.randn(rows, kv_heads, 150, size) for _ in range(2))
        mask = torch.ones(rows, 1, 1, 150, dtype=torch.bool)
        attend = functools.partial(torch.nn.functional.scaled_dot_product_attention, q, k, v,
                                   attn_mask=mask)  # fmt: skip
        seconds = min(timeit.repeat(attend, number=200, repeat=7)) / 200
        per_row.append(f"{rows} rows {1e6 * seconds / rows / kv_heads:.2f} µs")
    return [*lines, f"attention per row and KV head (150 positions): {', '.join(per_row)}"]


def _models(generator, prm) -> list[tuple[str, Any]]:
    """(name, model) of the generator and each model the PRM runs (an implicit PRM: two)."""
    scorer = prm.instance.scorer
    if hasattr(scorer, "backbone"):
        return [("generator", generator.instance.model), ("PRM", scorer.backbone)]
    return [("generator", generator.instance.model), ("PRM", scorer.policy),
            ("reference", scorer.reference)]  # fmt: skip


def _forget(generator, prm) -> None:
    """Nothing kept from the run before: the generator's kept prefixes, the PRM's cache."""
    generator.instance.kept.clear()
    prm.instance.scorer.prefixes.clear()


def _same(batched: list, single: list) -> bool:
    """The same solutions in the same order, their scores equal but for the last float bits
    (a padded batch sums in another order than a lone row)."""

    def solutions(results: list) -> list:
        return [[(c.solution.generation.text, c.score) for c in r.candidates] for r in results]

    a, b = solutions(batched), solutions(single)
    if [[t for t, _ in r] for r in a] != [[t for t, _ in r] for r in b]:
        return False
    scores = [
        (x, y) for ra, rb in zip(a, b, strict=True) for (_, x), (_, y) in zip(ra, rb, strict=True)
    ]
    return all(abs(x - y) <= 1e-4 for x, y in scores)


def main() -> None:
    args = _arguments()
    warnings.filterwarnings("ignore")
    from prmh.cli import tune_gc

    tune_gc()  # the garbage collector as `prmh` commands set it
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        batched, single, pairs = _run(args, Path(tmp))  # fills args
    batched_seconds = statistics.median(b for b, _ in pairs)
    tokens = sum(r.compute.generated_tokens for r in batched)
    same = _same(batched, single)
    models = (
        "the tiny world's generator and implicit PRM, steps up to 160 tokens"
        if args.world == "tiny"
        else f"random Qwen2 {args.layers} layers, hidden {args.hidden}, steps up to "
        f"{args.step_tokens} tokens, at most {args.steps}"
    )
    finished = sum(len(r.candidates) for r in batched)
    print(
        f"{models}; beam search: {len(batched)} problems, budget {args.budget}, width "
        f"{args.width}, {finished} finished solutions; {torch.get_num_threads()} CPU threads; "
        f"1-minute load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"batched across problems: {batched_seconds:6.2f} s ({tokens / batched_seconds:,.0f} "
        "generated tokens/s), median of the pairs"
    )
    print(f"one problem at a time:   {statistics.median(s for _, s in pairs):6.2f} s")
    for name, count in args.forward_tokens.items():
        print(f"{name} forward tokens per generated token (batched): {count / tokens:.1f}")
    ratios = ", ".join(f"{s / b:.2f}" for b, s in pairs)
    print(f"pairs (one at a time / batched): {ratios}")
    speedup = statistics.median(s / b for b, s in pairs)
    print(f"speed-up: {speedup:.1f}x (target >= 3x); same results: {same}")
    # Both ways compute the same tokens: their matrix products alone bound what batching saves.
    from prm_scoring import matmul_flops

    flops = sum(2 * args.linear[name] * n for name, n in args.forward_tokens.items())
    floor = flops / matmul_flops(torch, torch.float32)
    single_seconds = statistics.median(s for _, s in pairs)
    print(
        f"the decoder matrices alone at this machine's measured matmul peak: {floor:.2f} s, so "
        f"batching can at most reach {single_seconds / floor:.1f}x here"
    )
    for line in args.profiled:
        print(line)


if __name__ == "__main__":
    main()
