"""Grading in worker processes: verdicts, hard timeouts, crashed workers."""

from __future__ import annotations

import re
import time

import pytest

from prmh.errors import PrmhError
from prmh.grading import get_grader, grade_many
from prmh.plugins.graders import grade_numeric, parse_number


@pytest.mark.parametrize(
    "prediction,gold,expected",
    [
        ("42", "42", True),
        ("42.0", "42", True),
        ("1,000", "1000", True),
        ("-7", "-7", True),
        ("3/4", "0.75", True),
        ("$12$", "12", True),
        ("41", "42", False),
        ("42", "-42", False),
        ("forty-two", "42", False),
        ("9^9^9^9", "1", False),
        ("__import__('os').system('true')", "0", False),
        ("1" * 100_000, "1", False),
        ("1e400", "1", False),
    ],
)
def test_numeric_grader(prediction, gold, expected):
    assert grade_numeric(prediction, gold) is expected


def test_parse_number_never_evaluates():
    assert parse_number("2+2") is None
    assert parse_number("10**100") is None
    assert parse_number("12.") == 12


def test_grade_many_keeps_order(tmp_path):
    items = [("numeric", str(i), str(i if i % 3 else i + 1)) for i in range(200)]
    verdicts = grade_many(items, workers=2, chunk_size=16)
    assert [v.correct for v in verdicts] == [i % 3 != 0 for i in range(200)]


def test_a_hanging_answer_is_killed_and_the_rest_are_graded():
    items = [("grading_helpers:hang_on_loop", a, "1") for a in ["1", "loop", "1", "2", "1"]]
    started = time.monotonic()
    verdicts = grade_many(items, timeout=1.0, workers=1, chunk_size=8)
    assert time.monotonic() - started < 15
    assert [v.correct for v in verdicts] == [True, False, True, False, True]
    assert [v.timed_out for v in verdicts] == [False, True, False, False, False]


def test_a_crashing_grader_is_contained():
    items = [("grading_helpers:die_on_crash", a, "1") for a in ["1", "crash", "1"]]
    verdicts = grade_many(items, timeout=5.0, workers=1)
    assert [v.correct for v in verdicts] == [True, False, True]
    assert verdicts[1].error == "grader process died"


def test_unknown_grader():
    with pytest.raises(PrmhError, match=r"unknown grader 'nope'.*numeric"):
        get_grader("nope")
    with pytest.raises(PrmhError, match="could not be imported"):
        grade_many([("no_module_here:f", "1", "1")])


def _grade_forever(pid_file):
    """A parent that starts a grading worker on an answer that never finishes."""
    import os
    import threading

    from prmh.grading import GraderPool

    pool = GraderPool(workers=1)

    def write_pids():
        while not pool.pool:
            time.sleep(0.05)
        with open(pid_file, "w") as f:
            f.write(f"{os.getpid()} {pool.pool[0].process.pid}")

    threading.Thread(target=write_pids, daemon=True).start()
    pool.grade([("grading_helpers:hang_on_loop", "loop", "1")], timeout=3600)


def test_workers_die_with_their_parent(tmp_path):
    """SIGKILL the process that owns a grading pool while a worker spins on an answer: the
    worker is gone within seconds instead of burning CPU forever."""
    import multiprocessing as mp
    import os
    import signal
    import sys
    from pathlib import Path

    pid_file = tmp_path / "pids"
    sys.path.insert(0, str(Path(__file__).parent))
    parent = mp.get_context("spawn").Process(target=_grade_forever, args=(str(pid_file),))
    parent.start()
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    _, worker = map(int, pid_file.read_text().split())
    time.sleep(1.0)  # the worker is spinning on "loop"
    os.kill(parent.pid, signal.SIGKILL)
    parent.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z":
            break  # a zombie has stopped running; its reaper is gone with the parent
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the grading worker outlived its parent")


def test_a_workers_start_up_is_not_on_an_answers_clock():
    """A grader that spends 2 s importing on its first call, with a 1 s timeout: every answer
    is graded (the clock starts once the worker is warm), also after a timeout replaced it."""
    items = [("grading_helpers:slow_first_call", str(i % 3), "1") for i in range(8)]
    verdicts = grade_many(items, timeout=1.0, workers=2, chunk_size=2)
    assert [v.correct for v in verdicts] == [i % 3 == 1 for i in range(8)]
    assert not any(v.timed_out or v.error for v in verdicts)
    after = [("grading_helpers:hang_on_loop", "loop", "1")] + [
        ("grading_helpers:slow_first_call", "1", "1")
    ] * 3
    verdicts = grade_many(after, timeout=1.0, workers=1, chunk_size=4)
    assert [v.timed_out for v in verdicts] == [True, False, False, False]
    assert [v.correct for v in verdicts] == [False, True, True, True]


