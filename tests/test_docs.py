"""Documentation kept true: every hook documented in its docstring and in docs/plugins.md."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy

from prmh import hookspecs
from prmh.registry import KINDS

ROOT = Path(__file__).parent.parent
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("prmh_"))


def test_one_hook_per_kind():
    assert HOOKS == sorted(f"prmh_register_{kind}" for kind in KINDS)


def test_every_hook_has_a_docstring():
    for name in HOOKS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip()) > 40, f"{name} needs a docstring that documents it"


def test_every_hook_is_documented_in_plugins_md():
    text = (ROOT / "docs" / "plugins.md").read_text()
    documented = set(re.findall(r"^### `(prmh_\w+)`", text, re.M))
    missing = set(HOOKS) - documented
    assert not missing, f"docs/plugins.md lacks a section for {sorted(missing)}"
    assert not documented - set(HOOKS), "docs/plugins.md documents hooks that do not exist"


def test_plugins_md_walkthrough_is_the_tested_fixture_plugin():
    """The two files in the walkthrough are the ones the entry-point test installs."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    for name in ("pyproject.toml", "prmh_arith_checker.py"):
        source = (ROOT / "tests" / "fixture_plugin" / name).read_text()
        assert source.strip() in text, f"docs/plugins.md no longer shows {name} as tested"


def test_hook_implementations_take_only_register():
    marker = pluggy.HookspecMarker("prmh")
    assert marker.project_name == "prmh"
    for name in HOOKS:
        spec = getattr(hookspecs, name)
        assert spec.__code__.co_varnames[: spec.__code__.co_argcount] == ("register",)


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, re.S)
    assert "prmh eval" in blocks[0]
    assert "pytest" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci, ".ci/run must run the README's test command"
    assert f'bash -c "{blocks[1].strip()}"' in ci, "a failure inside the && chain must fail CI"
