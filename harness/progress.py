"""Progress of long commands on stderr: rich bars on a terminal, plain lines in logs.

A command passes the ``progress(stage, done, total)`` callable this returns to the library
code it runs; the library itself never prints.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from prmh.errors import PrmhError


class progress_bars:
    """Progress on stderr, one bar per stage on a terminal; elsewhere (CI, SLURM logs) one line
    per stage every ``PRMH_PROGRESS_SECONDS`` (30) seconds and when the stage ends: done/total,
    rate and time left."""

    def __enter__(self) -> Any:
        from prmh.report import literal_console

        self.console = literal_console(stderr=True)
        if not self.console.is_terminal:
            try:
                sys.stderr.fileno()
            except (AttributeError, OSError, ValueError):  # captured in-process (a test runner)
                return lambda *args: None
            return _ProgressLines(_every())
        self.bars: Any = None
        self.tasks: dict[str, Any] = {}
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if self.bars is None:  # started on the first report: nothing is drawn for a bad input
            self.bars = self._start()
        if stage not in self.tasks:
            self.tasks[stage] = self.bars.add_task(stage, total=total)
        self.bars.update(self.tasks[stage], completed=done, total=total)

    def _start(self) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bars = Progress(  # a stage's name holds the user's specs: shown as written
            TextColumn("{task.description}", style="progress.description", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        bars.start()
        return bars

    def __exit__(self, *exc: Any) -> None:
        if getattr(self, "bars", None) is not None:
            self.bars.stop()


def _every() -> float:
    """``PRMH_PROGRESS_SECONDS``: seconds between a stage's progress lines in logs (30)."""
    text = os.environ.get("PRMH_PROGRESS_SECONDS", "30")
    try:
        every = float(text)
    except ValueError:
        every = math.nan
    if not 0 <= every < math.inf:
        raise PrmhError(
            f"PRMH_PROGRESS_SECONDS must be a number of seconds >= 0, got {text!r}; unset it "
            "for a progress line every 30 s (0: one for every report)."
        )
    return every


class _ProgressLines:
    """Plain progress lines for logs (see ``progress_bars``). A stage that recurs (each round
    of a step search extends and scores again; a labeler rolls out each prefix in turn) is
    one more call of it: its first end is shown, later calls only every ``every`` seconds, as
    ``extend sim, call 12: 40/72``, each with its own rate (a line per round filled logs)."""

    def __init__(self, every: float):
        import time

        self.clock, self.every = time.monotonic, every
        self.stages: dict[str, dict[str, Any]] = {}  # start, shown, calls, done, ended

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        state = self.stages.get(stage)
        if state is None:
            state = self.stages[stage] = {"shown": now, "calls": 0, "ended": True, "done": 0}
        if state["ended"] or done < state["done"]:  # a new call of the stage
            state.update(start=now, calls=state["calls"] + 1)
        state.update(done=done, ended=done >= total)
        first_end = state["ended"] and state["calls"] == 1
        if not first_end and now - state["shown"] < self.every:
            return
        state["shown"] = now
        name = stage if state["calls"] == 1 else f"{stage}, call {state['calls']}"
        if now <= state["start"]:  # its first report: no time has passed to tell a rate by
            print(f"{name}: {done}/{total}", file=sys.stderr, flush=True)
            return
        rate = done / (now - state["start"])
        left = f", {(total - done) / rate:.0f} s left" if rate and done < total else ""
        print(f"{name}: {done}/{total} ({rate:.1f}/s{left})", file=sys.stderr, flush=True)


@contextlib.contextmanager
def training_bar() -> Iterator[Callable[[int, int, float], None]]:
    """``on_step(step, total, loss)`` for a trainer: optimiser steps as a ``progress_bars``
    stage."""
    with progress_bars() as progress:
        yield lambda step, total, loss: progress("training", step, total)
