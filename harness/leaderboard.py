"""Leaderboards: a board definition plus accepted run records, rebuilt from records alone.

A board lives in ``ROOT/NAME/``: ``board.toml`` says what counts (task and its version, grader
and its version, the searches and budgets shown, the column that ranks rows), ``records/``
holds the accepted run records, and ``build`` writes ``README.md``, ``index.html`` and
``board.json`` from them. Nothing in the outputs depends on when or where they were built, so
rebuilding from the same records gives byte-identical files.

A row is one PRM · aggregator · selector of one record. Rows are comparable by construction
(a board pins problems, seeds, task options and generator) and ranked honestly about noise
(``prmh.board_rules``): rows share a rank unless their intervals, or a paired test on the same
problems, separate them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prmh import record_schema
from prmh.board_file import Board, write_pins
from prmh.board_rules import PINNED, comparability, differences, rank
from prmh.board_sections import gather, reproduction_problems
from prmh.errors import PrmhError
from prmh.files import (
    parse_json,
    read_bounded,
    remove_orphans,
    strict_json,
    write_bytes_atomic,
    write_text_atomic,
)
from prmh.records import RECORD_SCHEMA_VERSION

PROVENANCE = ("run_id", "argv", "config", "prmh_version", "libraries", "git", "started", "finished")


def read_record(path: Path) -> tuple[dict[str, Any], bytes]:
    """A record and its bytes, read once (what was checked is what is copied)."""
    try:
        raw = read_bounded(Path(path))
        data = parse_json(raw)
    except FileNotFoundError:
        raise PrmhError(f"no run record at {str(path)!r}.") from None
    except (OSError, ValueError) as e:
        raise PrmhError(f"{str(path)!r} is not a readable JSON run record: {e}.") from None
    if not isinstance(data, dict):
        raise PrmhError(f"{str(path)!r} is not a run record.")
    return data, raw


def board_tables(board: Board, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's result tables for this board's task (any generator)."""
    return [
        t
        for t in (record.get("metrics") or {}).get("tables", [])
        if t.get("task", "").split(":")[0] == board.task
    ]


def code_identity(record: dict[str, Any]) -> str | None:
    """What names the code that ran: the git revision of a checkout, else the commit of a VCS
    install or the version of an install from an index, folder or archive (flagged)."""
    git = record.get("git") if isinstance(record.get("git"), dict) else {}
    if git.get("revision"):
        return str(git["revision"])
    install = record.get("install") if isinstance(record.get("install"), dict) else {}
    if install.get("commit"):
        return str(install["commit"])
    if install.get("version") and install.get("source") not in (None, "unknown", "editable"):
        return f"{install['version']} ({install['source']})"
    return None


def provenance_flag(record: dict[str, Any]) -> str:
    """What a reader should know about the code behind a row: nothing for a clean checkout."""
    git = record.get("git") if isinstance(record.get("git"), dict) else {}
    if git.get("revision"):
        return "" if git.get("dirty") is False else "dirty tree"
    return f"no git tree: prmh {code_identity(record) or 'unknown'}"


