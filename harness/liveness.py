"""Which runs are still going. A record stays "started" when its process is killed; the
record names its owner (host and pid), and a run whose owner on this machine has ended (or
whose pid now belongs to a newer process) is marked "interrupted" by the next command that
opens the results directory."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from prmh.files import open_regular, parse_json, read_bounded, write_atomic


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None if there is none. Linux
    reads /proc; elsewhere a live pid counts as started at 0 (so it is never taken as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0.0
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


def owner_gone(record: dict[str, Any]) -> bool:
    """Whether a "started" record's process on this machine has ended (or its pid now belongs
    to a process that started after the run)."""
    owner = record.get("owner") if isinstance(record.get("owner"), dict) else {}
    if record.get("status") != "started" or owner.get("host") != platform.node():
        return False
    pid, started = owner.get("pid"), record.get("started")
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return False
    began = process_started(pid)
    return began is None or began > started + 1.0


def mark_interrupted(runs_dir: Path) -> list[str]:
    """Mark the "started" records of dead processes "interrupted"; returns their run ids."""
    marked = []
    for path in sorted(runs_dir.glob("*.json")):
        try:
            text = _started_text(path)
            record = parse_json(text) if text is not None else None
        except (OSError, ValueError):  # unreadable, not regular, too large, not JSON
            continue
        if isinstance(record, dict) and owner_gone(record):
            record.update(status="interrupted", error="the process ended without finishing")
            write_atomic(path, record)
            marked.append(path.stem)
    return marked


TAIL = 256  # bytes: a record's last key, "status", is in them


def _started_text(path: Path) -> str | None:
    """A record's text if it may be a "started" one, else None. prmh writes ``status`` as a
    record's last top-level line, so its last bytes tell (a finished run's 100 KB of tables
    are not read: every command looks at every record); a file laid out otherwise is read."""
    with open_regular(path) as f:  # a pipe or device in runs/ is no record (and never ends)
        f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL))
        tail = f.read()
    if b'\n "status": ' in tail and b'\n "status": "started"' not in tail:
        return None
    text = read_bounded(path).decode()
    return text if '"status": "started"' in text else None
