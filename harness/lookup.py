"""Finding a run's record from what a user types: a run id, a unique prefix of one, "latest"
or a record's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import read_json, write_atomic
from prmh.liveness import owner_gone
from prmh.records import RECORD_SCHEMA_VERSION


def _latest(records: list[Path]) -> list[Path]:
    """The most recently started of records sorted by id: ids name the second they were made,
    so among those of the last second the record's start time decides."""
    if not records:
        return []
    second = records[-1].stem.rsplit("-", 1)[0]
    same = [p for p in records if p.stem.rsplit("-", 1)[0] == second]

    def started(path: Path) -> float:
        try:
            return float(read_json(path).get("started") or 0.0)
        except (OSError, ValueError, AttributeError, TypeError):
            return 0.0

    return [max(same, key=started)]


def find_record(results_dir: Path, run: str) -> dict[str, Any]:
    """Load a record by run id (or a unique prefix of one), by path, or "latest"."""
    runs = results_dir / "runs"
    if not run.strip():  # every id starts with "": the one run, whichever it is
        raise PrmhError(
            "no run named: give a run id (or the start of one), 'latest' or a record's path."
        )
    candidate = Path(run)
    if candidate.suffix == ".json" and candidate.is_file():
        path = candidate
    else:
        # a pipe or device named *.json is no record: "latest" is the latest real one
        records = sorted(p for p in runs.glob("*.json") if p.is_file()) if runs.is_dir() else []
        if run == "latest":
            matches = _latest(records)
        else:
            matches = [p for p in records if p.stem.startswith(run)]
        if not matches:
            raise PrmhError(
                f"no run {run!r} in {str(runs)!r}. List the runs with `ls {runs}`, or pass a "
                "record's path or --results-dir."
            )
        if len(matches) > 1:
            names = ", ".join(p.stem for p in matches[:5])
            raise PrmhError(f"run {run!r} is ambiguous: {names}. Give more of the id.")
        path = matches[0]
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise PrmhError(f"cannot read run record {str(path)!r}: {e}") from None
    from prmh import record_schema

    malformed = record_schema.problems(data)
    if malformed:
        raise PrmhError(f"{str(path)!r} is not a valid run record: {'; '.join(malformed)}.")
    if data.get("schema_version") != RECORD_SCHEMA_VERSION:
        raise PrmhError(
            f"run record {str(path)!r} has schema version {data.get('schema_version')}; this "
            f"prmh reads version {RECORD_SCHEMA_VERSION}."
        )
    if owner_gone(data):
        data.update(status="interrupted", error="the process ended without finishing")
        write_atomic(path, data)
    return data
