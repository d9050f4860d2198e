"""Running generated code: a separate process with hard limits, never in prmh's own.

``run_tests(program, inputs, mode=...)`` runs a program on each test input in one sandboxed
Python process (``prmh/sandbox_runner.py``; the packages installed beside prmh, such as
``sortedcontainers`` from ``prmh[code]``, can be imported) and returns one ``TestRun`` per
input: its output, or why there is none (timeout, crash, refused, output limit). What holds
the program in, from the inside out:

- an audit hook in the runner refuses process creation (``os.system``, ``subprocess``,
  ``fork``), signals to other processes, sockets, ``ctypes`` and file access outside the
  private directory and Python's installation;
- resource limits: CPU seconds, address space, file size, open files, no core dumps;
- a private temporary directory as the working directory and home, an empty environment,
  removed afterwards; a new session whose whole process group is killed at the wall-clock
  limit, when its output passes the limit, or when the grading worker dies;
- run as root, the program runs as ``nobody`` when that user can start this Python (then it
  cannot read the user's files, and a process-count limit holds);
- namespaces where the machine allows them (``isolation()``): ``bwrap`` (no network, an empty
  ``/home``, ``/root`` and ``/tmp``, the rest of the filesystem read-only) or ``unshare``
  (no network). Without either, the network is closed only by the audit hook.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RUNNER = Path(__file__).with_name("sandbox_runner.py")
NOBODY = 65534
UNSHARE = ["unshare", "--user", "--map-root-user", "--net", "--"]


@dataclass(frozen=True)
class Limits:
    """Hard limits of one sandboxed run (all of its tests)."""

    time_per_test: float = 1.0
    wall: float = 4.0  # seconds for the whole run, start-up included
    memory_mb: int = 512
    max_output: int = 100_000  # characters per test
    max_file_mb: int = 8


@dataclass(frozen=True)
class TestRun:
    status: str  # ok, timeout, crash, refused, output limit
    output: str | None = None
    detail: str | None = None


def _works(command: list[str], as_nobody: bool = False) -> bool:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=10,
            check=False,
            cwd="/",
            preexec_fn=_become_nobody if as_nobody else None,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def available() -> list[str]:
    """The mechanisms that start this Python and reach the runner here, strongest first:
    ``bwrap``, ``unshare``, and ``none`` always."""
    probe = [sys.executable, "-I", "-c", f"open({str(RUNNER)!r}).close()"]
    nobody, found = drops_privileges(), []  # tried as the user the programs run as
    with tempfile.TemporaryDirectory(prefix="prmh-sandbox-") as directory:
        if shutil.which("bwrap") and _works([*_bwrap(directory), *probe], nobody):
            found.append("bwrap")
    if shutil.which("unshare") and _works([*UNSHARE, *probe], nobody):
        found.append("unshare")
    return [*found, "none"]


@functools.lru_cache(maxsize=1)
def isolation() -> str:
    """The strongest mechanism ``available``; ``PRMH_SANDBOX`` (bwrap, unshare or none)
    chooses one, to test the weaker paths."""
    forced = os.environ.get("PRMH_SANDBOX")
    return forced if forced in ("bwrap", "unshare", "none") else available()[0]


def _bwrap(directory: str) -> list[str]:
    """Everything read-only, no network, empty homes and /tmp; Python's own installation (it
    may live under a home) and the private directory are mounted back."""
    python = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    command = [
        "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--tmpfs", "/tmp", "--tmpfs", "/home", "--tmpfs", "/root",
    ]  # fmt: skip
    for path in [*sorted(python), str(RUNNER)]:  # the runner too: prmh may live in /tmp
        command += ["--ro-bind", path, path]
    return [*command, "--bind", directory, directory, "--chdir", directory]


def _command(directory: str, mechanism: str) -> list[str]:
    python = [sys.executable, "-I", "-B", str(RUNNER)]  # site: packages beside prmh import
    if mechanism == "bwrap":
        return [*_bwrap(directory), *python]
    if mechanism == "unshare":
        return [*UNSHARE, *python]
    return python


def _limit_child(limits: Limits, as_nobody: bool) -> None:
    """In the child before it starts Python: limits, another user, death with the parent."""
    cpu = int(limits.wall) + 1
    for name, value in (
        ("RLIMIT_CPU", cpu),
        ("RLIMIT_AS", limits.memory_mb << 20),
        ("RLIMIT_FSIZE", limits.max_file_mb << 20),
        ("RLIMIT_NOFILE", 64),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    if as_nobody:
        _become_nobody()
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@functools.lru_cache(maxsize=1)
def drops_privileges() -> bool:
    """Run as root, the program runs as ``nobody``: if ``nobody`` can start this Python (an
    interpreter under ``/root`` is out of its reach, and then the program stays root)."""
    return os.geteuid() == 0 and _works([sys.executable, "-I", "-c", "pass"], as_nobody=True)


def run_tests(
    program: str,
    inputs: list[str],
    *,
    mode: str = "function",
    entry: str = "f",
    limits: Limits = Limits(),
) -> list[TestRun]:
    """Run ``program`` on every input: ``function`` mode calls ``entry`` (``name`` or
    ``Class().method``) with each input's arguments (``a = 1, b = [2]`` or a JSON list) and
    reports the ``repr`` of what it returns; ``stdio`` mode runs the program with each input as
    standard input and reports what it printed."""
    if mode not in ("function", "stdio"):
        raise ValueError(f"mode must be function or stdio, not {mode!r}")
    directory = tempfile.mkdtemp(prefix="prmh-sandbox-")
    try:
        job = {"program": program, "mode": mode, "entry": entry, "inputs": inputs}
        job.update(time_per_test=limits.time_per_test, max_output=limits.max_output)
        Path(directory, "job.json").write_text(json.dumps(job))
        as_nobody = drops_privileges()
        if as_nobody:
            os.chown(directory, NOBODY, NOBODY)
            os.chown(Path(directory, "job.json"), NOBODY, NOBODY)
        lines, died = _communicate(directory, limits, as_nobody, len(inputs))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return _results(lines, len(inputs), died)


def _communicate(directory: str, limits: Limits, as_nobody: bool, n: int) -> tuple[list[str], str]:
    """The runner's output lines, and why it stopped early (``""`` when it did not)."""
    process = subprocess.Popen(
        _command(directory, isolation()),
        cwd=directory,
        env={"HOME": directory, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=functools.partial(_limit_child, limits, as_nobody),
    )
    deadline = time.monotonic() + limits.wall
    data, cap, why = bytearray(), (n + 1) * (limits.max_output + 1024), ""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                why = "timeout"
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
            if len(data) > cap:
                why = "output limit"
                break
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.stdout.close()
        code = process.wait()
    if not why and code != 0:
        why = "timeout" if code in (-signal.SIGXCPU, -signal.SIGKILL) else f"crash (exit {code})"
    return data.decode("utf-8", "replace").splitlines()[: 10**6], why


def _results(lines: list[str], n: int, died: str) -> list[TestRun]:
    results = []
    for line in lines[:n]:
        try:
            item = json.loads(line)
            results.append(TestRun(str(item["status"]), item.get("output"), item.get("detail")))
        except (ValueError, KeyError, TypeError, RecursionError):  # nested past json's depth
            results.append(TestRun("crash", detail="unreadable runner output"))
    status = "crash" if not died or died.startswith("crash") else died  # timeout, output limit
    missing = TestRun(status, detail=died or "no result")
    return results + [missing] * (n - len(results))
