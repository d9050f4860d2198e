"""``prmh list`` and ``prmh plugins``: what is installed."""

from __future__ import annotations

import inspect
from typing import Any

import click

from prmh.cli.common import console, json_option, print_json
from prmh.cli.group import cli
from prmh.errors import PrmhError


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("name", required=False)
@json_option("the listing")
def list_command(kind: str | None, name: str | None, as_json: bool) -> None:
    """List registered components, all kinds or one KIND (task, prm, search...); with a NAME,
    that component's options (types and defaults)."""
    from rich.table import Table
    from rich.text import Text

    from prmh.registry import KINDS, load_registry

    if kind is not None and kind not in KINDS:
        raise PrmhError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}.")
    registry = load_registry()
    if kind is not None and name is not None:
        _show_component(registry.get(kind, name), as_json)
        return
    columns = ("kind", "name", "plugin", "description")
    rows = [
        (k, e.name, e.plugin, e.description)
        for k in ([kind] if kind else list(KINDS))
        for e in sorted(registry.entries[k].values(), key=lambda e: e.name)
    ]
    if as_json:
        print_json([dict(zip(columns, r, strict=True)) for r in rows])
        return
    table = Table(header_style="bold", box=None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # text, not markup: [vllm] stays
    out = console(120)
    out.print(table)
    _print_failures(registry, out)


def _show_component(entry: Any, as_json: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from prmh.options import describe

    factory = entry.load_factory()
    rows = describe(factory)
    if as_json:
        print_json(
            {
                "kind": entry.kind,
                "name": entry.name,
                "plugin": entry.plugin,
                "description": entry.description,
                "options": [dict(zip(("name", "type", "default"), o, strict=True)) for o in rows],
            }
        )
        return
    out = console(120)
    out.print(Text(f"{entry.kind} {entry.name} (plugin {entry.plugin})", style="bold"))
    out.print(Text(entry.description))
    target = inspect.unwrap(factory)  # a shipped preset's doc is its factory's
    doc = inspect.getdoc(target.__init__ if inspect.isclass(target) else target)
    if doc and not doc.startswith("Initialize self"):
        out.print(Text(doc, style="dim"))
    table = Table(header_style="bold", box=None)
    for column in ("option", "type", "default"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out.print(table if rows else Text("(no options)"))


def _print_failures(registry: Any, out: Any) -> None:
    from rich.text import Text

    for failure in registry.failures:
        said = f"plugin {failure.plugin} ({failure.distribution}) failed to load:"
        out.print(Text.assemble((said, "red"), " ", failure.error))


@cli.command("plugins")
@json_option("the plugins")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins with their distribution, version and hooks, and any that failed."""
    from rich.table import Table

    from prmh.registry import load_registry

    registry = load_registry()
    if as_json:
        print_json(
            {
                "plugins": [vars(p) | {"hooks": list(p.hooks)} for p in registry.plugins],
                "failures": [vars(f) for f in registry.failures],
            }
        )
        return
    table = Table(header_style="bold")
    for column in ("plugin", "distribution", "version", "hooks"):
        table.add_column(column)
    for p in registry.plugins:
        table.add_row(p.name, p.distribution, p.version, ", ".join(p.hooks))
    out = console()
    out.print(table)
    _print_failures(registry, out)
