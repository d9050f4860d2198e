"""Rule-based step splitters: on blank lines, on line breaks, or the whole text as one step.

Splitting drops empty steps and the separators' surrounding white space; ``join`` puts the
separator back, so ``split(join(split(text))) == split(text)``.
"""

from __future__ import annotations

import re

from prmh import hookimpl


class SeparatorSplitter:
    """Steps are the non-empty pieces between separators (a regular expression)."""

    def __init__(self, pattern: str, separator: str):
        self.pattern = re.compile(pattern)
        self.separator = separator

    def split(self, text: str) -> list[str]:
        return [s.strip() for s in self.pattern.split(text) if s.strip()]

    def join(self, steps: list[str]) -> str:
        return self.separator.join(steps)


class WholeSplitter:
    """The whole solution is one step."""

    def split(self, text: str) -> list[str]:
        return [text.strip()] if text.strip() else []

    def join(self, steps: list[str]) -> str:
        return "\n\n".join(steps)


def double_newline() -> SeparatorSplitter:
    return SeparatorSplitter(r"\n\s*\n", "\n\n")


def newline() -> SeparatorSplitter:
    return SeparatorSplitter(r"\n", "\n")


@hookimpl
def prmh_register_splitter(register):
    register("double-newline", double_newline, description="A step per paragraph (blank lines)")
    register("newline", newline, description="A step per line")
    register("whole", WholeSplitter, description="The whole solution as one step")
