"""The thread policy (``prmh.threads``): one decision, from the option, the environment or the
CPUs this process may use; idle threads sleep when other work keeps the CPUs busy."""

from __future__ import annotations

import os

import pytest

from prmh import threads
from prmh.errors import PrmhError


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in ("PRMH_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "RAYON_NUM_THREADS"):
        monkeypatch.setenv(name, "")  # so that teardown restores what was there
        monkeypatch.delenv(name)
    monkeypatch.setattr(threads, "_probed", [])


def test_the_count_comes_from_the_option_the_environment_or_the_cpus(monkeypatch):
    assert threads.thread_count() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.thread_count() == 3
    monkeypatch.setenv("PRMH_THREADS", "2")
    assert threads.thread_count() == 2
    assert threads.thread_count(1) == 1
    for bad in ("0", "two"):
        monkeypatch.setenv("PRMH_THREADS", bad)
        with pytest.raises(PrmhError, match="PRMH_THREADS"):
            threads.thread_count()


def test_idle_threads_sleep_only_on_a_busy_machine(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as before torch is imported
    monkeypatch.setattr(threads, "busy_fraction", lambda: 0.0)
    assert threads.configure(2, before_torch=True) == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(threads, "_probed", [])
    monkeypatch.setattr(threads, "busy_fraction", lambda: 0.5)
    threads.configure()  # a command that has not asked for torch yet does not look
    assert "OMP_WAIT_POLICY" not in os.environ
    threads.configure(before_torch=True)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_tokenizer_batches_run_on_the_decided_threads():
    """A tokenizer's batch call runs on a rayon pool (the tokenizers library), one thread per
    CPU unless RAYON_NUM_THREADS says otherwise: with one thread decided, a batch adds one
    pool thread to the process (counted in /proc/self/task), not one per CPU."""
    import subprocess
    import sys

    pytest.importorskip("transformers")
    script = (
        "import os\n"
        "from prmh import threads\n"
        "threads.configure()\n"
        "from transformers import AutoTokenizer\n"
        "from prmh.plugins.tiny import WORLD\n"
        "tokenizer = AutoTokenizer.from_pretrained(WORLD / 'generator')\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "tokenizer(['twelve apples and seven more ' * 50] * 256)\n"
        "print(len(os.listdir('/proc/self/task')) - before, os.environ['RAYON_NUM_THREADS'])\n"
    )
    env = {**os.environ, "PRMH_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("RAYON_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "1"], out.stderr[-2000:]


def test_a_busy_fraction_is_measured():
    from pathlib import Path

    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc/stat on this system: the policy then never sleeps threads")
    fraction = threads.busy_fraction(0.05)
    assert fraction is not None and 0.0 <= fraction <= 1.0


def test_bad_threads_on_the_command_line(cli):
    result = cli("eval", "--threads", "0", "--limit", "2")
    assert result.exit_code == 2 and "--threads must be at least 1" in result.output


def test_an_evaluation_from_python_tunes_the_collector_and_gives_it_back(tmp_path):
    """``prmh.evaluate`` runs with the cycle collector as ``prmh`` commands set it
    (``COLLECTOR``) and leaves the caller's thresholds as they were, on failure too."""
    import gc

    import prmh

    seen = []
    caller = (900, 11, 12)
    before = gc.get_threshold()
    gc.set_threshold(*caller)
    try:
        prmh.evaluate(
            world="sim", limit=2, budget=[1], results_dir=str(tmp_path),
            progress=lambda *args: seen.append(gc.get_threshold()),
        )  # fmt: skip
        assert seen and set(seen) == {threads.COLLECTOR}
        assert gc.get_threshold() == caller
        with pytest.raises(PrmhError):
            prmh.evaluate(world="sim", limit=2, budget=[1], results_dir=str(tmp_path), shard="9")
        assert gc.get_threshold() == caller
    finally:
        gc.set_threshold(*before)
