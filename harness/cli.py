"""The ``prmh`` command line: ``eval``, ``list``, ``plugins``, ``show`` and plugin commands.

Bad input raises ``PrmhError`` anywhere below; it is printed as one line and the command
exits with status 2, no traceback. Tables go to stdout (``--json`` prints the run record
instead); progress bars go to stderr.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import click

from prmh._version import __version__
from prmh.api import DEFAULT_RESULTS_DIR, RESULTS_DIR_ENV
from prmh.errors import PrmhError


class UserError(click.ClickException):
    exit_code = 2


class PrmhGroup(click.Group):
    """Adds plugin commands lazily and turns ``PrmhError`` into a clean exit 2."""

    def _plugin_commands(self) -> dict[str, Any]:
        from prmh.registry import load_registry

        try:
            registry = load_registry()
        except PrmhError:
            return {}
        commands = {}
        for name, entry in registry.entries["command"].items():
            if name not in self.commands:
                commands[name] = entry
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
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
            from prmh.records import redact

            raise UserError(redact(str(e))) from None

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> click.Context:
        received = list(args)  # what prmh was called with, for run records
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["prmh.argv"] = received
        return ctx


def _results_dir_option(f: Any) -> Any:
    return click.option(
        "--results-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Where the store and run records live [env {RESULTS_DIR_ENV}; "
        f"default ./{DEFAULT_RESULTS_DIR}].",
    )(f)


def _resolve_results_dir(option: Path | None, config: dict[str, Any] | None = None) -> Path:
    from prmh.api import results_path

    return results_path(option or (config or {}).get("results_dir"))


@click.group(cls=PrmhGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="prmh")
def cli() -> None:
    """Evaluate process reward models: search, selection, calibration and step errors."""


def _kv(kind: str) -> dict[str, Any]:
    return {
        "multiple": True,
        "metavar": "KEY=VALUE",
        "help": f"Option for every {kind} (KEY=VALUE) or one of them (NAME.KEY=VALUE).",
    }


@cli.command("eval")
@click.option("--task", "task", multiple=True, help="Task (repeatable) [default: arith].")
@click.option(
    "--world",
    envvar="PRMH_WORLD",
    default=None,
    help="Defaults for what is not given: tiny (the shipped neural models) or sim (simulated "
    "solver, exact oracle; no torch) [default: tiny; env PRMH_WORLD].",
)
@click.option("--generator", multiple=True, help="Generator (repeatable) [world: tiny | sim].")
@click.option(
    "--prm",
    multiple=True,
    help="PRM (repeatable) [world: tiny-calibrated | oracle, oracle:noise=3].",
)
@click.option("--splitter", multiple=True, help="Step splitter [default: double-newline].")
@click.option(
    "--agg", multiple=True, help="Aggregator (repeatable) [world: min, last | mean, min, last]."
)
@click.option(
    "--selector",
    multiple=True,
    help="Answer selector (repeatable) [world: argmax, weighted-vote | argmax].",
)
@click.option(
    "--search",
    multiple=True,
    help="Search strategy (repeatable) [world: best-of-n, beam-ias | best-of-n].",
)
@click.option("-n", "--budget", multiple=True, type=int, help="Budget N (repeatable) [1, 4, 16].")
@click.option("--seed", multiple=True, type=int, help="Seed (repeatable) [default: 0].")
@click.option("--limit", type=int, default=None, help="Use the first N problems [world: 50 | 200].")
@click.option("--pool", type=int, default=None, help="Samples per problem [default: largest N].")
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=None,
    help="Local JSON, JSONL or Parquet file of problems for the task (-T data=FILE).",
)
@click.option("-T", "task_args", **_kv("task"))
@click.option("-G", "generator_args", **_kv("generator"))
@click.option("-P", "prm_args", **_kv("PRM"))
@click.option("-S", "search_args", **_kv("search"))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file with the same keys (see README).",
)
@_results_dir_option
@click.option(
    "--grading-timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds allowed to grade one answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def eval_command(
    data: str | None,
    config_path: Path | None,
    results_dir: Path | None,
    grading_timeout: float,
    as_json: bool,
    **options: Any,
) -> None:
    """Run an evaluation matrix and print accuracy and compute per cell.

    Every option that names components is repeatable; prmh runs the product. A component may
    carry options inline, as NAME:KEY=VALUE,KEY=VALUE. Re-running the same command resumes:
    nothing already in the store is computed again.
    """
    from prmh.api import run_plan
    from prmh.matrix import build_plan, load_config, parse_assignment

    config = load_config(config_path) if config_path else None
    for key in ("task_args", "generator_args", "prm_args", "search_args"):
        options[key] = dict(parse_assignment(a) for a in options[key]) or None
    if data is not None:
        options["task_args"] = {**(options["task_args"] or {}), "data": data}
    plan = build_plan(options, config)
    argv = click.get_current_context().find_root().meta.get("prmh.argv", sys.argv[1:])
    from prmh.progress import progress_bars

    with progress_bars() as progress:
        record = run_plan(
            plan, _resolve_results_dir(results_dir, config), argv, progress, grading_timeout
        )
    _emit(record, as_json)


def _console() -> Any:
    """A console for results: wide when piped, so each table row stays on one line."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=220)
    return console


