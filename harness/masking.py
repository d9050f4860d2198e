"""Credentials never reach a run record, a table or an error message: ``redact`` masks them in
``key=value`` text, in URLs (``scheme://user:KEY@host``) and in dicts keyed by such names. And
text from a record, a model or a stranger's file never reaches a terminal as control codes:
``visible`` writes them out."""

from __future__ import annotations

import re
from typing import Any

# scheme://user:key@; a scheme's length is bounded, or "a.a.a..." (each "a" a scheme's
# possible start, each read to the end) was a quadratic scan: 40 KB 0.4 s, 4 MB an hour
URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]{0,63}://)[^/\s@]+@")
SECRET = re.compile(r"(api_key|token|secret|password)(\s*[=:]\s*)([^,\s]+)", re.I)


def redact(value: Any) -> Any:
    """Options that look like credentials never reach a run record: in ``key=value`` text,
    and in dicts keyed by such names."""
    if isinstance(value, dict):
        return {k: "***" if SECRET.match(f"{k}=x") and v else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        value = URL_CREDENTIALS.sub(r"\1***@", value)
        return SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", value)
    return value


# C0 but newline and tab, DEL, C1, and the bidirectional overrides that reorder what is shown
_CONTROL = [*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0x200E, 0x200F,
            *range(0x202A, 0x202F), *range(0x2066, 0x206A)]  # fmt: skip
_SHOWN = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _CONTROL}


def visible(text: str) -> str:
    """``text`` with control codes written out (``\\x1b``, ``\\u202e``): an escape sequence
    in a record or a model's answer (``\\x1b]0;title\\x07``, ``\\x1b[2J``) would retitle,
    recolour or clear the terminal that prints it."""
    return text.translate(_SHOWN)
