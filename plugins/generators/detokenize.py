"""Token ids to text as a sample grows, in time linear in its length.

Decoding the whole sequence after every new token (to find the new token's text and to look for
stop strings) costs O(n^2): 1.3 s per sample at 2,048 tokens. ``Detokenizer`` decodes only a
few tokens of context around each new one, the incremental detokenisation of vLLM and
text-generation-inference: the text a token adds is what decoding from the previous boundary
gives beyond the previous piece, and a token that ends inside a character (decoded as U+FFFD)
adds nothing until the next one completes it. ``Rows`` keeps what each row of the hf
generator's batch has decoded so far.
"""

from __future__ import annotations

import os
from typing import Any

from prmh.plugins.generators.common import first_stop

REPLACEMENT = "\ufffd"


class Decoding:
    """A tokenizer's decoding of short windows of ids, remembered in a bounded table: the rows
    of a batch decode the same few-token windows over and over (a decode call costs ~10 us)."""

    def __init__(self, tokenizer: Any, size: int = 1 << 16):
        self.tokenizer, self.size, self.seen = tokenizer, size, {}

    def __call__(self, ids: list[int]) -> str:
        key = tuple(ids)
        text = self.seen.get(key)
        if text is None:
            if len(self.seen) >= self.size:
                self.seen.clear()
            text = self.seen[key] = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text


class Detokenizer:
    """The pieces of text each pushed token adds; ``"".join(pieces)`` is the text so far.
    Rows of one batch share a ``Decoding`` (``decode``)."""

    def __init__(self, tokenizer: Any, decode: Decoding | None = None):
        self._decode = decode or Decoding(tokenizer)
        self.ids: list[int] = []
        self.pieces: list[str] = []
        self.start = 0  # decoding starts here: one piece of context before the new tokens
        self.done = 0  # tokens whose text is in ``pieces``

    def push(self, token: int) -> str:
        """Add a token; the text it adds (empty while it ends inside a character)."""
        self.ids.append(token)
        before = self._decode(self.ids[self.start : self.done])
        after = self._decode(self.ids[self.start :])
        piece = ""
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            piece = after[len(before) :]
            self.start, self.done = self.done, len(self.ids)
        self.pieces.append(piece)
        return piece

    def tail_stop(self, stops: tuple[str, ...], piece: str) -> str | None:
        """The earliest stop string that the last ``piece`` completes (it may begin in the
        text before), looking at that tail only; None when there is none."""
        if not piece or not stops:
            return None
        need = len(piece) + max(len(s) for s in stops) - 1
        tail, have = [], 0
        for p in reversed(self.pieces):
            if have >= need:
                break
            tail.append(p)
            have += len(p)
        text = "".join(reversed(tail))
        hit = first_stop(text, stops, max(0, len(text) - need))
        return None if hit is None else hit[1]

    def finish(self) -> list[str]:
        """The pieces, the last one holding any trailing incomplete character (U+FFFD, as
        decoding the whole sequence shows it)."""
        before = self._decode(self.ids[self.start : self.done])
        after = self._decode(self.ids[self.start :])
        if len(after) > len(before) and self.pieces:
            self.pieces[-1] += after[len(before) :]
            self.start, self.done = self.done, len(self.ids)
        return self.pieces


def token_pieces(tokenizer: Any, ids: list[int], text: Detokenizer | None = None) -> list[str]:
    """The text each token adds, such that the pieces join to the decoded text: incremental
    (``text``: a detokenizer already fed the first ids), checked against one whole decode,
    and recomputed exactly (quadratic) in the rare case a tokenizer's whole decode differs
    (say, spaces cleaned up across tokens)."""
    if text is None or text.ids != ids[: len(text.ids)]:
        text = Detokenizer(tokenizer)
    for token in ids[len(text.ids) :]:
        text.push(token)
    pieces = text.finish()
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    if "".join(pieces) == whole:
        return pieces
    return exact_pieces(lambda k: tokenizer.decode(ids[:k], skip_special_tokens=True), len(ids))


def exact_pieces(decode_prefix: Any, count: int) -> list[str]:
    """The pieces from decoding every prefix (``decode_prefix(k)``: the first k tokens); text
    that a later token rewrites is taken back from the pieces before it. O(count^2)."""
    pieces: list[str] = []
    previous = ""
    for k in range(1, count + 1):
        text = decode_prefix(k)
        common = len(os.path.commonprefix([previous, text]))  # noqa: RUF071 (characters)
        excess = len(previous) - common
        for j in range(len(pieces) - 1, -1, -1):
            if excess <= 0:
                break
            take = min(excess, len(pieces[j]))
            pieces[j] = pieces[j][: len(pieces[j]) - take]
            excess -= take
        pieces.append(text[common:])
        previous = text
    return pieces


class Rows:
    """What each row of a batch has decoded: token ids, their log-probabilities and
    alternatives, its text so far, how it ended and (at a step's end) its KV for reuse."""

    def __init__(self, tokenizer: Any, rows: int, decode: Decoding):
        self.texts = [Detokenizer(tokenizer, decode) for _ in range(rows)]
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.logprobs: list[list[float]] = [[] for _ in range(rows)]
        self.alternatives: list[list[list[tuple[int, float]]]] = [[] for _ in range(rows)]
        self.ended: list[tuple[bool, str | None] | None] = [None] * rows
        self.kept: list[tuple[list[int], list] | None] = [None] * rows

    def add(self, b: int, token: int, logprob: float, best: list[tuple[int, float]]) -> None:
        self.tokens[b].append(token)
        self.logprobs[b].append(logprob)
        self.alternatives[b].append(best)
