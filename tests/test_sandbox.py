"""The code sandbox (``prmh.sandbox``) against hostile programs, under every isolation this
machine offers (``none`` always; ``unshare`` and ``bwrap`` where they work): each program is
contained, reported with its reason, and leaves nothing outside its private directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from system_tools import unavailable

from prmh import sandbox
from prmh.sandbox import Limits, run_tests

FAST = Limits(time_per_test=0.5, wall=3.0, memory_mb=256, max_output=10_000)


def _mechanisms() -> list[str]:
    return sandbox.available()


@pytest.fixture(params=_mechanisms())
def mechanism(request, monkeypatch):
    monkeypatch.setenv("PRMH_SANDBOX", request.param)
    sandbox.isolation.cache_clear()
    yield request.param
    sandbox.isolation.cache_clear()


def hostile(outside: Path) -> dict[str, tuple[str, str]]:
    """name -> (program defining f(), the status it must end with)."""
    target = outside / "pwned"
    return {
        "fork bomb": ("import os\ndef f():\n    while True:\n        os.fork()\n", "refused"),
        "os.system": (f"import os\ndef f():\n    os.system('touch {target}')\n", "refused"),
        "subprocess": (
            f"import subprocess\ndef f():\n    subprocess.run(['touch', '{target}'])\n",
            "refused",
        ),
        "read ~/.ssh": (
            "import os\ndef f():\n"
            "    return open(os.path.expanduser('~root/.ssh/id_rsa')).read()\n",
            "refused",
        ),
        "write outside": (f"def f():\n    open('{target}', 'w').write('x')\n", "refused"),
        "delete outside": (f"import os\ndef f():\n    os.remove('{outside}/keep')\n", "refused"),
        "infinite loop": ("def f():\n    while True:\n        pass\n", "timeout"),
        "infinite output": ("def f():\n    while True:\n        print('x' * 1000)\n", "timeout"),
        "huge allocation": ("def f():\n    return len(bytearray(10**10))\n", "crash"),
        "network": (
            "import urllib.request\ndef f():\n    urllib.request.urlopen('http://127.0.0.1:1')\n",
            "refused",
        ),
        "kill the parent": ("import os\ndef f():\n    os.kill(os.getppid(), 9)\n", "refused"),
        "ctypes": ("import ctypes\ndef f():\n    return ctypes.CDLL(None).fork()\n", "refused"),
        "raise the limits": (
            "import resource\ndef f():\n    resource.setrlimit(resource.RLIMIT_CPU, (-1, -1))\n",
            "refused",
        ),
        "exit": ("import sys\ndef f():\n    sys.exit(0)\n", "crash"),
    }


def test_hostile_programs_are_contained(mechanism, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    for name, (program, status) in hostile(outside).items():
        started = time.monotonic()
        (run,) = run_tests(program, ["[]"], limits=FAST)
        assert run.status == status, (mechanism, name, run)
        assert time.monotonic() - started < FAST.wall + 2, name
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert (outside / "keep").read_text() == "kept"
    assert not list(Path("/tmp").glob("prmh-sandbox-*"))  # private directories are removed


def test_tests_report_outputs_and_reasons_one_by_one(mechanism):
    program = (
        "def f(n, k=1):\n"
        "    if n == 2:\n"
        "        while True:\n"
        "            pass\n"
        "    if n == 3:\n"
        "        raise ValueError('three')\n"
        "    return [n] * k\n"
    )
    runs = run_tests(program, ["[1]", "n = 5, k = 2", "[2]", "[3]", "[4]"], limits=FAST)
    assert [r.status for r in runs] == ["ok", "ok", "timeout", "crash", "ok"]
    assert [r.output for r in runs[:2]] == ["[1]", "[5, 5]"]
    assert runs[3].detail == "ValueError: three"


def test_stdio_programs_and_class_entry_points(mechanism):
    echo = "import sys\nn = int(sys.stdin.readline())\nprint(n * 2)\n"
    runs = run_tests(echo, ["3\n", "oops\n"], mode="stdio", limits=FAST)
    assert [r.status for r in runs] == ["ok", "crash"]
    assert runs[0].output == "6\n"
    loud = "while True:\n    print('y' * 100)\n"
    (run,) = run_tests(loud, [""], mode="stdio", limits=FAST)
    assert run.status == "output limit"
    klass = "class Solution:\n    def twice(self, x):\n        return 2 * x\n"
    (run,) = run_tests(klass, ["x = 21"], entry="Solution().twice", limits=FAST)
    assert run.output == "42"


def test_a_program_flooding_the_runners_own_channel_is_cut_off(mechanism):
    """Output past the limit on the channel the runner reports on (not the program's printed
    output, which the runner bounds itself) stops the run: the parent's cap."""
    flood = "import os\ndef f():\n    while True:\n        os.write(3, b'x' * 65536)\n"
    limits = Limits(time_per_test=5.0, wall=5.0, max_output=1000)
    started = time.monotonic()
    runs = run_tests(flood, ["[]", "[]"], limits=limits)
    assert [r.status for r in runs] == ["crash", "output limit"]  # its own report unreadable
    assert runs[0].detail == "unreadable runner output"
    assert time.monotonic() - started < 4  # cut at the cap, not at the wall limit


def test_a_run_killed_from_outside_keeps_the_tests_it_finished(mechanism):
    program = "import time\ndef f(n):\n    time.sleep(n)\n    return n\n"
    limits = Limits(time_per_test=5.0, wall=1.5)
    runs = run_tests(program, ["[0]", "[0.1]", "[30]", "[0]"], limits=limits)
    assert [r.status for r in runs] == ["ok", "ok", "timeout", "timeout"]


def test_the_network_namespace_closes_the_network_below_python(mechanism):
    """With namespaces, even a connection the audit hook never sees fails: the wrapped
    interpreter (no runner, no hook) cannot reach a server listening on this machine."""
    if mechanism == "none":
        pytest.skip("without namespaces only the audit hook closes the network (README)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20)
    assert plain.returncode == 0  # the server is reachable from outside the sandbox
    prefix = sandbox._command(str(Path.cwd()), mechanism)[:-4]  # the wrapper, no Python
    wrapped = subprocess.run(
        [*prefix, sys.executable, "-c", probe], capture_output=True, timeout=20
    )
    assert wrapped.returncode != 0
    server.close()


def test_bwrap_hides_home_directories(tmp_path):
    if "bwrap" not in _mechanisms():
        unavailable("bwrap is missing or cannot make namespaces (apt-get install bubblewrap)")
    secret = Path.home() / ".prmh-sandbox-secret"
    secret.write_text("s3cret")
    try:
        probe = f"print(open({str(secret)!r}).read())"
        wrapped = subprocess.run(
            [*sandbox._bwrap(str(tmp_path)), sys.executable, "-c", probe],
            capture_output=True,
            timeout=20,
            text=True,
        )
        assert "s3cret" not in wrapped.stdout and wrapped.returncode != 0
    finally:
        secret.unlink()


def test_no_environment_reaches_the_program(mechanism, monkeypatch):
    monkeypatch.setenv("PRMH_TEST_SECRET", "token-123")
    program = "import os\ndef f():\n    return sorted(os.environ)\n"
    (run,) = run_tests(program, ["[]"], limits=FAST)
    assert "PRMH_TEST_SECRET" not in (run.output or "") and os.environ["PRMH_TEST_SECRET"]
