"""One place decides how many threads prmh's model work uses, and how often the cycle
collector runs while it works (``COLLECTOR``).

torch starts one thread per core it sees and, with OpenMP's default wait policy, keeps idle
threads spinning; on a shared machine (other jobs, grading workers, a laptop's browser) they
fight for the same cores and every parallel region waits for its slowest thread. prmh sets:

- the thread count: ``--threads`` (``prmh.evaluate(threads=...)``), else ``PRMH_THREADS``, else
  ``OMP_NUM_THREADS``, else the CPUs this process may run on (``os.sched_getaffinity``: a
  container's or a job scheduler's CPU set, not the machine's);
- ``RAYON_NUM_THREADS`` (unless set) to the same count: the pool a tokenizer's batch call
  (a search round's contexts) runs on starts one thread per CPU otherwise;
- ``OMP_WAIT_POLICY=PASSIVE`` (unless set) when other work already keeps the CPUs busy (over
  a quarter of their time in a 0.1 s sample of ``/proc/stat``): idle threads then sleep instead
  of spinning against it. On a quiet machine spinning is faster, so it is left on.

Neither changes a result: the thread count is the same whatever the load. Both are applied
before torch is imported (``require_hf``, through which every component imports it, calls
``configure``) and to torch if it already is.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterator

from prmh.errors import PrmhError

THREADS_ENV = "PRMH_THREADS"
# What an evaluation builds (generations, scores, candidates, results) lives until it ends and
# holds no cycles: the cycle collector runs every 50,000 allocations instead of 700 (2,000 on
# Python 3.13). With the default thresholds the default evaluation, called from Python, made 9
# full passes over the ~380k objects of torch, transformers and the models: 1.1 s of 28.
COLLECTOR = (50_000, 10, 10)
_probed: list[bool] = []


def available_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_count(requested: int | None = None) -> int:
    for source, value in (
        ("--threads", requested),
        (THREADS_ENV, os.environ.get(THREADS_ENV)),
        ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS")),
    ):
        if value is None or value == "":
            continue
        try:
            count = int(value)
        except ValueError:
            raise PrmhError(f"{source} must be a whole number of threads, got {value!r}.") from None
        if count < 1:
            raise PrmhError(f"{source} must be at least 1, got {count}.")
        return count
    return available_cpus()


def busy_fraction(seconds: float = 0.1) -> float | None:
    """How busy the machine's CPUs are now (0 to 1), from two reads of ``/proc/stat``."""

    def read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return idle, sum(fields)

    first = read()
    time.sleep(seconds)
    second = read()
    if first is None or second is None or second[1] == first[1]:
        return None
    return 1 - (second[0] - first[0]) / (second[1] - first[1])


def configure(requested: int | None = None, before_torch: bool = False) -> int:
    """Decide the thread count and apply it; returns the count. ``before_torch``: torch is
    about to be imported, so decide the wait policy too (a 0.1 s look at the CPUs' load, which
    commands that never load torch skip)."""
    count = thread_count(requested)
    waiting = "OMP_WAIT_POLICY" not in os.environ and not _probed
    if before_torch and waiting and "torch" not in sys.modules:
        _probed.append(True)  # once per process: the first command decides
        if (busy_fraction() or 0.0) > 0.25:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["OMP_NUM_THREADS"] = str(count)
    # the tokenizers library's batch calls run on a rayon pool, one thread per CPU unless told
    os.environ.setdefault("RAYON_NUM_THREADS", str(count))
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """The cycle collector at ``COLLECTOR`` for a library call, the caller's thresholds
    restored afterwards (``prmh`` commands set it for their whole process)."""
    before = gc.get_threshold()
    gc.set_threshold(*COLLECTOR)
    try:
        yield
    finally:
        gc.set_threshold(*before)
