"""Step splitters: rule-based (blank lines, lines, ``Step k:``, fixed token counts, whole; lines
and blocks of code, indentation kept) and confidence-based (AdaptiveStep).

Rule-based splitting drops empty steps and the white space around separators; ``join`` puts a
separator back, so ``split(join(split(text))) == split(text)``. The confidence-based splitter
reads the generator's tokens and keeps the text exactly: ``"".join(steps) == text``.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Sequence
from typing import Any

from prmh import Generation, hookimpl
from prmh.errors import PrmhError


class SeparatorSplitter:
    """Steps are the non-empty pieces between separators (a regular expression)."""

    def __init__(self, pattern: str, separator: str):
        self.pattern = re.compile(pattern)
        self.separator = separator

    def split(self, text: str) -> list[str]:
        return [s.strip() for s in self.pattern.split(text) if s.strip()]

    def join(self, steps: list[str]) -> str:
        return self.separator.join(steps)


class CodeLinesSplitter:
    """A step per non-blank line of code, its indentation kept (trailing white space is not)."""

    separator = "\n"

    def split(self, text: str) -> list[str]:
        return [line.rstrip() for line in text.split("\n") if line.strip()]

    def join(self, steps: list[str]) -> str:
        return "\n".join(steps)


class CodeBlocksSplitter:
    """A step per block of code between blank lines, indentation kept."""

    separator = "\n\n"
    pattern = re.compile(r"\n[ \t]*\n")

    def split(self, text: str) -> list[str]:
        blocks = (re.sub(r"^(?:[ \t]*\n)+", "", b).rstrip() for b in self.pattern.split(text))
        return [b for b in blocks if b.strip()]

    def join(self, steps: list[str]) -> str:
        return "\n\n".join(steps)


class WholeSplitter:
    """The whole solution is one step."""

    def split(self, text: str) -> list[str]:
        return [text.strip()] if text.strip() else []

    def join(self, steps: list[str]) -> str:
        return "\n\n".join(steps)


class StepPrefixSplitter:
    """A step starts at each ``Step k:`` (the label stays with its step); text before the first
    label is a step of its own."""

    pattern = re.compile(r"(?=\bStep \d+\s*:)")

    def split(self, text: str) -> list[str]:
        return [s.strip() for s in self.pattern.split(text) if s.strip()]

    def join(self, steps: list[str]) -> str:
        return "\n".join(steps)


class FixedTokensSplitter:
    """Every ``size`` words (white-space separated) make a step."""

    def __init__(self, size: int = 32):
        if size < 1:
            raise PrmhError(f"fixed-tokens option size must be at least 1, got {size}.")
        self.size = size

    def split(self, text: str) -> list[str]:
        words = text.split()
        return [" ".join(words[i : i + self.size]) for i in range(0, len(words), self.size)]

    def join(self, steps: list[str]) -> str:
        return " ".join(steps)


def _prob(logprob: float) -> float:
    """A token's probability; a log-probability above 0 (or nan) from a server is read as 0,
    a probability of 1, instead of overflowing."""
    return math.exp(logprob) if logprob <= 0.0 else 1.0


class AdaptiveConfidenceSplitter:
    """AdaptiveStep: a step ends after each token whose sampled probability is at or below a
    threshold, the ``quantile`` (2%) of token probabilities over a set of sampled solutions
    (``fit``), unless ``threshold`` gives it. Needs the generator's tokens and log-probabilities.
    """

    def __init__(self, quantile: float = 0.02, threshold: float | None = None):
        if not 0.0 < quantile < 1.0:
            raise PrmhError(f"adaptive-confidence quantile must be in (0, 1), got {quantile}.")
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise PrmhError(f"adaptive-confidence threshold must be in (0, 1), got {threshold}.")
        self.quantile = quantile
        self.threshold = threshold

    def fit(self, generations: Sequence[Generation]) -> float:
        """Set the threshold from these samples' token probabilities (unless given)."""
        if self.threshold is None:
            probs = sorted(
                _prob(lp) for g in generations for lp in (self._checked(g).token_logprobs or ())
            )
            if not probs:
                raise PrmhError("adaptive-confidence has no token probabilities to fit.")
            self.threshold = probs[min(len(probs) - 1, int(self.quantile * len(probs)))]
        return self.threshold

    def split_generation(self, generation: Generation) -> list[str]:
        g = self._checked(generation)
        if self.threshold is None:
            self.fit([g])
        steps, current = [], ""
        for token, lp in zip(g.tokens or (), g.token_logprobs or (), strict=True):
            current += token
            if _prob(lp) <= self.threshold:
                steps.append(current)
                current = ""
        if current.strip():
            steps.append(current)
        elif current and steps:
            steps[-1] += current
        return steps

    def split(self, text: str) -> list[str]:
        raise PrmhError(
            "adaptive-confidence splits generations by token confidence; plain text has none. "
            "Use a generator that returns token log-probabilities."
        )

    def join(self, steps: list[str]) -> str:
        return "".join(steps)

    @staticmethod
    def _checked(generation: Generation) -> Generation:
        if generation.tokens is None or generation.token_logprobs is None:
            raise PrmhError(
                "adaptive-confidence needs each generated token and its log-probability; this "
                "generator returns none. Use another splitter or a generator that returns them."
            )
        return generation


