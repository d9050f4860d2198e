"""Answer grading in worker processes with a hard wall-clock timeout per answer.

Graders are registered through the ``prmh_register_grader`` hook (``prmh list grader``); the
main process resolves a name to the grader's import path and the workers import it from there,
so nothing of model text is ever evaluated in the main process and a pathological answer can
hang only a worker, which is killed and replaced. An answer that times out is counted as such,
never as wrong.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from prmh.errors import PrmhError

if TYPE_CHECKING:  # multiprocessing is imported when a pool starts
    from multiprocessing.connection import Connection


@dataclass(frozen=True)
class Grader:
    """A grader ready to use: ``function`` decides (prediction, gold); ``canonical`` is a cheap
    text form; ``key``, the form equivalent answers share for votes (default: ``canonical``),
    parses and so runs in the worker processes (``GraderPool.keys``). ``ref`` is how a worker
    process loads it again: ``module:factory()`` or ``module:function``."""

    name: str
    version: str
    function: Callable[[str, str], bool]
    canonical: Callable[[str], str]
    key: Callable[[str], str] | None = None
    ref: str = ""

    def answer_key(self, answer: str) -> str:
        return (self.key or self.canonical)(answer)


@functools.lru_cache(maxsize=64)
def load_grader(ref: str) -> Grader:
    """The grader at ``ref``: ``module:factory()`` (a factory returning a ``Grader``-protocol
    object) or ``module:function`` (a plain ``(prediction, gold) -> bool``, version "0"). How
    worker processes load graders: by import, never by name, so they need no registry."""
    call = ref.endswith("()")
    module, _, attr = ref.removesuffix("()").partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as e:
        raise PrmhError(f"grader {ref!r} could not be imported: {e}{_here(module)}") from e
    if not call:
        return Grader(ref, "0", target, str.strip, ref=ref)
    made = target()
    canonical = getattr(made, "canonical", None) or str.strip
    extra = str(getattr(made, "version", "") or "")
    return Grader(ref, extra, made.grade, canonical, getattr(made, "key", None), ref)


def _here(module: str) -> str:
    """The way out when ``module`` lies in the current directory, which the ``prmh`` command
    (unlike ``python -m prmh`` or a script beside it) does not import from."""
    from pathlib import Path

    top, here = module.split(".")[0], Path.cwd()
    if not ((here / f"{top}.py").is_file() or (here / top / "__init__.py").is_file()):
        return ""
    if any(Path(p or ".").resolve() == here for p in sys.path):
        return ""
    return (
        f" ({top} is in the current directory, which the prmh command does not import from: "
        "run it as PYTHONPATH=. prmh ..., or install the module)"
    )


def get_grader(name: str, registry: Any = None) -> Grader:
    """A grader by registered name (``prmh list grader``), or any importable
    ``module:function`` (version "0").

    Built-ins: ``math-verify`` (default for math tasks), ``sympy`` (prmh's own, no eval),
    ``numeric`` (exact numbers, for integer-answer tasks) and ``exact`` (text).
    """
    if ":" in name:
        return replace(load_grader(name), name=name)
    if registry is None:
        from prmh.registry import load_registry

        registry = load_registry()
    entry = registry.get("grader", name)
    made = load_grader(_factory_ref(entry) + "()")
    version = entry.version + (f"+{made.version}" if made.version else "")
    return replace(made, name=name, version=version)


def _factory_ref(entry: Any) -> str:
    """``module:attr`` of a registered grader's factory, which worker processes import."""
    factory = entry.factory
    if isinstance(factory, str):
        return factory
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        raise PrmhError(
            f"grader {entry.name!r} (plugin {entry.plugin}) must be registered as an importable "
            "'module:function' string or a module-level function: answers are graded in "
            "worker processes, which import it."
        )
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class Verdict:
    correct: bool
    timed_out: bool = False
    error: str | None = None
    detail: str | None = None  # the grader's own account (code: which tests failed and why)


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies (even by SIGKILL), so a worker busy
    on a pathological answer never outlives the run; elsewhere the daemon flag must do."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(0)


STARTUP_LIMIT = 120.0  # seconds a worker may take to start and import a grader


def _warm_up(ref: str) -> None:
    """Import what a grader needs (sympy, math-verify) before any answer's clock starts."""
    try:
        grader = load_grader(ref)
        grader.function("1", "1")
        grader.answer_key("1")
    except Exception:  # a broken grader shows on the real answers
        pass


def _serve(fd: int) -> None:
    """A worker process's entry (``_Worker``): grade what comes on the socket at ``fd``."""
    from multiprocessing.connection import Connection

    _worker(Connection(fd))


def _worker(conn: Connection) -> None:
    _die_with_parent()
    # Graders (math-verify) print their own warnings; they must not reach the user's terminal.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warm: set[str] = set()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        for ref, prediction, gold in job:  # gold None: the prediction's vote key
            if ref not in warm:
                _warm_up(ref)
                warm.add(ref)
                conn.send(None)  # warm: the next answer's clock starts now
            try:
                grader = load_grader(ref)
                if gold is None:
                    conn.send((grader.answer_key(prediction), None))
                else:  # a grader may say why: (correct, detail)
                    result = grader.function(prediction, gold)
                    correct, detail = result if isinstance(result, tuple) else (result, None)
                    conn.send((bool(correct), None, None if detail is None else str(detail)[:500]))
            except Exception as e:  # a grader bug must not kill the worker
                conn.send((False, f"{type(e).__name__}: {e}"))


# A worker's Python: this process's import path first, then prmh's worker loop on the socket.
BOOT = (
    "import sys; sys.path[:] = sys.argv[2:]; "
    "from prmh.grading import _serve; _serve(int(sys.argv[1]))"
)


class _Worker:
    """A grading process: a new Python on one end of a socket pair, with this process's import
    path (graders are imported by module path) and nothing else of it. multiprocessing's spawn
    also runs the parent's main script again in each child: a script that called
    ``prmh.evaluate`` without an ``if __name__ == "__main__":`` guard (the README's example
    saved as a file) started it again there, its workers died and the run stopped, and a
    script read from standard input could not be run again at all."""

    def __init__(self) -> None:
        import socket
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        self.conn = Connection(ours.detach())
        fd, path = theirs.fileno(), [str(p) for p in sys.path]
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, str(fd), *path], pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        theirs.close()
        self.chunk: list[int] = []
        self.deadline = 0.0
        self.warm: set[str] = set()  # graders this worker has imported

    def arm(self, grader: str, timeout: float) -> None:
        """Start the next answer's clock; a grader still to import gets the start-up limit."""
        self.deadline = time.monotonic() + (timeout if grader in self.warm else STARTUP_LIMIT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.conn.close()


class GraderPool:
    """Worker processes that grade answers, kept alive across calls (``with GraderPool() as
    pool: pool.grade(items)``); each answer still gets a hard timeout."""

    def __init__(self, workers: int = 2, chunk_size: int = 64):
        self.size, self.chunk_size = max(1, workers), chunk_size
        self.pool: list[_Worker] = []
        self.dead_on_start = 0  # workers in a row that died before they were warm
        self.refs: dict[str, str] = {}  # grader name -> what a worker imports

    def _ref(self, grader: str) -> str:
        if grader not in self.refs:
            ref = get_grader(grader).ref
            if ref.startswith("__main__:"):  # a worker's __main__ is its own, not the script
                raise PrmhError(
                    f"grader {ref!r} is defined in the main script; graders run in worker "
                    "processes, which import them by module path: move it into a module next "
                    "to the script and register it from there."
                )
            self.refs[grader] = ref
        return self.refs[grader]

    def __enter__(self) -> GraderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def grade(
        self,
        items: Sequence[tuple[str, str, str]],
        *,
        timeout: float = 5.0,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Verdict]:
        """Grade ``(grader, prediction, gold)`` triples; each answer gets ``timeout`` seconds."""
        return [
            Verdict(bool(v.correct), v.timed_out, v.error, v.detail)
            for v in self._run(items, timeout, on_progress)
        ]

    def keys(
        self, grader: str, answers: Sequence[str], *, timeout: float = 5.0
    ) -> list[str | None]:
        """Each answer's vote key (``Grader.answer_key``), computed in the workers; None where
        it timed out or failed."""
        done = self._run([(grader, a, None) for a in answers], timeout, None)
        return [v.correct if isinstance(v.correct, str) and v.error is None else None for v in done]

    def _run(
        self,
        items: Sequence[tuple[str, str, str | None]],
        timeout: float,
        on_progress: Callable[[int], None] | None,
    ) -> list[Any]:
        from multiprocessing import connection

        refs = {g: self._ref(g) for g in {g for g, _, _ in items}}
        items = [(refs[g], p, gold) for g, p, gold in items]
        verdicts: list[Any] = [None] * len(items)
        pending = list(range(len(items)))[::-1]
        if not pending:
            return []
        while len(self.pool) < min(self.size, len(items)):
            self.pool.append(_Worker())
        done = 0
        while pending or any(w.chunk for w in self.pool):
            for w in self.pool:
                if not w.chunk and pending:
                    w.chunk = [pending.pop() for _ in range(min(self.chunk_size, len(pending)))]
                    try:
                        w.conn.send([items[j] for j in w.chunk])
                    except OSError:  # it died before reading: seen as crashed when collected
                        pass
                    w.arm(items[w.chunk[0]][0], timeout)
            busy = [w for w in self.pool if w.chunk]
            now = time.monotonic()
            ready = connection.wait(
                [w.conn for w in busy], timeout=max(0.0, min(w.deadline for w in busy) - now)
            )
            for i, w in enumerate(self.pool):
                if w.chunk:
                    done += self._collect(i, w, w.conn in ready, items, verdicts, pending, timeout)
            if on_progress is not None:
                on_progress(done)
        return [v for v in verdicts if v is not None]

    def _collect(
        self,
        i: int,
        w: _Worker,
        readable: bool,
        items: Sequence[tuple[str, str, str | None]],
        verdicts: list[Any],
        pending: list[int],
        timeout: float,
    ) -> int:
        """Take what worker ``w`` sent; replace it when it died or its answer ran out of time
        (that answer is timed out or failed, the rest of its chunk goes back to ``pending``).
        Returns how many answers were settled."""
        settled, crashed = 0, False
        if readable:
            try:
                while w.chunk and w.conn.poll():
                    message = w.conn.recv()
                    if message is None:  # warmed up for the next answer's grader
                        w.warm.add(items[w.chunk[0]][0])
                    else:
                        verdicts[w.chunk.pop(0)] = Verdict(message[0], False, *message[1:])
                        settled += 1
                    if w.chunk:
                        w.arm(items[w.chunk[0]][0], timeout)
            except (EOFError, OSError):
                crashed = True  # the worker died (memory, signal): blame its item
        timed_out = not crashed and w.chunk and time.monotonic() >= w.deadline
        if crashed or timed_out:
            cold = items[w.chunk[0]][0] not in w.warm
            self.dead_on_start = self.dead_on_start + 1 if crashed and not w.warm else 0
            if self.dead_on_start >= 3:
                raise PrmhError(
                    "grading worker processes die as soon as they start, so no answer can be "
                    f"graded: each runs {sys.executable} with this process's sys.path and "
                    "imports prmh.grading (its error, if it printed one, is above)."
                )
            reason = "grader process died" if crashed else None
            if timed_out and cold:
                reason = f"the grader did not start within {STARTUP_LIMIT:.0f} s"
            verdicts[w.chunk.pop(0)] = Verdict(
                False, timed_out=bool(timed_out) and not cold, error=reason
            )
            settled += 1
            pending.extend(reversed(w.chunk))
            w.chunk = []
            w.kill()
            self.pool[i] = _Worker()  # a spare starts warming at once
        return settled

    def close(self) -> None:
        for w in self.pool:
            try:
                w.conn.send(None)
            except OSError:
                pass
            try:
                w.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                w.kill()
        self.pool = []


def grade_many(
    items: Sequence[tuple[str, str, str]],
    *,
    timeout: float = 5.0,
    workers: int = 2,
    chunk_size: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> list[Verdict]:
    """Grade ``(grader, prediction, gold)`` triples in a fresh pool; see ``GraderPool``."""
    with GraderPool(workers, chunk_size) as pool:
        return pool.grade(items, timeout=timeout, on_progress=on_progress)
