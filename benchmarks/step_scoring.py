"""PRM tokens a step search reads against best-of-N, at about the same generated tokens.

The tiny world's default models (the `tiny` generator and the calibrated implicit PRM, what a
bare `prmh eval` runs) search the same arith problems with best-of-N and beam-IAS at budget N,
each in a fresh results directory. Best-of-N scores each finished solution once; a step search
asks the PRM about every partial solution each round, and with the PRM's prefix cache only each
new step is read. Printed per problem: generated tokens, the PRM tokens each search's table
accounts, and the tokens the PRM's policy model actually ran (a hook on its forward; the
reference model reads the same), then the ratio per generated token, beam-IAS over best-of-N.
Token counts do not vary from run to run (fixed seeds); the seconds are what the tables
charge a problem (its generations' and PRM calls' time), from one run of each.

    python benchmarks/step_scoring.py              # 50 problems, N=16 (the default run's)
    python benchmarks/step_scoring.py --limit 10 --budget 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

SEARCHES = ("best-of-n", "beam-ias")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--budget", type=int, default=16)
    return parser.parse_args()


def _count_policy_tokens(counts: dict[str, int]) -> None:
    """Count the input tokens of every forward pass of a model loaded from the tiny world's
    ``prm`` folder (the implicit PRM's policy)."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2Model

    forward = Qwen2Model.forward

    def counted(self, *args, **kwargs):
        if Path(self.config._name_or_path).name == "prm":
            ids = kwargs.get("input_ids", args[0] if args else None)
            counts["policy"] = counts.get("policy", 0) + (0 if ids is None else ids.numel())
        return forward(self, *args, **kwargs)

    Qwen2Model.forward = counted


def _search(search: str, args: argparse.Namespace, counts: dict[str, int]) -> dict:
    """One search in a fresh results directory: its cell's compute per problem, the policy's
    forward tokens per problem."""
    import prmh

    counts.clear()
    with tempfile.TemporaryDirectory() as tmp:
        result = prmh.evaluate(
            results_dir=tmp, world="tiny", search=search, budget=args.budget, limit=args.limit,
            agg="min", selector="argmax", progress=lambda *a: None,
        )  # fmt: skip
    table = result.record["metrics"]["tables"][0]
    row = next(r for r in table["rows"] if r.get("kind") == "prm")
    compute = row["cells"][0]["compute"]
    problems = len(table["problem_ids"])
    return {**compute, "forward": counts.get("policy", 0) / problems}


def main() -> None:
    args = _arguments()
    warnings.filterwarnings("ignore")
    counts: dict[str, int] = {}
    _count_policy_tokens(counts)
    found = {search: _search(search, args, counts) for search in SEARCHES}
    print(
        f"tiny world, arith, {args.limit} problems, budget {args.budget}; 1-minute load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'per problem':<14}{'generated':>11}{'PRM tokens':>12}{'PRM forward':>13}{'seconds':>9}"
    )
    for search, c in found.items():
        print(
            f"{search:<14}{c['generated_tokens']:>11,.0f}{c['prm_tokens']:>12,.0f}"
            f"{c['forward']:>13,.0f}{c['wall_seconds']:>9.2f}"
        )
    (best, beam) = (found[s] for s in SEARCHES)
    for what in ("prm_tokens", "forward"):
        ratio = (beam[what] / beam["generated_tokens"]) / (best[what] / best["generated_tokens"])
        name = "accounted PRM tokens" if what == "prm_tokens" else "PRM forward tokens"
        print(f"beam-IAS / best-of-N {name} per generated token: {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