def test_a_timed_out_grade_is_graded_again_with_a_longer_timeout(tmp_path):
    """Stored as timed out, not as wrong: a run with a larger --grading-timeout grades it."""
    from prmh.engine import CacheStats, grade_pairs
    from prmh.grading import GraderPool
    from prmh.store import Store

    grader = get_grader("grading_helpers:slow_on_sleep")
    store = Store(tmp_path)
    pairs = [("sleep", "sleep"), ("1", "1")]
    with GraderPool() as pool:
        first, counts = grade_pairs(store, "a", grader, pairs, pool, CacheStats(), timeout=0.5)
        assert first == {("sleep", "sleep"): False, ("1", "1"): True}
        assert counts["timed_out"] == 1
        outcomes = {}
        same, _ = grade_pairs(
            store, "b", grader, pairs, pool, CacheStats(), timeout=0.5, outcomes=outcomes
        )
        assert same == first  # the same limit: the stored timeout stands
        assert outcomes == {("sleep", "sleep"): "timed out", ("1", "1"): "right"}
        stats = CacheStats()
        again, counts = grade_pairs(store, "c", grader, pairs, pool, stats, timeout=5.0)
        assert again == {("sleep", "sleep"): True, ("1", "1"): True}
        assert counts["timed_out"] == 0 and stats.computed["grade"] == 1
        later, _ = grade_pairs(store, "d", grader, pairs, pool, CacheStats(), timeout=0.5)
        assert later == again  # a right answer stays right
    store.close()


def test_a_plugin_grader_is_loaded_by_reference_in_the_workers():
    """Graders are a hook kind: a third party registers one, the main process resolves its name
    to an import path and the worker processes grade (and compute vote keys) with it."""
    import grading_helpers

    from prmh import hookimpl
    from prmh.grading import GraderPool
    from prmh.testing import inline_plugin

    class Plugin:
        @hookimpl
        def prmh_register_grader(self, register):
            register("parity", grading_helpers.parity, version="2", description="Same parity")
            register("unimportable", lambda: grading_helpers.Parity())

    with inline_plugin(Plugin()):
        grader = get_grader("parity")
        assert (grader.ref, grader.version) == ("grading_helpers:parity()", "2+7")
        verdicts = grade_many([("parity", "3", "5"), ("parity", "3", "4")])
        assert [v.correct for v in verdicts] == [True, False]
        with GraderPool(workers=1) as pool:
            assert pool.keys("parity", ["1", "2", "3"]) == ["odd", "even", "odd"]
        with pytest.raises(PrmhError, match="importable 'module:function'"):
            get_grader("unimportable")
    with pytest.raises(PrmhError, match="unknown grader 'parity'"):
        get_grader("parity")  # gone with the plugin


def test_a_grader_defined_in_the_main_script_is_refused_with_the_way_out(monkeypatch):
    """A worker is a new Python whose ``__main__`` is its own start-up code, not the caller's
    script, so a grader registered from that script cannot be imported there: one message
    says so before any answer is sent, instead of every answer failing to import."""
    import sys

    import grading_helpers

    from prmh import hookimpl
    from prmh.testing import inline_plugin

    def in_the_script():
        return grading_helpers.Parity()

    in_the_script.__module__, in_the_script.__qualname__ = "__main__", "in_the_script"
    monkeypatch.setattr(sys.modules["__main__"], "in_the_script", in_the_script, raising=False)

    class Plugin:
        @hookimpl
        def prmh_register_grader(self, register):
            register("scripted", in_the_script)

    with inline_plugin(Plugin()), pytest.raises(PrmhError, match="module next to the script"):
        grade_many([("scripted", "3", "5")])


def test_workers_that_cannot_start_stop_the_run_with_one_message(monkeypatch):
    """A worker Python that exits at once (here its start-up code is replaced by an exit; in
    life: a broken interpreter or an import path without prmh): after three in a row, one
    message naming the interpreter, instead of replacing workers forever."""
    import sys

    from prmh import grading

    monkeypatch.setattr(grading, "BOOT", "raise SystemExit(1)")
    started = time.monotonic()
    with pytest.raises(PrmhError, match=f"each runs {re.escape(sys.executable)} with this"):
        grade_many([("numeric", "1", "1")] * 5, timeout=5.0, workers=1)
    assert time.monotonic() - started < 60


def test_a_grader_module_in_the_current_directory_gets_the_way_out(tmp_path, monkeypatch):
    """``-T grader=mycheck:check`` with mycheck.py beside the user: the ``prmh`` console
    script's import path holds its own folder, not the current one (``python -m prmh`` puts
    the current directory first), so the module is not found; the message says why and how."""
    import sys

    (tmp_path / "mycheck.py").write_text("def check(prediction, gold):\n    return True\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    with pytest.raises(PrmhError, match=r"No module named 'mycheck' \(mycheck is in the current "
                       r"directory, .*PYTHONPATH=\. prmh"):  # fmt: skip
        get_grader("mycheck:check")
    with pytest.raises(PrmhError, match=r"No module named 'elsewhere'$"):
        get_grader("elsewhere:check")  # not here either: no hint
    monkeypatch.syspath_prepend(str(tmp_path))
    assert grade_many([("mycheck:check", "1", "2")])[0].correct
