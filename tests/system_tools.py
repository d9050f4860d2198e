"""Tests that need a system program (Chromium, bubblewrap) skip without it, saying how to
install it, so the README's test command never installs system packages. CI installs them and
sets ``PRMH_REQUIRE_SYSTEM=1``, which turns such a skip into a failure: there they must run."""

from __future__ import annotations

import os

import pytest


def unavailable(why: str) -> None:
    """Skip the calling test (``why``: what is missing and how to install it), or fail it
    where ``PRMH_REQUIRE_SYSTEM=1``."""
    if os.environ.get("PRMH_REQUIRE_SYSTEM") == "1":
        pytest.fail(f"{why}; PRMH_REQUIRE_SYSTEM=1 requires it", pytrace=False)
    pytest.skip(why)
