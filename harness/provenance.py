"""What produced a run, for its record: the Python and library versions, the git state of the
prmh checkout (if it is one) and how prmh was installed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from prmh import installed
from prmh._version import __version__
from prmh.masking import redact

LIBRARIES = ("pluggy", "click", "rich", "numpy", "sympy", "torch", "transformers", "peft", "vllm")


def provenance(package_dir: Path) -> dict[str, Any]:
    """The record's ``libraries``, ``git`` (of the checkout holding ``package_dir``) and
    ``install`` fields."""
    return {
        "libraries": library_versions(),
        "git": git_state(package_dir),
        "install": install_state(),
    }


def library_versions() -> dict[str, str | None]:
    """Python's and ``LIBRARIES``' versions, as ``importlib.metadata.version`` gives them (the
    first distribution on ``sys.path``)."""
    return {"python": platform.python_version(), **installed.versions(LIBRARIES)}


def git_state(path: Path) -> dict[str, Any]:
    """The revision and dirty flag of the git checkout holding ``path``, if it is in one (one
    ``git status``: its branch header names the commit). Outside any checkout (prmh installed
    from a wheel) no git process is started."""
    if "GIT_DIR" not in os.environ and not any(
        (p / ".git").exists() for p in (path, *path.parents)
    ):
        return {"revision": None, "dirty": None}
    try:
        status = subprocess.run(
            [
                "git",
                "-C",
                str(path),
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=no",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}
    oid = next((line.split()[2] for line in status if line.startswith("# branch.oid ")), None)
    revision = oid if oid and oid != "(initial)" else None
    return {"revision": revision, "dirty": any(not line.startswith("#") for line in status)}


def install_state() -> dict[str, Any]:
    """How prmh was installed, from its distribution's PEP 610 ``direct_url.json``: ``index``
    (a package index: the version names the code), ``editable``, ``directory`` (a local copy),
    ``archive`` or a VCS (``git``, with its commit). A non-editable install records no git
    revision; this says what code ran instead."""
    # a source tree's own prmh.egg-info can shadow the installed metadata: prefer the copy
    # that says where it was installed from
    found = [(d, d.read_text("direct_url.json")) for d in installed.distributions("prmh")]
    if not found:
        return {"version": __version__, "source": "unknown", "url": None, "commit": None}
    dist, text = next((f for f in found if f[1]), found[0])
    state: dict[str, Any] = {
        "version": dist.version,
        "source": "index",
        "url": None,
        "commit": None,
    }
    try:
        direct = json.loads(text or "null") or {}
    except ValueError:
        direct = {}
    if isinstance(direct, dict) and direct:
        vcs, folder = direct.get("vcs_info") or {}, direct.get("dir_info") or {}
        if vcs:
            state.update(source=str(vcs.get("vcs", "vcs")), commit=vcs.get("commit_id"))
        elif folder.get("editable"):
            state["source"] = "editable"
        else:
            state["source"] = "archive" if "archive_info" in direct else "directory"
        state["url"] = redact(str(direct.get("url", "")))
    return state
