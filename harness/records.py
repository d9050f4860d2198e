"""Run records: one JSON file per run, enough to rebuild the run's table and to repeat it.

A record is written when a run starts (status "started") and rewritten when it ends
("success" or "error"), each time atomically (write a temporary file, then rename), so a reader
never sees half a record. A run killed before it could say so stays "started" until a later
run on the same results directory (or ``prmh show``) finds its process gone and marks it
"interrupted". Leaderboards are built from records alone.
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from prmh._version import __version__
from prmh.files import remove_orphans, write_atomic
from prmh.liveness import mark_interrupted
from prmh.masking import redact
from prmh.provenance import provenance

RECORD_SCHEMA_VERSION = 1
STATUSES = ("started", "success", "error", "interrupted")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class RunRecord:
    """The record of one run; ``save()`` after each change of status."""

    def __init__(self, runs_dir: Path, config: dict[str, Any], argv: list[str] | None = None):
        import prmh

        self.path = runs_dir / f"{new_run_id()}.json"
        remove_orphans(runs_dir)
        mark_interrupted(runs_dir)
        self.data: dict[str, Any] = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "run_id": self.path.stem,
            "status": "started",
            "started": time.time(),
            "finished": None,
            "argv": redact(argv if argv is not None else sys.argv[1:]),
            "config": redact(config),
            "prmh_version": __version__,
            **provenance(Path(prmh.__file__).resolve().parent),
            "owner": {"host": platform.node(), "pid": os.getpid()},
            "metrics": None,
            "error": None,
        }

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    def save(self) -> None:
        write_atomic(self.path, self.data)

    def finish(self, status: str, **fields: Any) -> None:
        assert status in STATUSES
        if "error" in fields:
            fields["error"] = redact(fields["error"])
        self.data.update(fields, status=status, finished=time.time())
        self.save()
