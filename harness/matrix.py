"""The evaluation plan: which components, budgets and seeds, from options and a TOML file.

A component is named by a spec, ``NAME`` or ``NAME:key=value,key=value``. Options for every
component of a kind come from ``-P key=value`` (all PRMs) or ``-P NAME.key=value`` (one PRM);
inline spec options win over targeted ones, which win over the rest. Values are read as TOML
literals (``3``, ``0.5``, ``true``, ``"text"``), falling back to plain text.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import parse_toml
from prmh.masking import redact

LIST_KEYS = ("task", "generator", "prm", "splitter", "agg", "selector", "search", "budget", "seed")
ARG_KEYS = {
    "task": "task_args",
    "generator": "generator_args",
    "prm": "prm_args",
    "search": "search_args",
}
SCALAR_KEYS = ("limit", "pool", "results_dir", "world")
CONFIG_KEYS = (*LIST_KEYS, *ARG_KEYS.values(), *SCALAR_KEYS)

DEFAULTS: dict[str, Any] = {
    "task": ["arith"],
    "splitter": ["double-newline"],
    "selector": ["argmax"],
    "budget": [1, 4, 16],
    "seed": [0],
    "pool": None,
}
# What a bare `prmh eval` runs, by world (--world, env PRMH_WORLD): the tiny neural models
# shipped in the package, or the simulated solver with the exact oracle (no torch needed), on
# arith or on the bundled programming problems (`code`).
WORLDS: dict[str, dict[str, Any]] = {
    "tiny": {
        "generator": ["tiny"],
        "prm": ["tiny-calibrated"],
        "agg": ["min", "last"],
        "selector": ["argmax", "weighted-vote"],
        "search": ["best-of-n", "beam-ias"],
        "limit": 50,
    },
    "sim": {
        "generator": ["sim"],
        "prm": ["oracle", "oracle:noise=3"],
        "agg": ["mean", "min", "last"],
        "search": ["best-of-n"],
        "limit": 200,
    },
    "code": {  # the bundled programming problems, the same simulated solver and oracle
        "task": ["code"],
        "splitter": ["code-lines"],
        "generator": ["sim"],
        "prm": ["oracle", "oracle:noise=3"],
        "agg": ["min", "last"],
        "search": ["best-of-n"],
        "limit": 100,
    },
}
DEFAULT_WORLD = "tiny"


def parse_value(text: str) -> Any:
    try:
        return parse_toml(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise PrmhError(f"expected key=value, got {text!r}.")
    return key.strip(), parse_value(value.strip())


def parse_assignments(texts: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` options as a dict (the last of a repeated key wins)."""
    return dict(parse_assignment(t) for t in texts)


