"""Atomic file writes: a reader, or a kill at any moment, sees the old file or the new one,
never a part; the clean-up of temporary files a killed write left behind; and JSON or TOML
that may come from a stranger, parsed with bounds."""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``write_bytes_atomic``)."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader, or a kill at any moment, sees the old file
    or the new one, never a part (a temporary file in the same folder, then a rename). A
    device or pipe (``/dev/stdout``, ``/dev/null``) is written into: renaming over it replaced
    the device node itself where /dev is writable (as root, in a container). A write that
    fails (a full disk) is a ``PrmhError`` naming the file."""
    try:
        if is_special(path):
            with open(path, "wb") as f:
                f.write(data)
        else:
            _replace(path, data)
    except OSError as e:  # a full disk, a folder made read-only meanwhile
        raise PrmhError(f"cannot write {str(path)!r}: {e.strerror or e}.") from e


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = _new_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_special(path: Path) -> bool:
    """Whether ``path`` (through links) is a device, pipe or socket: written into, never
    replaced."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


MAX_JSON_FILE_BYTES = 64 << 20  # a run record is ~100 KB for a large matrix


def strict_json(value: Any, **options: Any) -> str:
    """``json.dumps`` as strict JSON: a nan or infinite number (a plugin aggregator's score) is
    null, where Python writes ``NaN``, which ``JSON.parse``, jq and most readers refuse."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:  # rare: walk the value only then
        return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, where nesting too deep for Python's decoder (``[[[...]]]`` 100,000 deep
    raised RecursionError) is the ``json.JSONDecodeError`` callers already handle."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``, where nesting too deep for its parser (``x = [[[...]]]`` 5,000 deep
    raised RecursionError) is the ``TOMLDecodeError`` callers already handle."""
    import tomllib

    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("nested too deeply") from None


def read_json(path: Path, limit: int = MAX_JSON_FILE_BYTES) -> Any:
    """A JSON file that may come from a stranger (a board's records, a shared run): a regular
    file, not a device or pipe that never ends (a symlink to /dev/zero), of at most ``limit``
    bytes. ``ValueError`` says what is wrong; reading raises ``OSError``."""
    return parse_json(read_bounded(path, limit))


def open_regular(path: Path) -> Any:
    """``path`` opened for binary reading if it is a regular file; ``ValueError`` for a pipe
    (whose open would wait for a writer for ever) or a device (``/dev/zero`` never ends)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise ValueError("not a regular file")
    return f


def read_bounded(path: Path, limit: int = MAX_JSON_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (``read_json``), read once: a
    file that grows while it is read is refused too."""
    with open_regular(path) as f:
        info = os.fstat(f.fileno())
        data = f.read(limit + 1) if info.st_size <= limit else b""
    if info.st_size > limit or len(data) > limit:
        raise ValueError(
            f"{max(info.st_size, len(data)):,} bytes, more than the {limit:,} it may have"
        )
    return data


def _new_file(beside: Path) -> tuple[int, Path]:
    """A new hidden file next to ``beside``, opened for writing with the mode open() gives
    (mkstemp's would be 0600; its import costs a cached re-run 2 ms)."""
    for _ in range(100):
        tmp = beside.with_name(f".{beside.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {str(beside)!r}")


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON, its first two levels one key per line (readable, diffable), deeper
    values on their key's line: json's C encoder writes those, its indenting one is Python."""
    write_text_atomic(path, _outline(data, 2))


def _outline(value: Any, levels: int, pad: str = "") -> str:
    if levels == 0 or not isinstance(value, dict) or not value:
        return json.dumps(value, sort_keys=True)
    inner = pad + " "
    items = (
        f"{inner}{json.dumps(k)}: {_outline(value[k], levels - 1, inner)}" for k in sorted(value)
    )
    return "{\n" + ",\n".join(items) + f"\n{pad}}}"


ORPHAN_AGE = 60.0  # seconds: a write takes milliseconds; an older temporary file was orphaned


def remove_orphans(folder: Path) -> int:
    """Delete temporary files that a killed write left in ``folder``; returns how many."""
    removed = 0
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > ORPHAN_AGE:
                tmp.unlink()
                removed += 1
        except OSError:
            pass
    return removed
