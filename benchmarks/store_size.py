"""What the store keeps per generation: packed (``prmh.packing``) against the plain JSON of
store version 1, for the same generations of one sim run (200 problems, N=16), and the time to
read them all back each way.

    python benchmarks/store_size.py [--limit 200]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    from prmh.packing import unpack_generation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as results:
        command = [sys.executable, "-m", "prmh", "eval", "--world", "sim", "-n", "16"]
        command += ["--limit", str(args.limit), "--results-dir", results]
        subprocess.run(command, check=True, capture_output=True)
        db = sqlite3.connect(Path(results) / "store.sqlite")
        packed = [v for (v,) in db.execute("SELECT value FROM entries WHERE kind='generation'")]
    started = time.perf_counter()
    generations = [unpack_generation(json.loads(v)) for v in packed]
    packed_read = time.perf_counter() - started
    plain = [json.dumps(g.to_json(), separators=(",", ":")) for g in generations]
    started = time.perf_counter()
    for v in plain:
        unpack_generation(json.loads(v))
    plain_read = time.perf_counter() - started
    per_1000 = lambda values: sum(len(v.encode()) for v in values) / len(values) * 1000 / 1e6  # noqa: E731
    print(f"{len(packed)} generations")
    for label, values, seconds in (("plain JSON (store version 1)", plain, plain_read),
                                   ("packed", packed, packed_read)):  # fmt: skip
        print(f"{label}: {per_1000(values):.2f} MB per 1,000, read in {seconds:.2f} s")
    print(f"packed / plain size: {per_1000(packed) / per_1000(plain):.2f}x")


if __name__ == "__main__":
    main()
