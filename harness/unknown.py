"""The message for a component name the registry does not know: close matches, every name when
there are few, plugins that failed to load, and the way out where the name is a path that does
not exist (a PRM or model directory)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.manager import DISABLE_ENV


def unknown_component(kind: str, name: str, names: Sequence[str], failures: Any) -> PrmhError:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    failed = (
        f" Some plugins failed to load: {', '.join(f.plugin for f in failures)}"
        " (see `prmh plugins`)."
        if failures
        else ""
    )
    if not names:  # every plugin that registers one left out
        hint += f" No {kind} is registered: is {DISABLE_ENV} leaving out its plugin?"
    elif len(names) <= 12:  # few enough to name them all
        plural = kind + ("es" if kind.endswith(("s", "ch")) else "s")
        hint += f" The {plural}: {', '.join(names)}"
        hint += " (or an importable module:function)." if kind == "grader" else "."
    path = Path(name).expanduser()
    if kind in ("prm", "generator") and name.startswith((".", "/", "~")) and not path.exists():
        what = "PRM" if kind == "prm" else "model"
        hint = f" No such {what} directory: {str(path.absolute())!r} does not exist."
    return PrmhError(f"unknown {kind} {name!r}.{hint} See all with `prmh list {kind}`.{failed}")
