"""The results store: one SQLite file per results directory, keyed by content hashes.

Each entry (a generation, a PRM's step scores, a grade) is keyed by a hash of everything that
determines it: the component's identity (name, version, output-changing arguments), its inputs
and the seed; never device or batch size. A batch of entries is written in one transaction, so
a run killed at any moment loses at most the batch in flight and the file stays consistent.
Entries are never overwritten (but for provisional outcomes such as timed-out grades): every
row records the run that computed it. A damaged entry (not JSON, or the wrong shape) is
reported, deleted and computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import parse_json

SCHEMA_VERSION = 2  # 2: generations packed (prmh.packing); version 1 stores are migrated
DB_NAME = "store.sqlite"
RESULTS_DIR_ENV = "PRMH_RESULTS_DIR"
DEFAULT_RESULTS_DIR = "prmh-results"


def content_key(obj: Any) -> str:
    """A stable hash of JSON-able data: sorted keys, no white space."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def results_path(path: str | os.PathLike[str] | None) -> Path:
    """The results directory: ``path``, else ``PRMH_RESULTS_DIR``, else ./prmh-results."""
    return Path(path or os.environ.get(RESULTS_DIR_ENV) or DEFAULT_RESULTS_DIR)


def ensure_results_dir(path: str | os.PathLike[str] | None) -> Path:
    """Create the results directory (``results_path``) and its ``runs/``, or explain why it
    cannot be used."""
    root = results_path(path)
    try:
        (root / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrmhError(
            f"cannot create results directory {str(root)!r}: {e.strerror}. "
            "Choose another with --results-dir."
        ) from e
    if not os.access(root, os.W_OK) or not os.access(root / "runs", os.W_OK):
        raise PrmhError(
            f"results directory {str(root)!r} is not writable. Fix its permissions or choose "
            "another with --results-dir."
        )
    return root


class Store:
    """Get and put JSON values by (kind, key); kinds are free-form ("generation", "score"...)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.path = Path(root) / DB_NAME
        self.damaged: dict[str, int] = {}  # kind -> damaged entries found (and recomputed)
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS entries (kind TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, run_id TEXT, created REAL, PRIMARY KEY (kind, key))"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            version = self._version()
            if version < SCHEMA_VERSION:
                from prmh.packing import upgrade  # an older store's entries, rewritten

                version = upgrade(self.db, SCHEMA_VERSION)
        except sqlite3.DatabaseError as e:
            if _environmental(e):  # another process writing past the 60 s timeout, a full disk
                raise _unwritable(self.path, e) from e
            raise PrmhError(
                f"cannot open the store {str(self.path)!r}: {e}. If the file is not a prmh "
                "store, choose another --results-dir."
            ) from e
        if version != SCHEMA_VERSION:
            raise PrmhError(
                f"store {str(self.path)!r} has schema version {version}; this prmh reads "
                f"version {SCHEMA_VERSION}. Use a prmh release that matches, or a new "
                "--results-dir."
            )

    def _version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def get_many(
        self,
        kind: str,
        keys: Iterable[str],
        parse: Callable[[Any], Any] | None = None,
    ) -> dict[str, Any]:
        """The stored values of ``keys`` (read through ``parse`` when given). An entry that is
        not JSON, or that ``parse`` refuses (ValueError, TypeError, KeyError), is damaged: it
        is counted in ``damaged``, deleted, and missing from the answer, so it is computed
        again instead of stopping every later run."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        damaged: list[str] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT key, value FROM entries WHERE kind = ? AND key IN ({marks})",
                (kind, *chunk),
            )
            for k, v in rows.fetchall():
                try:
                    value = parse_json(v)
                    found[k] = parse(value) if parse is not None else value
                except (ValueError, TypeError, KeyError, AttributeError):
                    damaged.append(k)
        if damaged:
            self.damaged[kind] = self.damaged.get(kind, 0) + len(damaged)
            with self.transaction():
                self.db.executemany(
                    "DELETE FROM entries WHERE kind = ? AND key = ?", [(kind, k) for k in damaged]
                )
        return found

    def put_many(
        self,
        kind: str,
        values: Mapping[str, Any],
        run_id: str | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Write all values in one transaction; existing keys keep their first value unless
        ``replace`` (for an outcome that was provisional, such as a grade that timed out)."""
        now = time.time()
        rows = [
            (kind, k, json.dumps(v, separators=(",", ":")), run_id, now) for k, v in values.items()
        ]
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.transaction():
            self.db.executemany(f"{verb} INTO entries VALUES (?, ?, ?, ?, ?)", rows)

    def transaction(self) -> _Transaction:
        return _Transaction(self.db, self.path)

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM entries WHERE kind = ?", (kind,)).fetchone()[0]

    def close(self) -> None:
        self.db.close()


class _Transaction:
    """One write transaction; SQLite's own failures (a full disk, a store locked past the
    timeout) become one ``PrmhError`` naming the store, where they were tracebacks."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db, self.path = db, path

    def __enter__(self) -> None:
        self._execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: BaseException | None, _: Any) -> None:
        if exc_type is None:
            self._execute("COMMIT")
            return
        with contextlib.suppress(sqlite3.OperationalError):  # SQLite may have rolled back
            self.db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and _environmental(exc):
            raise _unwritable(self.path, exc) from exc

    def _execute(self, sql: str) -> None:
        try:
            self.db.execute(sql)
        except sqlite3.OperationalError as e:
            if _environmental(e):
                raise _unwritable(self.path, e) from e
            raise


UNWRITABLE = ("SQLITE_FULL", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_IOERR")


def _environmental(e: sqlite3.Error) -> bool:
    """A failure of the disk or of another process, not of prmh's SQL (those stay bugs)."""
    return getattr(e, "sqlite_errorname", "").startswith(UNWRITABLE)


def _unwritable(path: Path, e: sqlite3.Error) -> PrmhError:
    return PrmhError(
        f"the store {str(path)!r} cannot be written ({e}): free disk space, or stop the "
        "process that holds it; what was stored before is kept, and the same command resumes "
        "from it."
    )
