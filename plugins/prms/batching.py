"""Solutions as a model reads them (``Encoded``) and how they are batched: sorted by length,
right-padded, under a cap on padded tokens and on the share of padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    """A solution as the model reads it: token ids, one read position per step, and the first
    token of the solution (read by likelihood-based PRMs)."""

    ids: list[int]
    positions: list[int]
    start: int = 0


PADDING = 0.05  # the share of a batch's tokens that may be padding once it is big enough
FULL_ENOUGH = 2048  # padded tokens above which a batch stops taking longer solutions


def length_batches(
    lengths: Sequence[int], max_tokens: int, cached: Sequence[int] | None = None
) -> list[list[int]]:
    """Indices sorted by length, cut into batches whose padded size stays under ``max_tokens``
    (a longer item goes alone) and, once a batch holds ``FULL_ENOUGH`` tokens, whose padding
    stays under ``PADDING`` (padding costs compute, and a padded batch needs an attention mask;
    benchmarks/prm_scoring.py). ``cached``: tokens each item reads from a KV cache before its
    own, which count toward the size (memory) but are not computed again."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    real = before = 0
    for i in order:
        ahead = cached[i] if cached else 0
        if batches:
            padded = lengths[i] * (len(batches[-1]) + 1)
            wasted = 1 - (real + lengths[i]) / padded
            size = (lengths[i] + max(before, ahead)) * (len(batches[-1]) + 1)
            if size <= max_tokens and (padded <= FULL_ENOUGH or wasted <= PADDING):
                batches[-1].append(i)
                real, before = real + lengths[i], max(before, ahead)
                continue
        batches.append([i])
        real, before = lengths[i], ahead
    return batches


def pack(torch: Any, rows: Sequence[Encoded], pad: int, device: Any) -> tuple[Any, ...]:
    """Right-padded ids and mask, each row's start, and step positions (padded with 0)."""
    width = max(len(e.ids) for e in rows)
    steps = max(len(e.positions) for e in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    positions = torch.zeros((len(rows), steps), dtype=torch.long)
    for r, e in enumerate(rows):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        mask[r, : len(e.ids)] = 1
        positions[r, : len(e.positions)] = torch.tensor(e.positions)
    starts = torch.tensor([e.start for e in rows])
    return ids.to(device), mask.to(device), starts.to(device), positions.to(device)