def pins(board: Board, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The board's pinned values, completed from the first of ``records`` where unset."""
    out = dict(board.pinned)
    if records and any(k not in out for k in PINNED):
        first = records[0]
        values = comparability(board_tables(board, first), first, board.task)
        out.update({k: v for k, v in values.items() if k not in out and v not in (None, [])})
    return out


def _record_problems(record: dict[str, Any]) -> list[str]:
    """What any record needs: a valid shape, this schema, success and full provenance; a
    calibration run, its results."""
    malformed = record_schema.problems(record)
    if malformed:
        return [f"malformed record: {p}" for p in malformed]
    problems = []
    if record.get("schema_version") != RECORD_SCHEMA_VERSION:
        problems.append(
            f"schema version {record.get('schema_version')!r} is not {RECORD_SCHEMA_VERSION}"
        )
    if record.get("status") != "success":
        problems.append(f"the run's status is {record.get('status')!r}, not 'success'")
    missing = [k for k in PROVENANCE if not record.get(k)]
    if not code_identity(record):
        missing.append("git revision or installed version")
    if missing:
        problems.append(f"incomplete provenance: no {', '.join(missing)}")
    calibration = (record.get("metrics") or {}).get("calibration")
    if (record.get("config") or {}).get("analysis") == "calibration" and not isinstance(
        calibration, list
    ):
        problems.append("a calibration run without calibration results")
    if (record.get("config") or {}).get("command") == "reproduce":
        problems += reproduction_problems(record)
    return problems


def check_record(
    board: Board,
    record: dict[str, Any],
    accepted: list[dict[str, Any]],
    pinned: dict[str, Any] | None = None,
) -> list[str]:
    """Why the record cannot join the board (empty when it can); also flags a dirty tree.
    ``pinned``: the board's pins completed from earlier records (``pins``)."""
    problems = _record_problems(record)
    config = record.get("config") or {}
    joins_a_section = config.get("analysis") == "calibration" or config.get("command") == (
        "reproduce"
    )
    if joins_a_section or any(p.startswith("malformed") for p in problems):
        return problems  # calibration and reproduce runs join their sections only
    tasks = [t for t in config.get("task", []) if t.get("name") == board.task]
    if not tasks:
        problems.append(f"it did not run task {board.task!r}")
    elif any(str(t.get("version")) != board.task_version for t in tasks):
        versions = sorted({str(t.get("version")) for t in tasks})
        problems.append(
            f"task {board.task} version {', '.join(versions)} is not the board's "
            f"{board.task_version}"
        )
    tables = board_tables(board, record)
    graders = {(t["grader"]["name"], str(t["grader"]["version"])) for t in tables}
    if tables and graders != {(board.grader, board.grader_version)}:
        problems.append(
            f"graded with {sorted(graders)}, not the board's {board.grader} {board.grader_version}"
        )
    if tasks and not any(
        c.get("search") in board.searches and c.get("budget") in board.budgets
        for t in tables
        for r in t["rows"]
        if r["kind"] == "prm"
        for c in r["cells"]
    ):
        problems.append("it has no result for the board's searches and budgets")
    if tables:
        values = comparability(tables, record, board.task)
        pinned = pins(board, [*accepted, record]) if pinned is None else pinned
        problems += differences(pinned, values, board.about)
    for other in accepted:
        if other.get("run_id") == record.get("run_id"):
            problems.append(f"run {record.get('run_id')} is already on the board")
        elif all(other.get(k) == record.get(k) for k in ("config", "metrics")):
            problems.append(f"it duplicates run {other.get('run_id')} already on the board")
    return problems


def accepted_records(board: Board) -> list[dict[str, Any]]:
    """The board's records; one that is not a valid record (edited by hand) stops the build
    with its name, before anything is written."""
    records = []
    for path in sorted(board.records_dir.glob("*.json")):
        record = read_record(path)[0]
        malformed = record_schema.problems(record)
        if malformed:
            raise PrmhError(f"{path} is not a valid run record: {'; '.join(malformed)}.")
        records.append(record)
    return records


def add_records(board: Board, paths: list[Path]) -> list[str]:
    """Accept records only if every one passes; otherwise change nothing. Returns run ids."""
    accepted = accepted_records(board)
    incoming = [(Path(p), *read_record(Path(p))) for p in paths]
    pinned = pins(board, accepted + [r for _, r, _ in incoming])
    reasons = []
    for path, record, _ in incoming:
        problems = check_record(board, record, accepted, pinned)
        if problems:
            reasons.append(f"{path}: " + "; ".join(problems))
        accepted.append(record)  # also catches the same run given twice
    if reasons:
        raise PrmhError("rejected, the board is unchanged:\n  " + "\n  ".join(reasons))
    for _, record, raw in incoming:
        write_bytes_atomic(board.records_dir / f"{record['run_id']}.json", raw)
    if pinned != board.pinned:
        write_pins(board, pinned)
    return [record["run_id"] for _, record, _ in incoming]


def rows(board: Board) -> list[dict[str, Any]]:
    """Every row of every accepted record, with its cells for the board's columns, ranked."""
    out = []
    for record in accepted_records(board):
        for table in board_tables(board, record):
            for row in table["rows"]:
                if row["kind"] != "prm":
                    continue
                cells = {
                    f"{c['search']}@{c['budget']}": c
                    for c in row["cells"]
                    if c["search"] in board.searches and c["budget"] in board.budgets
                }
                out.append(
                    {
                        "run_id": record["run_id"],
                        "generator": table["generator"],
                        "prm": row["prm"],
                        "agg": row["agg"],
                        "selector": row["selector"],
                        "problems": table["problems"],
                        "problem_ids": table.get("problem_ids"),
                        "seeds": table["seeds"],
                        "flag": provenance_flag(record),
                        "warnings": _warnings_for(board, table, row),
                        "prmh_version": record.get("prmh_version"),
                        "cells": cells,
                    }
                )
    key = f"{board.rank_by[0]}@{board.rank_by[1]}"
    ranked = [r for r in out if key in r["cells"]]
    rank(ranked, key)
    for r in out:  # what ranking needed stays in the records, not on the pages
        r.pop("problem_ids")
        for cell in r["cells"].values():
            cell.pop("per_problem", None)
            cell.pop("below_best", None)  # against its own run's best, not the board's
    ranked.sort(
        key=lambda r: (
            r["rank"],
            -r["cells"][key]["mean"],
            r["run_id"],
            r["prm"],
            r["agg"],
            r["selector"],
        )
    )
    unranked = sorted(
        (r for r in out if key not in r["cells"]),
        key=lambda r: (r["run_id"], r["prm"], r["agg"], r["selector"]),
    )
    for r in unranked:
        r["rank"] = None
    return ranked + unranked


def _warnings_for(board: Board, table: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """What ``prmh eval`` printed below the row's table about it: a search of the board run
    with the row's PRM (``beam-ias with P: ...``), or the row's splitter."""
    about = [f"{search} with {row['prm']}: " for search in board.searches]
    about.append(f"splitter {str(row.get('splitter', '')).partition(':')[0]} ")
    said = table.get("warnings")
    if not isinstance(said, list):
        return []
    return [w for w in said if isinstance(w, str) and w.startswith(tuple(about))]


def build(board: Board) -> list[Path]:
    """Write README.md, index.html and board.json from the accepted records."""
    from prmh.board_render import render_html, render_markdown

    table = rows(board)
    columns = [(s, b) for s in board.searches for b in board.budgets]
    data = {
        "board": {
            "name": board.name,
            "title": board.title,
            "task": board.task,
            "task_version": board.task_version,
            "grader": board.grader,
            "grader_version": board.grader_version,
            "searches": list(board.searches),
            "budgets": list(board.budgets),
            "rank_by": list(board.rank_by),
        },
        "rows": table,
        **gather(accepted_records(board)),
    }
    written = []
    for name, text in (
        ("board.json", strict_json(data, indent=1, sort_keys=True) + "\n"),  # nan: null
        ("README.md", render_markdown(data, columns)),
        ("index.html", render_html(data, columns)),
    ):
        write_text_atomic(board.path / name, text)
        written.append(board.path / name)
    remove_orphans(board.path)
    return written
