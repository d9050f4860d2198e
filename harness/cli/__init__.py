"""The ``prmh`` command line, one module per command group: ``evaluation`` (eval, show),
``listing`` (list, plugins), ``leaderboard``, ``data`` (rollout, label), ``train`` (train,
calibrate, train-generator), ``analyze`` and ``results`` (export, view, plot); ``common``
declares the options they share.

Commands parse options and call library functions (``prmh.api``, ``prmh.engine``,
``prmh.datasets``, ``prmh.analysis``, ``prmh.results``, ``prmh.plugins.training``). Bad input raises
``PrmhError`` anywhere below; it is printed as one line and the command exits with status 2,
no traceback. Tables go to stdout (``--json`` prints data instead); progress goes to stderr.
Plugins add commands through the ``prmh_register_command`` hook. A command's module is
imported when the command is (``group.BUILT_IN``), so ``prmh eval`` loads no training code.
"""

import gc
import sys

from prmh.cli.group import BUILT_IN, PrmhGroup, UserError, cli

__all__ = ["BUILT_IN", "PrmhGroup", "UserError", "cli", "main", "tune_gc"]


def main() -> None:
    """Console-script entry point."""
    tune_gc()
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal or log: "×" is printed as "?"
        if hasattr(stream, "reconfigure"):  # (it raised UnicodeEncodeError after the run)
            stream.reconfigure(errors="replace")
    sys.excepthook = _visible_traceback
    try:
        sys.exit(cli.main(prog_name="prmh"))
    finally:
        gc.freeze()  # see tune_gc


def _visible_traceback(kind: type, error: BaseException, trace: object) -> None:
    """A bug's traceback (prmh's or a plugin's), its text written out (``prmh.masking.visible``):
    a plugin's message quoting a model's answer reached the terminal with its control codes."""
    import traceback

    from prmh.masking import visible

    sys.stderr.write(visible("".join(traceback.format_exception(kind, error, trace))))


def tune_gc() -> None:
    """The command's own process: the cycle collector at ``prmh.threads.COLLECTOR`` (every
    50,000 allocations instead of 700, or 2,000 on Python 3.13), and the objects of the
    modules imported so far left out of its full passes (``gc.freeze``). A 75-cell sim
    matrix spent 0.14 s of 1.6 in it, now 0.04. ``main`` freezes again as the command ends,
    so the interpreter's last full pass skips what the command made: 6 ms of a 0.12 s cached
    re-run. (It would only have run the finalizers of cyclic garbage, which Python does not
    promise at exit; prmh closes its stores and files itself.)"""
    from prmh.threads import COLLECTOR

    gc.freeze()
    gc.set_threshold(*COLLECTOR)
