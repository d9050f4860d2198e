"""The bundled task files (``tasks/*.toml``), each registered as a task; the format and its
reader are ``prmh.task_files``."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from prmh import hookimpl
from prmh.task_files import factory, load_definition


def definitions() -> list[dict[str, Any]]:
    found = []
    for entry in sorted(files("prmh.tasks").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            found.append(load_definition(entry.read_text(), entry.name))
    return found


@hookimpl
def prmh_register_task(register):
    for definition in definitions():
        size = f", {definition['size']} problems" if "size" in definition else ""
        source = f"{definition['dataset']} ({definition['split']}{size})"
        register(
            definition["name"],
            factory(definition),
            description=f"{definition['description']} · {source}",
            version=definition["version"],
        )
