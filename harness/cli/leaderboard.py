"""``prmh leaderboard new|check|add|build``: boards built from run records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from prmh.cli.common import results_dir_option
from prmh.cli.group import cli
from prmh.errors import PrmhError


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
    from prmh.lookup import find_record
    from prmh.store import results_path

    paths = []
    for run in runs:
        if Path(run).is_file():
            paths.append(Path(run))
        else:
            record = find_record(results_path(results_dir), run)
            paths.append(results_path(results_dir) / "runs" / f"{record['run_id']}.json")
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
    from prmh.board_file import create_board
    from prmh.grading import get_grader
    from prmh.registry import load_registry

    registry = load_registry()
    entry = registry.get("task", task_name)
    for search in searches or []:  # a board naming no real search could take no run
        registry.get("search", search.partition(":")[0])
    grader = get_grader(entry.create().instance.grader, registry)
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
@click.option(
    "--board",
    "board_name",
    default=None,
    help="The board to check against [or NAME first, as add takes it].",
)
@results_dir_option
@_root_option
def leaderboard_check(
    runs: tuple[str, ...], board_name: str | None, results_dir: Path | None, root: Path
) -> None:
    """Check that runs (record paths or run ids) can join a board; nothing is written."""
    from prmh.board_file import load_board
    from prmh.leaderboard import accepted_records, check_record, read_record
    from prmh.masking import visible

    if board_name is None:  # `check NAME RUN...`, the order `add` takes
        if not (root / runs[0] / "board.toml").is_file():
            raise PrmhError(
                "name the board: prmh leaderboard check RUN... --board NAME, or prmh "
                f"leaderboard check NAME RUN... ({runs[0]!r} is no board in {str(root)!r})."
            )
        if len(runs) < 2:
            raise PrmhError(f"give the runs to check after the board's name {runs[0]!r}.")
        board_name, runs = runs[0], runs[1:]
    board = load_board(root, board_name)
    accepted = accepted_records(board)
    failed = False
    for path in _record_paths(runs, results_dir):
        record, _ = read_record(path)
        problems = check_record(board, record, accepted)
        if problems:
            failed = True
            click.echo(visible(f"{path}: rejected: " + "; ".join(problems)))  # a record's text
        else:
            dirty = (record.get("git") or {}).get("dirty") is not False
            click.echo(f"{path}: ok" + (" (flagged: dirty or unknown tree)" if dirty else ""))
    if failed:
        raise click.exceptions.Exit(2)


@leaderboard_group.command("add")
@click.argument("name")
@click.argument("runs", nargs=-1, required=True)
@results_dir_option
@_root_option
def leaderboard_add(name: str, runs: tuple[str, ...], results_dir: Path | None, root: Path) -> None:
    """Add runs to a board (all or none), then rebuild it."""
    from prmh.board_file import load_board
    from prmh.leaderboard import add_records, build

    board = load_board(root, name)
    added = add_records(board, _record_paths(runs, results_dir))
    build(board)
    click.echo(f"added {', '.join(added)} to {name}; rebuilt {board.path}")


@leaderboard_group.command("build")
@click.argument("name")
@_root_option
def leaderboard_build(name: str, root: Path) -> None:
    """Rebuild a board's README.md, index.html and board.json from its records alone."""
    from prmh.board_file import load_board
    from prmh.leaderboard import build

    for path in build(load_board(root, name)):
        click.echo(f"wrote {path}")