@dataclass(frozen=True, eq=False)
class Spec:
    """A component name with the options given to it."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Spec:
        name, _, rest = text.partition(":")
        if not name.strip():
            raise PrmhError(f"empty component name in {text!r}.")
        args = parse_assignments(a for a in rest.split(",") if a.strip())
        return cls(name.strip(), args)

    @property
    def label(self) -> str:
        """How tables and records name this component (credentials masked)."""
        if not self.args:
            return self.name
        return redact(self.name + ":" + ",".join(f"{k}={v}" for k, v in self.args.items()))

    def with_options(self, options: Mapping[str, Any]) -> Spec:
        """Merge kind-wide options: ``key`` for every component, ``NAME.key`` for this one."""
        merged: dict[str, Any] = {}
        targeted: dict[str, Any] = {}
        for key, value in options.items():
            target, dot, short = key.rpartition(".")
            if not dot:
                merged[key] = value
            elif target == self.name:
                targeted[short] = value
        return Spec(self.name, {**merged, **targeted, **self.args})


@dataclass(frozen=True)
class EvalPlan:
    """Everything ``prmh eval`` runs: the product of these lists."""

    task: tuple[Spec, ...]
    generator: tuple[Spec, ...]
    prm: tuple[Spec, ...]
    splitter: tuple[Spec, ...]
    agg: tuple[Spec, ...]
    selector: tuple[Spec, ...]
    search: tuple[Spec, ...]
    budget: tuple[int, ...]
    seed: tuple[int, ...]
    limit: int | None
    pool: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in LIST_KEYS:
            values = getattr(self, key)
            out[key] = (
                [{"name": s.name, "args": dict(s.args)} for s in values]
                if key not in ("budget", "seed")
                else list(values)
            )
        out["limit"], out["pool"] = self.limit, self.pool
        return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; unknown keys and malformed files are errors that say where."""
    try:
        data = parse_toml(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise PrmhError(f"cannot read config {str(path)!r}: {e.strerror}.") from e
    except UnicodeDecodeError as e:
        raise PrmhError(
            f"config {str(path)!r} is not UTF-8 text (byte {e.start}); a config is a TOML file."
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise PrmhError(f"config {str(path)!r} is not valid TOML: {e}.") from e
    return check_config(data, f"config {str(path)!r}")


def check_config(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Config keys and value shapes checked (a TOML file's, or ``prmh.evaluate``'s keywords);
    a single name where a list is expected becomes a list."""
    data = dict(data)
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise PrmhError(
            f"{where} has unknown key(s) {', '.join(unknown)}. "
            f"Known keys: {', '.join(CONFIG_KEYS)}."
        )
    for key in LIST_KEYS:
        if key in data and not isinstance(data[key], list | tuple):
            data[key] = [data[key]]
    for key in ARG_KEYS.values():
        if key in data and not isinstance(data[key], dict):
            raise PrmhError(f"{where}: {key} must be a table of key = value.")
    for key in ("world", "results_dir"):
        if key in data and not isinstance(data[key], str):
            raise PrmhError(f"{where}: {key} must be text, not {data[key]!r}.")
    for key in LIST_KEYS:
        if key in data and not all(isinstance(v, str | int) for v in data[key]):
            raise PrmhError(f"{where}: {key} must list names or numbers, not {data[key]!r}.")
    return data


def _flatten(args: Mapping[str, Any]) -> dict[str, Any]:
    """``{"oracle": {"noise": 1}}`` (a TOML sub-table) becomes ``{"oracle.noise": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


MAX_SAMPLES = 1 << 16  # per problem: a budget's extra zeros filled memory before anything ran


def _ints(
    key: str, values: Iterable[Any], minimum: int, most: int | None = None
) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise PrmhError(f"--{key} must be a whole number >= {minimum}, got {v!r}.")
        if most is not None and v > most:
            raise PrmhError(
                f"--{key} {v} is more samples per problem than prmh draws: use at most {most} "
                "(a typo's extra zeros would fill memory before anything is computed)."
            )
        out.append(v)
    return tuple(dict.fromkeys(out))


def _world_of(options: Mapping[str, Any], config: Mapping[str, Any] | None) -> str:
    """The default world, or `code` when every task asked for is the bundled `code` task."""
    tasks = options.get("task") or (config or {}).get("task") or []
    tasks = [tasks] if isinstance(tasks, str) else tasks
    code = tasks and all(str(t).partition(":")[0] == "code" for t in tasks)
    return "code" if code else DEFAULT_WORLD


def build_plan(options: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> EvalPlan:
    """Merge defaults < config file < command-line options, and check what can be checked
    without building components. ``options`` values are None or empty when not given."""
    world = options.get("world") or (config or {}).get("world") or _world_of(options, config)
    if world not in WORLDS:
        raise PrmhError(f"unknown world {world!r}; worlds are: {', '.join(WORLDS)}.")
    merged: dict[str, Any] = {**DEFAULTS, **WORLDS[world]}
    for source in (config or {}, options):
        for key, value in source.items():
            if value is None or (
                isinstance(value, list | tuple) and not value and key in LIST_KEYS
            ):
                continue
            if key in ARG_KEYS.values():
                merged[key] = {**merged.get(key, {}), **_flatten(value)}
            else:
                merged[key] = value
    specs: dict[str, tuple[Spec, ...]] = {}
    for key in LIST_KEYS:
        if key in ("budget", "seed"):
            continue
        parsed = [v if isinstance(v, Spec) else Spec.parse(str(v)) for v in merged[key]]
        kind_options = merged.get(ARG_KEYS.get(key, ""), {})
        unique = {s.label: s for s in (p.with_options(kind_options) for p in parsed)}
        specs[key] = tuple(unique.values())
    budgets = tuple(sorted(_ints("budget", merged["budget"], 1, MAX_SAMPLES)))
    seeds = _ints("seed", merged["seed"], 0)
    limit = merged.get("limit")
    if limit is not None:
        (limit,) = _ints("limit", [limit], 1)
    pool = merged.get("pool")
    if pool is None:
        pool = budgets[-1]
    else:
        (pool,) = _ints("pool", [pool], 1, MAX_SAMPLES)
        if pool < budgets[-1]:
            raise PrmhError(
                f"budget {budgets[-1]} is larger than the pool of {pool} samples; raise --pool "
                f"to at least {budgets[-1]} or drop that budget."
            )
    return EvalPlan(
        budget=budgets,
        seed=seeds,
        limit=limit,
        pool=pool,
        **specs,  # type: ignore[arg-type]
    )