def _emit(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record, indent=1, sort_keys=True))
        return
    from prmh.report import print_record

    console = _console()
    print_record(record, console)
    console.print(f"[dim]record: {record.get('results_dir', '.')}/runs/{record['run_id']}.json")


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
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
    kinds = [kind] if kind else list(KINDS)
    rows = [
        (k, e.name, e.plugin, e.description)
        for k in kinds
        for e in sorted(registry.entries[k].values(), key=lambda e: e.name)
    ]
    if as_json:
        click.echo(
            json.dumps(
                [
                    dict(zip(("kind", "name", "plugin", "description"), r, strict=True))
                    for r in rows
                ],
                indent=1,
            )
        )
        return
    table = Table(header_style="bold", box=None)
    for column in ("kind", "name", "plugin", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # text, not markup: [vllm] stays
    console = _plain_console()
    console.print(table)
    _print_failures(registry, console)


def _plain_console() -> Any:
    """A console for listings: the terminal's width, or 120 columns when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=120)


def _show_component(entry: Any, as_json: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from prmh.options import describe

    factory = entry.load_factory()
    options = describe(factory)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "kind": entry.kind,
                    "name": entry.name,
                    "plugin": entry.plugin,
                    "description": entry.description,
                    "options": [
                        dict(zip(("name", "type", "default"), o, strict=True)) for o in options
                    ],
                },
                indent=1,
            )
        )
        return
    console = _plain_console()
    console.print(Text(f"{entry.kind} {entry.name} (plugin {entry.plugin})", style="bold"))
    console.print(Text(entry.description))
    doc = inspect.getdoc(factory.__init__ if inspect.isclass(factory) else factory)
    if doc and not doc.startswith("Initialize self"):
        console.print(Text(doc, style="dim"))
    table = Table(header_style="bold", box=None)
    for column in ("option", "type", "default"):
        table.add_column(column)
    for row in options:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table if options else Text("(no options)"))


def _print_failures(registry: Any, console: Any) -> None:
    for failure in registry.failures:
        console.print(
            f"[red]plugin {failure.plugin} ({failure.distribution}) failed to load:[/red] "
            f"{failure.error}",
            highlight=False,
        )


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins with their distribution, version and hooks, and any that failed."""
    from rich.table import Table

    from prmh.registry import load_registry

    registry = load_registry()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "plugins": [vars(p) | {"hooks": list(p.hooks)} for p in registry.plugins],
                    "failures": [vars(f) for f in registry.failures],
                },
                indent=1,
            )
        )
        return
    table = Table(header_style="bold")
    for column in ("plugin", "distribution", "version", "hooks"):
        table.add_column(column)
    for p in registry.plugins:
        table.add_row(p.name, p.distribution, p.version, ", ".join(p.hooks))
    console = _console()
    console.print(table)
    _print_failures(registry, console)


@cli.command("show")
@click.argument("run")
@_results_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def show_command(run: str, results_dir: Path | None, as_json: bool) -> None:
    """Show a stored run (an id, a unique prefix, "latest", or a record's path)."""
    from prmh.records import find_record

    _emit(find_record(_resolve_results_dir(results_dir), run), as_json)


