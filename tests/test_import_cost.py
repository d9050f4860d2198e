"""`import prmh` and `prmh --help` stay cheap: no model library is imported."""

from __future__ import annotations

import subprocess

from conftest import PYTHON

HEAVY = ("torch", "transformers", "peft", "datasets", "vllm")
CHECK = "import sys; {body}; print(','.join(m for m in {heavy} if m in sys.modules))"


def _heavy_modules_after(body: str) -> str:
    code = CHECK.format(body=body, heavy=HEAVY)
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_import_prmh_is_cheap():
    assert _heavy_modules_after("import prmh, prmh.hookspecs, prmh.registry") == ""


def test_help_and_list_are_cheap():
    body = (
        "from click.testing import CliRunner; from prmh.cli import cli; "
        "r = CliRunner(); assert r.invoke(cli, ['--help']).exit_code == 0; "
        "assert r.invoke(cli, ['list']).exit_code == 0"
    )
    assert _heavy_modules_after(body) == ""


def test_a_command_imports_its_own_module_only():
    """``prmh eval`` runs without importing the training, analysis or results commands; every
    built-in command is still listed and found, each in the module ``BUILT_IN`` names."""
    body = (
        "from click.testing import CliRunner; from prmh.cli import cli; "
        "r = CliRunner(); assert r.invoke(cli, ['eval', '--help']).exit_code == 0; "
        "print(','.join(m for m in sys.modules if m.startswith('prmh.cli.')))"
    )
    out = subprocess.run([PYTHON, "-c", CHECK.format(body=body, heavy=())], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split()[0].split(","))
    assert loaded == {"prmh.cli.group", "prmh.cli.evaluation", "prmh.cli.common"}

    import importlib

    from prmh.cli import BUILT_IN, cli

    for module in set(BUILT_IN.values()):
        importlib.import_module(f"prmh.cli.{module}")
    assert set(cli.commands) == set(BUILT_IN)
    for name, module in BUILT_IN.items():
        assert cli.commands[name].callback.__module__ == f"prmh.cli.{module}"


def test_the_command_collects_cycles_rarely_and_skips_what_it_imported():
    """``prmh``'s own process (not a library caller's): cycle collection every 50,000
    allocations, and the objects imported before the command runs frozen out of it. Importing
    prmh leaves the interpreter's own threshold (700 on Python 3.11 and 3.12, 2,000 on 3.13)."""
    code = (
        "import gc; default = gc.get_threshold(); import prmh.cli as c; "
        "before = (gc.get_threshold(), gc.get_freeze_count()); c.tune_gc(); "
        "print(before[0] == default, before[1], gc.get_threshold()[0], "
        "gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0", "50000", "True"]


def test_the_command_ends_with_what_it_made_frozen_and_its_exit_status_kept():
    """As ``main`` ends, the objects the command made are frozen too, so the interpreter's last
    full collection skips them; the command's exit status and output are unchanged."""
    code = (
        "import atexit, gc, sys; import prmh.cli as c\n"
        "made, start = [], []\n"
        "def command(**_):\n"  # runs after tune_gc froze the modules loaded
        "    start.append(gc.get_freeze_count())\n"
        "    made.extend([i] for i in range(20_000)); print('ran'); sys.exit(3)\n"
        "c.cli.main = command\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() >= start[0] + 20_000))\n"
        "c.main()\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert out.stdout.split() == ["ran", "frozen", "True"]
