"""The bundled task files (``tasks/*.toml``), each registered as a task; the format and its
reader are ``prmh.task_files``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import prmh.tasks
from prmh import hookimpl
from prmh.task_files import factory, load_definition

TASKS = Path(prmh.tasks.__file__).parent  # as the tiny world's files are found


def definitions() -> list[dict[str, Any]]:
    return [load_definition(p.read_text(), p.name) for p in sorted(TASKS.glob("*.toml"))]


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
