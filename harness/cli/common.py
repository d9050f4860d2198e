"""What several commands share, declared once: options (results directory, JSON output, seed,
component options), the command line as received, consoles and printing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from prmh.store import DEFAULT_RESULTS_DIR, RESULTS_DIR_ENV

Decorator = Callable[[Any], Any]


def stack(*decorators: Decorator) -> Decorator:
    """Several option decorators as one, applied in the order given (top to bottom)."""

    def apply(f: Any) -> Any:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


results_dir_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where the store and run records live [env {RESULTS_DIR_ENV}; "
    f"default ./{DEFAULT_RESULTS_DIR}].",
)


def _writable(ctx: click.Context, param: click.Parameter, path: Path | None) -> Path | None:
    """An output file whose folder exists and takes a new file, checked (by making and removing
    one) before the command works, so that a long command does not fail at its end."""
    import os
    import tempfile

    from prmh.files import is_special

    if path is not None:
        if not path.name:  # "" is ".", which click takes for a file: os.replace onto it failed
            raise click.BadParameter(f"{str(path)!r} is a folder: name a file in it.")
        own = _prmh_own(path)
        if own:
            raise click.BadParameter(
                f"{str(path)!r} is {own}, which writing there would destroy: choose another file."
            )
        if is_special(path):  # /dev/stdout: written into (prmh.files)
            if not os.access(path, os.W_OK):
                raise click.BadParameter(f"cannot write {str(path)!r}: permission denied.")
            return path
        try:
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as e:
            raise click.BadParameter(
                f"cannot write in {str(path.parent)!r} ({e.strerror}): choose a folder that "
                "exists and that you can write."
            ) from None
    return path


def _prmh_own(path: Path) -> str | None:
    """What ``path`` is if it is a file prmh keeps (a store, a run's record or per-sample file,
    a board's record): no command's output may replace it (``export --out store.sqlite`` did)."""
    from prmh.samples import SUFFIX
    from prmh.store import DB_NAME

    resolved = path.resolve()  # a link to the store is the store
    name, folder = resolved.name, resolved.parent
    if name.startswith(DB_NAME):  # the store and its -wal, -shm, -journal
        return "a results directory's store"
    results = folder.name == "runs" and (folder.parent / DB_NAME).is_file()
    if name.endswith(SUFFIX) or (name.endswith(".json") and results):
        return "where a run's record or per-sample results are kept"
    if (
        name.endswith(".json")
        and folder.name == "records"
        and (folder.parent / "board.toml").is_file()
    ):
        return "a leaderboard's record"
    return None


def out_option(help: str, required: bool = False, flag: str = "--out") -> Decorator:
    """An output file's option (``--out`` also ``-o``), its folder checked before the command
    runs (``_writable``)."""
    kind = click.Path(dir_okay=False, path_type=Path)
    names = (flag, "-o") if flag == "--out" else (flag,)
    return click.option(*names, type=kind, required=required, callback=_writable, help=help)


def json_option(what: str = "the run record") -> Decorator:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")

threads_option = click.option(
    "--threads",
    type=int,
    default=None,
    help="Threads for model work [env PRMH_THREADS, else OMP_NUM_THREADS, else the CPUs this "
    "process may use].",
)


def _assignments(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
    from prmh.matrix import parse_assignments

    return parse_assignments(value)


def kv_option(flag: str, dest: str, kind: str, *, each: bool = False) -> Decorator:
    """A repeatable KEY=VALUE option, parsed into a dict; ``each``: the option may also name
    one of several components (NAME.KEY=VALUE)."""
    which = f"every {kind} (KEY=VALUE) or one of them (NAME.KEY=VALUE)" if each else f"the {kind}"
    return click.option(
        flag,
        dest,
        multiple=True,
        metavar="KEY=VALUE",
        callback=_assignments,
        help=f"Option for {which} (repeatable).",
    )


def argv() -> list[str]:
    """The command line prmh was called with (for run records)."""
    return click.get_current_context().find_root().meta.get("prmh.argv", [])


@contextlib.contextmanager
def opened(command: str, options: dict[str, Any]) -> Iterator[Any]:
    """A run of ``command`` with its options as the record's configuration, and progress."""
    from prmh.engine import command_config, open_run
    from prmh.progress import progress_bars

    config = command_config(command, options)
    with progress_bars() as progress:
        with open_run(config, options.get("results_dir"), argv(), progress) as run:
            yield run


def unescape(text: str) -> str:
    """Command-line text with ``\\n`` and ``\\t`` for newlines and tabs (other text as is)."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def console(width: int = 220) -> Any:
    """A console for results: the terminal's, or ``width`` columns when piped, so each table
    row stays on one line."""
    from prmh.report import literal_console

    terminal = literal_console()
    return terminal if terminal.is_terminal else literal_console(width=width)


def print_json(data: Any) -> None:
    """``--json`` output: strict JSON for jq and ``JSON.parse`` (a nan, say an undefined
    correlation, is null; a run record's file keeps Python's NaN, which prmh reads back)."""
    from prmh.files import strict_json

    click.echo(strict_json(data, indent=1, sort_keys=True))


def emit(record: dict[str, Any], as_json: bool, printer: Callable[[], None] | None = None) -> None:
    """A run record: as JSON, or its tables (``printer``'s, for a record that is not an
    evaluation's) and where the record is."""
    if as_json:
        print_json(record)
        return
    from rich.text import Text

    from prmh.report import print_record

    out = console()
    print_record(record, out, summary=printer is None)
    if printer is not None:  # e.g. an analysis's tables, as its command printed them
        printer()
    where = f"{record.get('results_dir', '.')}/runs/{record['run_id']}.json"
    out.print(Text(f"record: {where}", style="dim"))


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table of text cells, the first column left-aligned, the others right."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console(200).print(table)
