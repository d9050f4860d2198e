"""Generations as the store keeps them: per-token log-probabilities as packed binary floats and
token boundaries as lengths, not JSON numbers and strings (2.5x smaller in all, and faster to
read back). New generations are made what the store gives back first (``as_stored``:
log-probabilities rounded to float32, token texts interned); packing itself is lossless
(float64 for values float32 cannot hold, as in a migrated store).

Version 1 stores held plain ``Generation.to_json()``; ``migrate`` rewrites them in one
transaction when such a store is first opened, and ``unpack_generation`` still reads both.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from prmh.files import parse_json
from prmh.types import Generation


def pack_floats(values: Sequence[float]) -> dict[str, str]:
    """``{"f4": base64}`` when float32 holds every value exactly, else ``{"f8": base64}``."""
    narrow = struct.pack(f"<{len(values)}f", *values)
    if list(struct.unpack(f"<{len(values)}f", narrow)) == list(values):
        return {"f4": base64.b64encode(narrow).decode()}
    return {"f8": base64.b64encode(struct.pack(f"<{len(values)}d", *values)).decode()}


FORMATS = {"f4": ("f", 4), "f8": ("d", 8)}


def unpack_floats(packed: dict[str, str]) -> tuple[float, ...]:
    """The values ``pack_floats`` packed; ValueError (or KeyError) for anything else."""
    ((code, data),) = packed.items()
    letter, size = FORMATS[code]
    raw = base64.b64decode(data, validate=True)
    if len(raw) % size:
        raise ValueError("packed floats of a partial width")
    return struct.unpack(f"<{len(raw) // size}{letter}", raw)


def as_stored(generation: Generation) -> Generation:
    """The generation as the store gives it back: its log-probabilities rounded to float32 (as
    a model computes them; 1e-7 relative), so that they pack into 4 bytes each and what a run
    computes is what a later run reads, to the last bit; and its token texts interned, as
    ``unpack_generation`` reads them: one string for each piece of the vocabulary however
    often it recurs (13% of a step search's memory at N=64, ``benchmarks/memory.py``)."""
    changes: dict[str, Any] = {}
    if generation.tokens:
        changes["tokens"] = tuple(map(_interned, generation.tokens))
    values = generation.token_logprobs
    if values:
        rounded = struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values))
        if rounded != tuple(values):
            changes["token_logprobs"] = rounded
    return replace(generation, **changes) if changes else generation


def _interned(piece: Any) -> Any:
    return sys.intern(piece) if type(piece) is str else piece  # a subclass cannot be


def pack_generation(generation: Generation) -> dict[str, Any]:
    """What the store keeps of a generation."""
    value = generation.to_json()
    if generation.token_logprobs is not None:
        value["token_logprobs"] = pack_floats(generation.token_logprobs)
    if generation.tokens is not None and "".join(generation.tokens) == generation.text:
        del value["tokens"]
        value["token_lengths"] = [len(t) for t in generation.tokens]
    return value


def unpack_generation(value: dict[str, Any]) -> Generation:
    """A stored generation, packed or (version 1) plain."""
    value = dict(value)
    if isinstance(value.get("token_logprobs"), dict):
        value["token_logprobs"] = unpack_floats(value["token_logprobs"])
    lengths = value.pop("token_lengths", None)
    if lengths is not None:
        text, tokens, at = value["text"], [], 0
        for n in lengths:
            tokens.append(sys.intern(text[at : at + n]))
            at += n
        if at != len(text):
            raise ValueError("token lengths do not cover the text")
        value["tokens"] = tokens
    return Generation.from_json(value)


def upgrade(db: sqlite3.Connection, current: int) -> int:
    """Rewrite an older store's entries in the ``current`` format, all in one transaction
    (another process that opened it first may have done it already); the version now."""
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(version)
        if version < current:
            version = migrate(db, version)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version


def migrate(db: sqlite3.Connection, version: int) -> int:
    """Bring a store's entries from ``version`` to the current one (inside the caller's
    transaction); returns the new version."""
    if version == 1:
        rows = db.execute("SELECT key, value FROM entries WHERE kind = 'generation'").fetchall()
        updates = []
        for key, text in rows:
            try:
                packed = pack_generation(unpack_generation(parse_json(text)))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # damaged: left for the reader to report and recompute
            updates.append((json.dumps(packed, separators=(",", ":")), key))
        db.executemany(
            "UPDATE entries SET value = ? WHERE kind = 'generation' AND key = ?", updates
        )
        version = 2
    return version
