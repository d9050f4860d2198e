"""``prmh export``, ``prmh view`` and ``prmh plot``: a run's per-sample results as tables, as a
page to browse, and as figures for a paper."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from prmh.cli.common import out_option, results_dir_option
from prmh.cli.group import cli
from prmh.errors import PrmhError

FORMATS = ("csv", "jsonl", "parquet")


@cli.command("export")
@click.argument("run", default="latest")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="[--out's suffix (.csv, .jsonl, .parquet), else csv]",
)
@click.option(
    "--level",
    type=click.Choice(["cell", "problem", "candidate", "step"]),
    default="problem",
    show_default=True,
    help="One row per cell, per problem of a cell, per candidate, or per scored step.",
)
@out_option("The file to write [standard output; Parquet needs a file].")
@results_dir_option
def export_command(
    run: str, fmt: str | None, level: str, out: Path | None, results_dir: Path | None
) -> None:
    """Export a run's per-sample results (RUN: an id, a unique prefix, "latest" or a record's
    path). Columns are listed in the README ("Per-sample results")."""
    from prmh.files import write_bytes_atomic
    from prmh.results import load_run

    fmt = _format(fmt, out)
    data = load_run(run, results_dir).export(level, fmt)
    if out is None:
        if fmt == "parquet":
            raise PrmhError("Parquet is binary: give a file with --out.")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    write_bytes_atomic(out, data)
    click.echo(f"wrote {out} ({level} level, {fmt})", err=True)


def _format(fmt: str | None, out: Path | None) -> str:
    """The export format: as given, else named by ``out``'s suffix, else csv; a format that
    contradicts the suffix (CSV in ``x.parquet``) is refused."""
    named = out.suffix.lower().lstrip(".") if out is not None else ""
    named = named if named in FORMATS else None
    if fmt is not None and named not in (None, fmt):
        raise PrmhError(
            f"--out {str(out)!r} names a .{named} file but --format is {fmt}: drop --format "
            f"(the suffix decides) or name the file .{fmt}."
        )
    return fmt or named or "csv"


@cli.command("view")
@click.argument("run", default="latest")
@out_option("The page to write [RESULTS_DIR/runs/RUN.html].")
@click.option("--serve", is_flag=True, help="Also serve it on localhost until Ctrl-C.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="With --serve (0: any).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Each task's first N problems only (a run too large for one page).",
)
@results_dir_option
def view_command(
    run: str, out: Path | None, serve: bool, port: int, limit: int | None, results_dir: Path | None
) -> None:
    """Write a run's viewer: one self-contained HTML page (no external assets) to browse its
    cells, problems, candidates and their step scores; open it in a browser."""
    from prmh.results import load_run
    from prmh.viewer import serve as serve_page
    from prmh.viewer import write_page

    results = load_run(run, results_dir)
    record_dir = Path(results.record.get("results_dir") or ".") / "runs"
    path = write_page(results, out or record_dir / f"{results.record['run_id']}.html", limit)
    click.echo(f"wrote {path}")
    if serve:
        try:
            serve_page(path, port, lambda url: click.echo(f"serving {url} (Ctrl-C stops)"))
        except KeyboardInterrupt:
            pass
        except OSError as e:
            raise PrmhError(f"cannot serve on port {port}: {e.strerror}; try --port 0.") from None


@cli.command("plot")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--kind",
    required=True,
    help="scaling (accuracy vs budget), compute (accuracy vs tokens and PRM calls), "
    "reliability (from `prmh analyze calibration`), correlation, processbench.",
)
@out_option("The figure: .pdf, .svg or .png (300 dpi).", required=True)
@results_dir_option
def plot_command(runs: tuple[str, ...], kind: str, out: Path, results_dir: Path | None) -> None:
    """Draw a paper figure from one or more runs (ids, unique prefixes, "latest" or record
    paths); several runs share the axes."""
    from prmh.analysis.figures import figure
    from prmh.lookup import find_record
    from prmh.store import results_path

    records = [find_record(results_path(results_dir), run) for run in runs]
    click.echo(f"wrote {figure(kind, records, out)}")


@cli.command("merge")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--into",
    required=True,
    type=click.Path(file_okay=False),
    help="The results directory to merge into (created when missing).",
)
def merge_command(sources: tuple[str, ...], into: str) -> None:
    """Merge results directories (the shards of `prmh eval --shard I/N`, runs on other
    machines) into one: entries are unioned, run records copied; an entry stored with another
    value under the same key is reported and never overwritten. Then the unsharded `prmh eval`
    on the merged directory computes nothing and prints the whole table."""
    from prmh.masking import visible
    from prmh.merge import merge

    report = merge(list(sources), into)
    added = ", ".join(f"{n} {kind}" for kind, n in sorted(report["added"].items())) or "nothing"
    click.echo(
        f"merged {len(sources)} directories into {into}: added {added}; {report['present']} "
        f"entries were there already; {report['runs_copied']} run files copied"
    )
    if report["oversized"]:
        click.echo(
            f"left out {report['oversized']} entries larger than any prmh writes (64 MB, or keys "
            "over 1,024 characters): not prmh's",
            err=True,
        )
    conflicts = report["conflicts"]
    for c in conflicts[:10]:  # what a stranger's store holds: written out
        said = f"{c['kind']} {c['key'][:16]} differs (kept run {c['kept_run']}, not run "
        click.echo(visible(f"conflict: {said}{c['other_run']})"), err=True)
    for name in report["run_conflicts"][:10]:
        click.echo(visible(f"conflict: runs/{name} differs; kept the target's"), err=True)
    if conflicts or report["run_conflicts"]:
        total = len(conflicts) + len(report["run_conflicts"])
        click.echo(
            f"{total} conflicts: the same keys hold different values (a nondeterministic "
            "component, or different code); the target's values were kept.",
            err=True,
        )
        sys.exit(1)