class RandomSplitter:
    """AdaptiveStep's random baseline: as many steps as the ``reference`` splitter gives the
    same solution, ending after tokens drawn at random (seeded by ``seed`` and the solution's
    text, so a solution always splits the same way); only where the boundaries fall differs.
    Cuts fall between the generator's tokens when it returns them, else between words."""

    def __init__(self, reference: str = "adaptive-confidence", seed: int = 0):
        if reference not in REFERENCES:
            raise PrmhError(
                f"random splitter: reference must be one of {', '.join(REFERENCES)}, "
                f"not {reference!r}."
            )
        self.reference, self.seed = REFERENCES[reference](), seed

    def fit(self, generations: Sequence[Generation]) -> Any:
        """The reference's fit (adaptive-confidence's threshold), if it has one."""
        fit = getattr(self.reference, "fit", None)
        return fit(generations) if fit is not None else None

    def split_generation(self, generation: Generation) -> list[str]:
        reference = getattr(self.reference, "split_generation", None)
        count = len(reference(generation) if reference else self.reference.split(generation.text))
        tokens = generation.tokens
        if tokens is None or "".join(tokens) != generation.text:
            tokens = _words(generation.text)
        return self._cut(list(tokens), count, generation.text)

    def split(self, text: str) -> list[str]:
        return self._cut(_words(text), len(self.reference.split(text)), text)

    def join(self, steps: list[str]) -> str:
        return "".join(steps)

    def _cut(self, pieces: list[str], count: int, text: str) -> list[str]:
        if not pieces or not count:
            return []
        rng = random.Random(f"{self.seed}:{text}")
        cuts = sorted(rng.sample(range(1, len(pieces)), min(count, len(pieces)) - 1))
        bounds = [0, *cuts, len(pieces)]
        return ["".join(pieces[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def _words(text: str) -> list[str]:
    """The text as pieces that each end a word (white space kept with the word after it).
    The trailing white space is cut off first: the pattern tried at each of its positions in
    turn, a quadratic scan (a model's 100,000 closing newlines took minutes)."""
    body = text.rstrip()
    pieces = re.findall(r"\s*\S+", body)
    if pieces:
        pieces[-1] += text[len(body) :]
    return pieces or ([text] if text else [])


def double_newline() -> SeparatorSplitter:
    return SeparatorSplitter(r"\n\s*\n", "\n\n")


def newline() -> SeparatorSplitter:
    return SeparatorSplitter(r"\n", "\n")


def separator(at: str) -> SeparatorSplitter:
    """A step per occurrence of the string ``at`` (a step search then stops there too)."""
    if not isinstance(at, str) or not at.strip():
        raise PrmhError(
            f"the separator splitter needs a separator that is not blank, got {at!r}: "
            "e.g. --splitter 'separator:at=.'"
        )
    return SeparatorSplitter(re.escape(at), at)


REFERENCES = {
    "adaptive-confidence": AdaptiveConfidenceSplitter,
    "double-newline": double_newline,
    "newline": newline,
    "fixed-tokens": FixedTokensSplitter,
    "step-prefix": StepPrefixSplitter,
}


@hookimpl
def prmh_register_splitter(register):
    register("double-newline", double_newline, description="A step per paragraph (blank lines)")
    register("newline", newline, description="A step per line")
    register("separator", separator, description="A step per occurrence of the string `at`")
    register("whole", WholeSplitter, description="The whole solution as one step")
    register("code-lines", CodeLinesSplitter, description="A step per line of code, indented")
    register("code-blocks", CodeBlocksSplitter, description="A step per blank-line block of code")
    register("step-prefix", StepPrefixSplitter, description="A step per 'Step k:' label")
    register("fixed-tokens", FixedTokensSplitter, description="A step every `size` words")
    register(
        "adaptive-confidence",
        AdaptiveConfidenceSplitter,
        description="AdaptiveStep: a step ends at each low-confidence token (lowest 2%)",
    )
    register(
        "random",
        RandomSplitter,
        description="AdaptiveStep's baseline: the reference's step count, random boundaries",
    )
