"""PRM directories: a folder prmh saved (``prmh train``, ``prmh calibrate``) or a user marked
with a ``prmh_prm.json`` naming the recipe that reads it and its options, so ``--prm DIR``
loads it with that recipe; and model folders given as ``--generator DIR`` (what ``prmh
train-generator`` saves), read by the ``hf`` generator."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import read_json

PRM_CONFIG_FILE = "prmh_prm.json"


def write_prm_config(directory: str | Path, recipe: str, options: Mapping[str, Any]) -> None:
    """Mark ``directory`` as a PRM that ``--prm DIRECTORY`` loads with ``recipe``."""
    data = {"recipe": recipe, "options": dict(options)}
    (Path(directory) / PRM_CONFIG_FILE).write_text(json.dumps(data, indent=1) + "\n")


def read_prm_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / PRM_CONFIG_FILE
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise PrmhError(f"cannot read {str(path)!r}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("recipe"), str):
        raise PrmhError(f'{str(path)!r} must hold {{"recipe": NAME, "options": {{...}}}}.')
    if not isinstance(data.get("options", {}), dict):
        raise PrmhError(f"{str(path)!r}: options must be an object of option names to values.")
    return data


def directory_entry(registry: Any, directory: str) -> Any:
    """A PRM saved by prmh, as a registry ``Entry``: its ``prmh_prm.json`` names the recipe
    (an entry of ``registry``) and its options."""
    where = str(Path(directory) / PRM_CONFIG_FILE)
    if not Path(where).is_file():
        raise PrmhError(
            f"{directory!r} is a directory without {PRM_CONFIG_FILE}, so prmh cannot tell which "
            f"recipe reads it. Name the recipe: --prm value-head -P model={directory} (see "
            f"`prmh list prm`), or write {PRM_CONFIG_FILE} into it: "
            '{"recipe": "value-head", "options": {}}.'
        )
    config = read_prm_config(directory)
    if config["recipe"] not in registry.entries["prm"]:
        raise PrmhError(
            f"{where!r} names the recipe {config['recipe']!r}, which is not a PRM recipe; "
            f"recipes: {', '.join(sorted(registry.entries['prm']))}."
        )
    recipe = registry.get("prm", config["recipe"])
    options = dict(config.get("options", {}))
    if options.get("calibrated") == ".":  # an adapter over the PRM named by its options
        options["calibrated"] = directory
    elif "model" in options:
        raise PrmhError(f"{where!r} sets 'model'; the directory itself is the model.")
    else:
        options["model"] = directory
    params = inspect.signature(recipe.load_factory()).parameters
    unknown = sorted(k for k in options if k not in params)
    if unknown:
        raise PrmhError(
            f"{where!r}: recipe {config['recipe']!r} has no option(s) {', '.join(unknown)}."
        )
    factory = functools.partial(recipe.load_factory(), **options)
    return replace(
        recipe,
        name=directory,
        factory=factory,
        description=f"prmh PRM directory ({config['recipe']} recipe)",
    )


def model_folder_entry(registry: Any, directory: str) -> Any:
    """``--generator DIR``: the ``hf`` generator reading the causal LM in ``DIR`` (its other
    options as ``-G`` gives them)."""
    hf = registry.get("generator", "hf")
    factory = functools.partial(hf.load_factory(), model=directory)
    return replace(hf, name=directory, factory=factory, description="model folder (hf)")
