"""Merging results directories (``prmh merge SRC... --into DIR``): shards of one evaluation run
apart (``prmh eval --shard I/N``), on other machines or by other people, added up.

Entries are content-addressed, so merging is a union: an entry missing from the target is
copied with the run that computed it; one present with the same value (the seconds it took
aside) is left alone; one present with a different value is a conflict, reported and never
overwritten (but for which run finished a plan, ``prmh.reuse``: any of them will do, the
target's is kept). Run records and their sample files are copied when the target lacks them.
Sources are opened read-only; an older store version is upgraded in a temporary copy.
"""

from __future__ import annotations

import filecmp
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import MAX_JSON_FILE_BYTES, parse_json
from prmh.store import DB_NAME, SCHEMA_VERSION, Store, ensure_results_dir

CHUNK = 2000


def _source(directory: Path, scratch: Path) -> sqlite3.Connection:
    """The store of ``directory``, read-only; an older store version is upgraded in a copy
    (under ``scratch``), never in place."""
    path = directory / DB_NAME
    if not path.is_file():
        raise PrmhError(
            f"{str(directory)!r} holds no prmh store ({DB_NAME}); give results directories "
            "that prmh eval wrote."
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise PrmhError(f"cannot read the store {str(path)!r}: {e}.") from e
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        db.close()
        raise PrmhError(
            f"the store {str(path)!r} has version {version}, newer than this prmh's "
            f"{SCHEMA_VERSION}; merge with the prmh release that wrote it."
        )
    if version < SCHEMA_VERSION:
        copy = scratch / f"{len(list(scratch.iterdir()))}"
        copy.mkdir()
        db.execute("VACUUM INTO ?", (str(copy / DB_NAME),))  # a consistent copy, WAL included
        db.close()
        Store(copy).close()  # upgraded there
        db = sqlite3.connect(f"file:{copy / DB_NAME}?mode=ro", uri=True)
    return db


def _merge_entries(source: sqlite3.Connection, target: Store, report: dict[str, Any]) -> None:
    bounded = "length(CAST(value AS BLOB)) <= ? AND length(key) <= 1024 AND length(kind) <= 64"
    limit = (MAX_JSON_FILE_BYTES,)
    report["oversized"] += source.execute(
        f"SELECT COUNT(*) FROM entries WHERE NOT ({bounded})", limit
    ).fetchone()[0]
    rows = source.execute(
        f"SELECT kind, key, value, run_id, created FROM entries WHERE {bounded}", limit
    )  # no prmh entry comes near; a stranger's store may hold one as large as the disk
    while chunk := rows.fetchmany(CHUNK):
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for kind in {r[0] for r in chunk}:
            keys = [r[1] for r in chunk if r[0] == kind]
            marks = ",".join("?" * len(keys))
            for key, value, run_id in target.db.execute(
                f"SELECT key, value, run_id FROM entries WHERE kind = ? AND key IN ({marks})",
                (kind, *keys),
            ):
                found[(kind, key)] = (value, run_id)
        new = [r for r in chunk if (r[0], r[1]) not in found]
        for kind, key, value, run_id, _ in chunk:
            there = found.get((kind, key))
            if there is not None and kind != "evaluation" and not _same(there[0], value):
                report["conflicts"].append(
                    {"kind": kind, "key": key, "kept_run": there[1], "other_run": run_id}
                )
        with target.transaction():
            target.db.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?)", new)
        for kind, *_ in new:
            report["added"][kind] = report["added"].get(kind, 0) + 1
        report["present"] += len(chunk) - len(new)


def _same(a: str, b: str) -> bool:
    """Equal values, but for the seconds an entry measured (runs differ in those)."""
    if a == b:
        return True
    try:
        x, y = parse_json(a), parse_json(b)
    except ValueError:
        return False
    if isinstance(x, dict) and isinstance(y, dict):
        x.pop("seconds", None), y.pop("seconds", None)
    return x == y


def _merge_runs(source: Path, target: Path, report: dict[str, Any]) -> None:
    runs = source / "runs"
    for file in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not file.is_file() or file.is_symlink():
            continue
        destination = target / "runs" / file.name
        if not destination.exists():
            partial = destination.with_name(destination.name + ".partial")
            shutil.copyfile(file, partial)
            partial.replace(destination)  # killed mid-copy: no half record under the name
            report["runs_copied"] += 1
        elif not filecmp.cmp(destination, file, shallow=False):  # in chunks: any size
            report["run_conflicts"].append(file.name)


def _apart(sources: list[str], into: str) -> None:
    """Sources are only read: the target may be neither one of them nor inside one (``--into
    r1/runs`` wrote a store and a runs folder into r1's runs), checked before it is made."""
    target = Path(into).resolve()
    for name in sources:
        source = Path(name).resolve()
        if target == source:
            raise PrmhError(f"{name!r} is the target itself; merge other directories into it.")
        if source in target.parents:
            raise PrmhError(
                f"the target {into!r} is inside the source {name!r}, which merging only "
                "reads; give a target outside it."
            )


def merge(sources: list[str], into: str) -> dict[str, Any]:
    """Merge the results directories ``sources`` into ``into`` (created when missing);
    returns what was added, what was there already and every conflict."""
    _apart(sources, into)
    target_root = ensure_results_dir(into)
    report: dict[str, Any] = {
        "added": {}, "present": 0, "conflicts": [], "runs_copied": 0, "run_conflicts": [],
        "oversized": 0,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        connections = [(Path(name), _source(Path(name), Path(scratch))) for name in sources]
        target = Store(target_root)
        try:
            for directory, db in connections:
                try:
                    _merge_entries(db, target, report)
                finally:
                    db.close()
                _merge_runs(directory, target_root, report)
        finally:
            target.close()
    return report
