"""The one exception users see: bad input, named with its way out.

Core code raises ``PrmhError``; the CLI prints its message and exits with status 2, no
traceback. Anything else escaping is a bug in prmh or a plugin.
"""

from __future__ import annotations


class PrmhError(Exception):
    """A problem with what the user asked for, said so that they can fix it."""
