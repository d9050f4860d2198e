"""Credentials never reach a run record, a table or an error message: ``redact`` masks them in
``key=value`` text, in URLs (``scheme://user:KEY@host``) and in dicts keyed by such names."""

from __future__ import annotations

import re
from typing import Any

URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")  # scheme://user:key@
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
