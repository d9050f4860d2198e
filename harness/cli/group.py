"""The ``prmh`` group: built-in commands attach to it when their module is first needed,
plugin commands are added lazily, and ``PrmhError`` from anywhere below becomes one line and
exit status 2."""

from __future__ import annotations

import importlib
from typing import Any

import click

from prmh._version import __version__
from prmh.errors import PrmhError


class UserError(click.ClickException):
    exit_code = 2


# each built-in command's module in prmh.cli: a command imports its own module only
BUILT_IN = {
    **dict.fromkeys(["eval", "show"], "evaluation"),
    **dict.fromkeys(["list", "plugins"], "listing"),
    **dict.fromkeys(["rollout", "label"], "data"),
    **dict.fromkeys(["train", "calibrate", "train-generator"], "train"),
    **dict.fromkeys(["analyze", "reproduce"], "analyze"),
    **dict.fromkeys(["export", "view", "plot", "merge"], "results"),
    "leaderboard": "leaderboard",
}


class PrmhGroup(click.Group):
    """Imports built-in commands' modules on demand, adds plugin commands lazily and turns
    ``PrmhError`` into a clean exit 2."""

    def _plugin_commands(self) -> dict[str, Any]:
        from prmh.registry import load_registry

        try:
            registry = load_registry()
        except PrmhError:
            return {}
        taken = {*self.commands, *BUILT_IN}
        return {n: e for n, e in registry.entries["command"].items() if n not in taken}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *BUILT_IN, *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in BUILT_IN:
            importlib.import_module(f"prmh.cli.{BUILT_IN[name]}")
        if name in self.commands:
            return self.commands[name]
        entry = self._plugin_commands().get(name)
        if entry is None:
            return None
        command = entry.load_factory()()
        command.name = name
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PrmhError as e:
            from prmh.masking import redact, visible

            raise UserError(visible(redact(str(e)))) from None
        except KeyboardInterrupt:  # click said "Aborted!" with status 1
            click.echo(
                "interrupted: finished work is in the store, and the same command resumes from it.",
                err=True,
            )
            raise click.exceptions.Exit(130) from None  # 128 + SIGINT, as shells report it

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> click.Context:
        received = list(args)  # what prmh was called with, for run records
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["prmh.argv"] = received
        return ctx


@click.group(cls=PrmhGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="prmh")
def cli() -> None:
    """Evaluate process reward models: search, selection, calibration and step errors."""