@cli.group("leaderboard")
def leaderboard_group() -> None:
    """Maintain leaderboards built from run records (in ./leaderboards by default)."""


def _root_option(f: Any) -> Any:
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("leaderboards"),
        show_default=True,
        help="Folder that holds the boards.",
    )(f)


def _record_paths(runs: tuple[str, ...], results_dir: Path | None) -> list[Path]:
    """Record paths for RUN arguments: a path to a record, or a run id in the results dir."""
    from prmh.records import find_record

    paths = []
    for run in runs:
        if Path(run).is_file():
            paths.append(Path(run))
        else:
            record = find_record(_resolve_results_dir(results_dir), run)
            paths.append(_resolve_results_dir(results_dir) / "runs" / f"{record['run_id']}.json")
    return paths


@leaderboard_group.command("new")
@click.argument("name")
@click.option("--task", "task_name", default="arith", show_default=True, help="The board's task.")
@click.option("--search", "searches", multiple=True, help="Searches shown [default: best-of-n].")
@click.option("-n", "--budget", "budgets", multiple=True, type=int, help="Budgets [1, 4, 16].")
@click.option("--title", default=None, help="Title of the board's pages.")
@click.option(
    "--about",
    type=click.Choice(["prm", "generator"]),
    default="prm",
    show_default=True,
    help="What rows compare; the generator is pinned unless it is 'generator'.",
)
@_root_option
def leaderboard_new(
    name: str,
    task_name: str,
    searches: tuple[str, ...],
    budgets: tuple[int, ...],
    title: str | None,
    about: str,
    root: Path,
) -> None:
    """Create a board; the task's version and grader are the installed ones. Problems, seeds,
    task options and generator are pinned by the first run added."""
    from prmh.grading import get_grader
    from prmh.leaderboard import create_board
    from prmh.registry import load_registry

    registry = load_registry()
    entry = registry.get("task", task_name)
    grader = get_grader(entry.create().instance.grader)
    board = create_board(
        root,
        name,
        task=task_name,
        task_version=entry.version,
        grader=grader.name,
        grader_version=grader.version,
        searches=list(searches or ["best-of-n"]),
        budgets=list(budgets or [1, 4, 16]),
        title=title,
        about=about,
    )
    click.echo(
        f"created {board.path / 'board.toml'}; add runs with `prmh leaderboard add {name} RUN`"
    )


@leaderboard_group.command("check")
@click.argument("runs", nargs=-1, required=True)
@click.option("--board", "board_name", required=True, help="The board to check against.")
@_results_dir_option
@_root_option
def leaderboard_check(
    runs: tuple[str, ...], board_name: str, results_dir: Path | None, root: Path
) -> None:
    """Check that runs (record paths or run ids) can join a board; nothing is written."""
    from prmh.leaderboard import accepted_records, check_record, load_board, read_record

    board = load_board(root, board_name)
    accepted = accepted_records(board)
    failed = False
    for path in _record_paths(runs, results_dir):
        record = read_record(path)
        problems = check_record(board, record, accepted)
        if problems:
            failed = True
            click.echo(f"{path}: rejected: " + "; ".join(problems))
        else:
            dirty = (record.get("git") or {}).get("dirty") is not False
            click.echo(f"{path}: ok" + (" (flagged: dirty or unknown tree)" if dirty else ""))
    if failed:
        raise click.exceptions.Exit(2)


@leaderboard_group.command("add")
@click.argument("name")
@click.argument("runs", nargs=-1, required=True)
@_results_dir_option
@_root_option
def leaderboard_add(name: str, runs: tuple[str, ...], results_dir: Path | None, root: Path) -> None:
    """Add runs to a board (all or none), then rebuild it."""
    from prmh.leaderboard import add_records, build, load_board

    board = load_board(root, name)
    added = add_records(board, _record_paths(runs, results_dir))
    build(board)
    click.echo(f"added {', '.join(added)} to {name}; rebuilt {board.path}")


@leaderboard_group.command("build")
@click.argument("name")
@_root_option
def leaderboard_build(name: str, root: Path) -> None:
    """Rebuild a board's README.md, index.html and board.json from its records alone."""
    from prmh.leaderboard import build, load_board

    for path in build(load_board(root, name)):
        click.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="prmh"))
