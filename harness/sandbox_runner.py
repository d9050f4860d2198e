"""What runs inside the code sandbox (``prmh.sandbox``): a script, never imported by prmh.

Started as ``python -I -B sandbox_runner.py`` in a private temporary directory, it reads
``job.json`` there (the program and the test inputs, never the expected outputs), deletes it,
installs an audit hook (PEP 578) that refuses process creation, signals to other processes,
sockets, ctypes, resource limits and any file access outside that directory and Python's own
installation, then runs the program on each input with a per-test timer. Each test's outcome
goes out as one JSON line on a private copy of standard output, written before the next test
starts, so a run killed from outside still reports the tests it finished. The program's own
output goes to a bounded buffer (stdio tests) or nowhere (function tests).

An audit hook cannot be removed from Python code, but it is no sandbox on its own: the parent
adds resource limits, a process group it kills, and namespaces where the machine has them.
"""

import ast
import io
import json
import os
import re
import signal
import sys

_ENTRY = re.compile(r"^(?:(\w+)\(\)\.)?(\w+)$")
_DENIED_EVENTS = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "subprocess.Popen",
    "os.kill",
    "os.killpg",
    "resource.setrlimit",
    "resource.prlimit",
    "webbrowser.open",
)
_DENIED_PREFIXES = ("socket.", "ctypes.", "_ctypes.", "mmap.", "sqlite3.")
_DENIED_MODULES = {
    "ctypes",
    "_ctypes",
    "_posixsubprocess",
    "socket",
    "_socket",
    "ssl",
    "_ssl",
    "multiprocessing",
    "_multiprocessing",
    "_posixshmem",
    "mmap",
    "resource",
}
_LISTINGS = {"os.listdir", "os.scandir"}
_PATH_EVENTS = {
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.link",
    "os.symlink",
    "os.truncate",
    "os.utime",
    "os.chdir",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Refused(RuntimeError):
    pass


class _Timeout(BaseException):  # not an Exception: `except Exception` in a solution won't eat it
    pass


class _TooMuchOutput(BaseException):
    pass


def _roots():
    here = os.path.realpath(os.getcwd())
    python = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return here, tuple(sorted(python))


HERE, PYTHON = _roots()
refusals = []


def _inside(path, roots):
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)


def _refuse(what):
    refusals.append(what)
    raise Refused(f"prmh sandbox refused {what}")


def _audit(event, args):
    if event in _DENIED_EVENTS or event.startswith(_DENIED_PREFIXES):
        _refuse(event)
    if event == "import" and args and str(args[0]).partition(".")[0] in _DENIED_MODULES:
        _refuse(f"import {args[0]}")
    if event == "open" and args and not isinstance(args[0], int):
        mode, flags = str(args[1] or "r"), args[2] if len(args) > 2 else 0
        writes = any(c in mode for c in "wax+") or bool((flags or 0) & _WRITES)
        roots = (HERE,) if writes else (HERE, *PYTHON, "/dev/null")
        if not _inside(args[0], roots):
            _refuse(f"open {args[0]!r}")
    if event in _PATH_EVENTS or event in _LISTINGS:
        roots = (HERE, *PYTHON) if event in _LISTINGS else (HERE,)
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path, roots):
                _refuse(f"{event} {path!r}")


class _Sink(io.TextIOBase):
    def write(self, s):
        return len(s)


class _Bounded(io.StringIO):
    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def write(self, s):
        if self.tell() + len(s) > self.limit:
            raise _TooMuchOutput()
        return super().write(s)


def _alarm(signum, frame):
    raise _Timeout()


def _arguments(text):
    """``nums = [1, 2], k = 3`` (LeetCode's form) or a JSON list of positional arguments."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text), {}
    call = ast.parse(f"f({text})", mode="eval").body
    args = [ast.literal_eval(a) for a in call.args]
    return args, {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def _entry(namespace, entry):
    match = _ENTRY.match(entry)
    if match is None:
        raise ValueError(f"entry point {entry!r} is not 'name' or 'Class().method'")
    cls, name = match.groups()
    return getattr(namespace[cls](), name) if cls else namespace[name]


def _run_one(job, code, text, index):
    limit = job["max_output"]
    sys.stdout = _Bounded(limit) if job["mode"] == "stdio" else _Sink()
    sys.stdin = io.StringIO(text if job["mode"] == "stdio" else "")
    refusals.clear()
    signal.setitimer(signal.ITIMER_REAL, job["time_per_test"])
    try:
        if job["mode"] == "stdio":
            try:
                exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise
            value = sys.stdout.getvalue()
        else:
            if index == 0 or "namespace" not in job:
                job["namespace"] = {"__name__": "solution", "__builtins__": __builtins__}
                exec(code, job["namespace"])
            args, kwargs = _arguments(text)
            value = repr(_entry(job["namespace"], job["entry"])(*args, **kwargs))
            if len(value) > limit:
                raise _TooMuchOutput()
        signal.setitimer(signal.ITIMER_REAL, 0)
        return {"status": "ok", "output": value}
    except _Timeout:
        return {"status": "timeout"}
    except _TooMuchOutput:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return {"status": "output limit"}
    except BaseException as e:  # the program's own failure, whatever it raised
        signal.setitimer(signal.ITIMER_REAL, 0)
        if refusals:
            return {"status": "refused", "detail": refusals[0][:200]}
        return {"status": "crash", "detail": f"{type(e).__name__}: {e}"[:200]}


def main():
    with open("job.json") as f:
        job = json.load(f)
    os.remove("job.json")
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    signal.signal(signal.SIGALRM, _alarm)
    sys.setrecursionlimit(10_000)
    sys.addaudithook(_audit)
    try:
        code = compile(job["program"], "<solution>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        code, error = None, f"{type(e).__name__}: {e}"[:200]
    for index, text in enumerate(job["inputs"]):
        if code is None:
            result = {"status": "crash", "detail": error}
        else:
            result = _run_one(job, code, text, index)
        os.write(out, (json.dumps(result) + "\n").encode())
    os._exit(0)  # no atexit handler or thread of the program's runs after this


if __name__ == "__main__":
    main()
