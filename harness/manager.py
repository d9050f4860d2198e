"""Builds a fresh pluggy plugin manager: hook specs, built-ins, then entry points.

A third-party plugin that fails to import, or implements a hook prmh does not know, is
recorded as a failure and left out; it never stops prmh. ``PRMH_DISABLE_PLUGINS`` is a
comma-separated list of plugin (entry-point) or distribution names to skip. Plugins
registered inline (``prmh.testing.inline_plugin``, for a test) join after the entry points.
"""

from __future__ import annotations

import importlib
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pluggy

from prmh import hookspecs, installed
from prmh._version import __version__
from prmh.plugins import BUILTINS

ENTRY_POINT_GROUP = "prmh"
DISABLE_ENV = "PRMH_DISABLE_PLUGINS"
INLINE: ContextVar[tuple[tuple[str, Any], ...]] = ContextVar("prmh_inline_plugins", default=())


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised; reported, never fatal."""

    plugin: str
    distribution: str
    error: str


def disabled_plugins() -> set[str]:
    return {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}


def build_manager() -> tuple[pluggy.PluginManager, dict[str, tuple[str, str]], list[PluginFailure]]:
    """Return the manager, each plugin's (distribution, version), and the plugins that failed."""
    pm = pluggy.PluginManager("prmh")
    pm.add_hookspecs(hookspecs)
    disabled = disabled_plugins()
    dists: dict[str, tuple[str, str]] = {}
    failures: list[PluginFailure] = []
    for module_name in BUILTINS:
        if module_name in disabled or module_name.rsplit(".", 1)[-1] in disabled:
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
        dists[module_name] = ("prmh", __version__)
    for name, value, dist_name, dist_version in installed.entry_points(ENTRY_POINT_GROUP):
        if name in disabled or dist_name in disabled:
            continue
        try:
            pm.register(installed.load(value), name=name)
        except Exception as e:
            failures.append(PluginFailure(name, dist_name, f"{type(e).__name__}: {e}"))
            continue
        dists[name] = (dist_name, dist_version)
    for name, plugin in INLINE.get():
        pm.register(plugin, name=name)
        dists[name] = ("inline", "0")
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as e:
            name = pm.get_name(e.plugin) or "?"
            pm.unregister(e.plugin)
            failures.append(PluginFailure(name, dists.pop(name, ("?", "?"))[0], str(e)))
    return pm, dists, failures
