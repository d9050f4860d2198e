"""Installed distributions, found as ``importlib.metadata`` finds them: the ``*.dist-info`` and
``*.egg-info`` folders in the directories on ``sys.path``, in path order, the first folder of a
name winning. Read here without importing ``importlib.metadata``, which with the e-mail parser
it loads costs ~25 ms of every command that builds the registry (an eighth of a cached re-run).
Where ``sys.path`` holds a zip archive or a legacy ``.egg``, ``importlib.metadata`` is used."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".dist-info", ".egg-info")


def normal(name: str) -> str:
    """A distribution's name as wheels spell it in their folder names (PEP 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass(frozen=True)
class Installed:
    """One distribution's metadata folder."""

    folder: Path

    def read_text(self, filename: str) -> str | None:
        try:
            return (self.folder / filename).read_text(encoding="utf-8")
        except OSError:
            return None

    def headers(self) -> dict[str, str]:
        """The metadata's first ``Name`` and ``Version`` (the lines before the first blank one;
        the long description after them is not read)."""
        found: dict[str, str] = {}
        for file in ("METADATA", "PKG-INFO"):
            try:
                with open(self.folder / file, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if not line.strip():
                            break
                        key, _, value = line.partition(":")
                        key = key.strip().capitalize()  # e-mail headers ignore case
                        if key in ("Name", "Version"):
                            found.setdefault(key, value.strip())
                return found
            except OSError:
                continue
        return found

    @property
    def version(self) -> str | None:
        return self.headers().get("Version")

    def entry_points(self, group: str) -> list[tuple[str, str]]:
        """(name, value) of each entry point in ``group``, in the file's order; lines are
        stripped, blank ones and ``#`` comments skipped, as ``importlib.metadata`` reads them."""
        found, section = [], None
        for line in (self.read_text("entry_points.txt") or "").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif section == group and "=" in line:
                name, _, value = line.partition("=")
                found.append((name.strip(), value.strip()))
        return found


def _folders() -> Iterator[tuple[str, str, str]]:
    """(normalised name, directory, folder) of every metadata folder on ``sys.path``, in
    path order."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(SUFFIXES):
                base = folder.rpartition(".")[0].partition("-")[0]  # as importlib.metadata
                yield normal(base), entry or ".", folder


def _elsewhere() -> bool:
    """Metadata this module does not read may be on ``sys.path``: a file there (a zip archive
    of modules) or a legacy ``.egg`` folder (its metadata in ``EGG-INFO``)."""
    return any(e.endswith(".egg") or os.path.isfile(e) for e in sys.path if e)


def distributions(name: str) -> list[Any]:
    """Every installed distribution of ``name``, in path order: each has ``version`` and
    ``read_text(filename)``."""
    if _elsewhere():
        from importlib.metadata import distributions as metadata_distributions

        return list(metadata_distributions(name=name))
    wanted = normal(name)
    return [Installed(Path(d, f)) for n, d, f in _folders() if n == wanted]


def versions(names: Sequence[str]) -> dict[str, str | None]:
    """Each name's first installed version (None when it is not installed), in one scan."""
    if _elsewhere():
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as metadata_version

        def read(name: str) -> str | None:
            try:
                return metadata_version(name)
            except PackageNotFoundError:
                return None

        return {name: read(name) for name in names}
    wanted: dict[str, list[str]] = {}
    for name in names:
        wanted.setdefault(normal(name), []).append(name)
    found: dict[str, str | None] = dict.fromkeys(names)
    for n, d, f in _folders():
        if n in wanted:
            found.update(dict.fromkeys(wanted.pop(n), Installed(Path(d, f)).version))
    return found


def version(name: str) -> str | None:
    """The first installed ``name``'s version, None when it is not installed."""
    return versions([name])[name]


def entry_points(group: str) -> list[tuple[str, str, str, str]]:
    """(name, value, distribution, its version) of each entry point in ``group``, of the first
    distribution of each name."""
    if _elsewhere():
        from importlib.metadata import entry_points as metadata_entry_points

        points = metadata_entry_points(group=group)
        return [(p.name, p.value, *((p.dist.name, p.dist.version) if p.dist else ("?", "?")))
                for p in points]  # fmt: skip
    found, seen = [], set()
    for n, d, f in _folders():
        if n in seen:
            continue
        seen.add(n)
        dist = Installed(Path(d, f))
        points = dist.entry_points(group)
        if points:
            headers = dist.headers()
            name, number = headers.get("Name", "?"), headers.get("Version", "?")
            found += [(point, value, name, number) for point, value in points]
    return found


def load(value: str) -> Any:
    """What an entry point's ``module:attribute.path [extras]`` names."""
    module, _, attributes = value.partition("[")[0].strip().partition(":")
    found = importlib.import_module(module.strip())
    for attribute in filter(None, attributes.strip().split(".")):
        found = getattr(found, attribute)
    return found
