"""The Ray executor's overhead against the local executor, side by side on the sim world (where
work units are tiny, so the overhead shows): the same plan into fresh results directories, the
Ray instance started once beforehand (its start-up reported apart).

    python benchmarks/ray_executor.py [--limit 200] [--actors 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    import ray

    from prmh.api import run_plan
    from prmh.matrix import build_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--actors", type=int, default=1)
    args = parser.parse_args()
    options = {"world": "sim", "search": ["best-of-n", "beam"], "budget": [4, 16]}
    plan = build_plan({}, {**options, "limit": args.limit})
    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    startup = time.perf_counter() - started
    seconds = {}
    for name, executor in (("local", None), ("ray", {"actors": args.actors})):
        with tempfile.TemporaryDirectory() as results:
            started = time.perf_counter()
            run_plan(plan, results, ["benchmark"], None, 5.0, ray=executor)
            seconds[name] = time.perf_counter() - started
    ray.shutdown()
    print(f"Ray start-up {startup:.1f} s (once per command)")
    print(
        f"local {seconds['local']:.2f} s, ray {seconds['ray']:.2f} s "
        f"({args.actors} actor(s) per model): {seconds['ray'] / seconds['local']:.2f}x"
    )


if __name__ == "__main__":
    main()
