"""Names to component factories: built from the plugin hooks, the only caller of ``pm.hook``.

A fresh ``Registry`` comes from ``load_registry()`` each time; nothing is global. Each
registration remembers which plugin made it, so a duplicate name is reported with both
plugins, and a plugin whose hook fails is reported by name without hiding everyone else's.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.manager import PluginFailure, build_manager

KINDS = (
    "task",
    "generator",
    "splitter",
    "prm",
    "aggregator",
    "selector",
    "search",
    "labeler",
    "loss",
    "grader",
    "command",
)


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, the distribution that ships it, and the hooks it implements."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """One registered component: how to build it and what users see of it."""

    kind: str
    name: str
    factory: Callable[..., Any] | str
    plugin: str
    description: str = ""
    version: str = "0"
    speed_args: tuple[str, ...] = ()

    def load_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise PrmhError(
                f"{self.kind} {self.name!r} (from plugin {self.plugin}) could not be loaded: "
                f"{type(e).__name__}: {e}. Install what it needs or see `prmh plugins`."
            ) from e

    def bind(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``args`` against the factory's parameters; return them with defaults filled."""
        factory = self.load_factory()
        signature = inspect.signature(factory)
        params = signature.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        known = [
            n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        for key in args:
            if key not in params and not takes_any:
                close = difflib.get_close_matches(key, known, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise PrmhError(
                    f"{self.kind} {self.name!r} has no option {key!r}.{hint} "
                    f"Its options: {', '.join(known) or '(none)'}."
                )
        try:
            bound = signature.bind(**args)
        except TypeError as e:
            options = ", ".join(known) or "(none)"
            raise PrmhError(f"{self.kind} {self.name!r}: {e}. Its options: {options}.") from e
        bound.apply_defaults()
        from prmh.options import check_options

        checked = check_options(factory, args, f"{self.kind} {self.name!r}")
        return {**bound.arguments, **checked}

    def create(self, args: Mapping[str, Any] | None = None) -> Component:
        bound = self.bind(args or {})
        try:
            instance = self.load_factory()(**bound)
        except (TypeError, ValueError) as e:
            from prmh.masking import redact

            raise PrmhError(
                f"{self.kind} {self.name!r} with options {redact(dict(args or {}))}: "
                f"{redact(str(e))}"
            ) from e
        return Component(entry=self, args=bound, instance=instance)


@dataclass(frozen=True)
class Component:
    """A built component with the arguments it was built from."""

    entry: Entry
    args: dict[str, Any]
    instance: Any

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def identity(self) -> dict[str, Any]:
        """What determines this component's output: the basis of every cache key.

        A component may add to it with an ``identity_extra`` dict (say, a fingerprint of the
        weights it loaded, which its arguments alone do not pin down).
        """
        identity = {
            "kind": self.entry.kind,
            "name": self.entry.name,
            "version": self.entry.version,
            "args": {k: v for k, v in self.args.items() if k not in self.entry.speed_args},
        }
        extra = getattr(self.instance, "identity_extra", None)
        if extra:
            identity["extra"] = extra
        return identity


@dataclass
class Registry:
    """Every component name of every kind, with the plugins they came from."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    clashes: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> why

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        if kind not in self.entries:
            raise PrmhError(f"unknown component kind {kind!r}; kinds are: {', '.join(KINDS)}.")
        if (kind, name) in self.clashes:
            raise PrmhError(self.clashes[(kind, name)])
        try:
            return self.entries[kind][name]
        except KeyError:
            if kind == "prm" and Path(name).is_dir():  # a PRM saved by prmh
                from prmh.prm_dirs import directory_entry

                return directory_entry(self, name)
            if kind == "generator" and Path(name).is_dir():  # a model folder, read by hf
                from prmh.prm_dirs import model_folder_entry

                return model_folder_entry(self, name)
            if kind == "task" and name.endswith(".toml"):  # a task file of one's own
                return _task_file_entry(name)
            from prmh.unknown import unknown_component

            raise unknown_component(kind, name, self.names(kind), self.failures) from None

    def create(self, kind: str, name: str, args: Mapping[str, Any] | None = None) -> Component:
        return self.get(kind, name).create(args)


def _task_file_entry(path: str) -> Entry:
    """``--task path/to/task.toml``, named by its ``name``: cache keys ignore where it lies."""
    from prmh.task_files import factory, read_task_file

    d = read_task_file(path)
    return Entry("task", d["name"], factory(d), "task file", d["description"], str(d["version"]))


def load_registry() -> Registry:
    """Build a fresh plugin manager and collect every plugin's registrations."""
    pm, dists, failures = build_manager()
    registry = Registry(failures=list(failures))
    failed: set[str] = set()
    for kind in KINDS:
        hook = getattr(pm.hook, f"prmh_register_{kind}")
        for impl in hook.get_hookimpls():
            if impl.plugin_name in failed:
                continue
            made: list[Entry] = []

            def register(
                name: str,
                factory: Callable[..., Any] | str,
                *,
                description: str = "",
                version: str = "0",
                speed_args: tuple[str, ...] = (),
                _kind: str = kind,
                _plugin: str = impl.plugin_name,
                _made: list[Entry] = made,
            ) -> None:
                _made.append(
                    Entry(
                        _kind, name, factory, _plugin, description, str(version), tuple(speed_args)
                    )
                )

            try:
                impl.function(register=register)
            except Exception as e:
                dist = dists.get(impl.plugin_name, ("?", "?"))[0]
                registry.failures.append(
                    PluginFailure(impl.plugin_name, dist, f"{type(e).__name__}: {e}")
                )
                failed.add(impl.plugin_name)
                continue
            for entry in made:
                _add(registry, entry, dists)
    for name, plugin in pm.list_name_plugin():
        if name in failed or plugin is None:
            continue
        dist, version = dists.get(name, ("?", "?"))
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        registry.plugins.append(PluginInfo(name, dist, version, hooks))
    return registry


def _add(registry: Registry, entry: Entry, dists: Mapping[str, tuple[str, str]]) -> None:
    """Add ``entry``; a name two plugins register is reported and refused when used, while
    every other component (and command) keeps working."""
    existing = registry.entries[entry.kind].get(entry.name)
    if existing is not None:
        first = f"{existing.plugin} ({dists.get(existing.plugin, ('?',))[0]})"
        second = f"{entry.plugin} ({dists.get(entry.plugin, ('?',))[0]})"
        why = (
            f"{entry.kind} {entry.name!r} is registered twice: by plugin {first} and by plugin "
            f"{second}. Uninstall one, or disable it with PRMH_DISABLE_PLUGINS=<plugin name>."
        )
        registry.clashes[(entry.kind, entry.name)] = why
        registry.failures.append(PluginFailure(entry.plugin, second.split(" (")[1][:-1], why))
        return
    registry.entries[entry.kind][entry.name] = entry
