"""KV caches kept across calls, so that work a step-level search repeats every round is done once.

- ``PrefixCache`` (PRMs): recently scored solutions with their KV caches; a solution extending
  one (the next round) is read from where the shorter one's steps end. Entries are found by the
  token ids up to one of their step read positions (the new solution's second-to-last step, then
  the one before), so a recipe that appends a suffix after the last step, or whose last token
  merges with the next step's separator, still shares everything up to the read position.
  Those prefixes are keyed by a hash chained over the steps' token runs (``prefix_keys``), so
  indexing a solution costs its length once, not once per step.
- ``KeptPrefixes`` (the hf generator): samples that stopped at a step's end with their KV
  caches, found by the text the next round continues; it reads only the tokens after what they
  share.

Both keep entries least-recently-used first out, up to ``max_tokens`` tokens in all.
"""

from __future__ import annotations

import functools
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOOK_BACK = 2  # step read positions tried per solution, from its second-to-last step down
GROUP_SCAN = 256  # the most rows one shared prefix is read for
SHARED_LEAST = 32  # the fewest shared tokens that solutions scored together read once


@dataclass
class Entry:
    ids: tuple[int, ...]
    positions: tuple[int, ...]
    state: Any  # what the scorer keeps: KV caches, read values


class _ByTokens:
    """Entries kept least-recently-used first out, up to ``max_tokens`` tokens in all."""

    def __init__(self, max_tokens: int):
        self.max_tokens, self.tokens = max_tokens, 0
        self.entries: OrderedDict[Any, Any] = OrderedDict()

    def _keep(self, key: Any, value: Any, size: int) -> None:
        if key in self.entries or size > self.max_tokens:
            return
        self.entries[key] = value
        self.tokens += size
        while self.tokens > self.max_tokens:
            old_key, old = self.entries.popitem(last=False)
            self.tokens -= self._size(old)
            self._forget(old_key, old)

    def clear(self) -> None:
        """Forget every entry (a benchmark's runs start alike)."""
        self.entries.clear()
        self.tokens = 0

    def _size(self, value: Any) -> int:
        raise NotImplementedError

    def _forget(self, key: Any, value: Any) -> None:
        pass


class PrefixCache(_ByTokens):
    """A PRM scorer's recently scored solutions: token ids, read positions and its state."""

    def __init__(self, max_tokens: int):
        super().__init__(max_tokens)
        self.index: dict[tuple[int, int], tuple[int, ...]] = {}  # prefix key -> entry key

    def find(self, ids: Sequence[int], positions: Sequence[int]) -> tuple[Entry, int] | None:
        """The entry sharing the longest prefix up to one of this solution's earlier step
        reads, and how many tokens they share (at least up to that read)."""
        tried = sorted(set(positions[:-1]), reverse=True)[:LOOK_BACK]
        ids = tuple(ids[: tried[0] + 1]) if tried else ()
        keys = prefix_keys(ids, [p for p in positions if p <= tried[0]]) if tried else {}
        for p in tried:
            key = self.index.get(keys[p])
            entry = self.entries.get(key) if key is not None else None
            if entry is not None and entry.ids[: p + 1] == ids[: p + 1]:  # not a hash collision
                self.entries.move_to_end(key)
                return entry, p + 1
        return None

    def clear(self) -> None:
        super().clear()
        self.index.clear()

    def add(self, ids: Sequence[int], positions: Sequence[int], state: Any) -> None:
        key = tuple(ids)
        if key not in self.entries and len(key) <= self.max_tokens:
            self.index.update(dict.fromkeys(prefix_keys(key, positions).values(), key))
        self._keep(key, Entry(key, tuple(positions), state), len(key))

    def _size(self, value: Entry) -> int:
        return len(value.ids)

    def _forget(self, key: tuple[int, ...], value: Entry) -> None:
        for prefix in prefix_keys(key, value.positions).values():
            if self.index.get(prefix) is key:
                del self.index[prefix]


def prefix_keys(ids: tuple[int, ...], positions: Sequence[int]) -> dict[int, tuple[int, int]]:
    """A key for the tokens up to each read position p: (p + 1, a hash chained over the runs
    of tokens between consecutive positions). Two solutions' keys at p agree when their tokens
    up to p and their read positions below it do (a step search's solution and its extension);
    a finder checks the tokens on a hit. O(tokens), where keying by the prefixes themselves took
    O(steps x tokens) time and memory."""
    keys, chained, start = {}, 0, 0
    for p in sorted(set(positions)):
        chained = hash((chained, ids[start : p + 1]))
        keys[p], start = (p + 1, chained), p + 1
    return keys


class KeptPrefixes(_ByTokens):
    """The hf generator's samples that stopped at a request stop, by (prompt, text so far)."""

    def add(self, request: Any, generation: Any, kept: tuple[list[int], list]) -> None:
        """A sample that stopped at a request stop: its token ids (context and generated
        tokens whose KV it holds) and KV, under the text a continuation will start from."""
        self._keep((request.prompt, request.prefix + generation.text), kept, len(kept[0]))

    def _size(self, value: tuple[list[int], list]) -> int:
        return len(value[0])

    def find(self, request: Any, context: Sequence[int]) -> tuple[list, int] | None:
        """(KV, n): a kept sample whose text the request's prefix continues after one of its
        stop strings, and the first n tokens of ``context`` it holds (at least one is left)."""
        for stop in request.stop:
            key = (request.prompt, request.prefix[: -len(stop)]) if stop else None
            kept = self.entries.get(key) if request.prefix.endswith(stop) else None
            if kept is not None:
                self.entries.move_to_end(key)
                n = shared_prefix(kept[0], context)
                return (kept[1], n) if n > 0 else None
        return None


def shared_prefix(full: Sequence[int], variant: Sequence[int]) -> int:
    """How many leading tokens a variant shares with the full sequence, leaving it at least
    one token of its own to run."""
    n = 0
    for a, b in zip(full, variant, strict=False):
        if a != b:
            break
        n += 1
    return min(n, len(variant) - 1)


def layers_of(cache: Any) -> list[tuple[Any, Any]]:
    """A model's returned KV cache as (keys, values) per layer, [batch, heads, length, dim]."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))  # transformers 4.x


def row_of(layers: list[tuple[Any, Any]], row: int, length: int) -> list[tuple[Any, Any]]:
    """One row's first ``length`` positions, copied (so the batch's tensors can be freed)."""
    return [(k[row : row + 1, :, :length].clone(), v[row : row + 1, :, :length].clone())
            for k, v in layers]  # fmt: skip


def growing_cache(room: int, buffers: list[tuple[Any, Any]] | None = None, held: int = 0) -> Any:
    """A KV cache whose layers keep free positions after what they hold (up to ``room``, at
    most as many as they hold, so they never take more than twice what they need) and write
    new tokens there, where transformers' ``DynamicCache`` copies the whole cache into a new
    tensor at every forward pass (more than a third of a decoding step's time at 128 rows of
    200 tokens). Empty, or holding the first ``held`` positions of ``buffers`` (one (keys,
    values) pair per layer, [batch, heads, positions, dim], written after ``held``). For models
    whose layers all attend to every position; a plain ``DynamicCache`` where transformers
    builds its caches otherwise (before 5.x)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    grows = hasattr(cache, "layer_class_to_replicate") and isinstance(cache.layers, list)
    if grows:
        cache.layer_class_to_replicate = functools.partial(_growing_layer(), room)
    for i, (k, v) in enumerate(buffers or []):
        if grows:
            layer = cache.layer_class_to_replicate()
            layer.adopt(k, v, held)
            cache.layers.append(layer)
        else:
            cache.update(k[:, :, :held], v[:, :, :held], i)
    return cache


@functools.cache
def _growing_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """Keys and values are views of the first positions of larger buffers."""

        def __init__(self, room: int):
            super().__init__()
            self.room, self.buffers = room, None

        def update(self, keys: Any, values: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(keys, values)
            held = self.get_seq_length()
            need = held + keys.shape[-2]
            if not self._writable(need):
                shape = (*keys.shape[:2], need + min(self.room, need), keys.shape[-1])
                self.buffers = (keys.new_empty(shape), values.new_empty(shape))
                if held:
                    self.buffers[0][:, :, :held] = self.keys
                    self.buffers[1][:, :, :held] = self.values
            self.buffers[0][:, :, held:need] = keys
            self.buffers[1][:, :, held:need] = values
            self._view(need)
            return self.keys, self.values

        def _writable(self, need: int) -> bool:
            """The buffers still back ``keys`` (nothing replaced them) and have room."""
            b = self.buffers
            return (b is not None and need <= b[0].shape[-2] and self.keys.numel() > 0
                    and self.keys.data_ptr() == b[0].data_ptr()
                    and self.keys.shape[0] == b[0].shape[0])  # fmt: skip

        def adopt(self, keys: Any, values: Any, held: int) -> None:
            self.lazy_initialization(keys, values)
            self.buffers = (keys, values)
            self._view(held)

        def _view(self, length: int) -> None:
            self.keys, self.values = (b[:, :, :length] for b in self.buffers)

        def reorder_cache(self, beam_idx: Any) -> None:
            """The rows ``beam_idx`` picks, into new buffers with the same free room; only
            the positions held are copied (the room can be most of a buffer)."""
            held = self.get_seq_length()
            if held and self._writable(held):
                rows = beam_idx.to(self.buffers[0].device)
                self.buffers = tuple(_picked(b, rows, held) for b in self.buffers)
                self._view(held)
            else:
                super().reorder_cache(beam_idx)

    return GrowingLayer


def _picked(buffer: Any, rows: Any, held: int) -> Any:
    """A buffer shaped like ``buffer`` with its ``rows``, of which the first ``held``
    positions are copied (the rest is free room, left unwritten)."""
    import torch

    out = buffer.new_empty((len(rows), *buffer.shape[1:]))
    torch.index_select(buffer[:, :, :held], 0, rows, out=out[:, :, :held])
    return out


def left_padded(torch: Any, rows: list[tuple[list | None, int]], room: int = 0) -> Any:
    """One cache holding each row's first n positions of its KV (``rows``: (KV or None, n)),
    left-padded with zeros to the longest, copied once into buffers with ``room`` positions
    to grow into (``growing_cache``); a row without KV is all padding."""
    longest = max(n for _, n in rows)
    like = next(kv for kv, _ in rows if kv is not None)
    buffers = []
    for layer, pair in enumerate(like):
        shape = (len(rows), pair[0].shape[1], longest + room, pair[0].shape[-1])
        keys, values = (t.new_zeros(shape) for t in pair)
        for r, (kv, n) in enumerate(rows):
            if kv is not None and n:
                keys[r, :, longest - n : longest] = kv[layer][0][0, :, :n]
                values[r, :, longest - n : longest] = kv[layer][1][0, :, :n]
        buffers.append((keys, values))
    return growing_cache(room, buffers, longest)


def run_tails(
    torch: Any, model: Any, items: list[tuple[list, int, list[int]]], pad: int, device: Any
) -> tuple[Any, list[list[tuple[Any, Any]]]]:
    """One forward pass over several solutions' new tokens, each after its own cached prefix:
    ``items`` are (prefix KV, prefix length c, new token ids). The prefixes are left-padded to
    the longest and the new tokens right-padded, with explicit positions and an attention mask
    that hides both paddings. Returns the model's output (row i's new tokens at [i, :len]) and
    each row's KV over its prefix and new tokens, copied."""
    from prmh.plugins.hf_models import cache_keyword, cache_of

    longest = max(c for _, c, _ in items)
    width = max(len(t) for _, _, t in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), longest + width), dtype=torch.long)
    for r, (_, c, tail) in enumerate(items):
        ids[r, : len(tail)] = torch.tensor(tail)
        mask[r, longest - c : longest + len(tail)] = 1
    positions = torch.tensor([c for _, c, _ in items])[:, None] + torch.arange(width)[None]
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        **{cache_keyword(model): left_padded(torch, [(kv, c) for kv, c, _ in items], width)},
    )
    grown = layers_of(cache_of(out))
    rows = [
        [(k[r : r + 1, :, longest - c : longest + len(t)].clone(),
          v[r : r + 1, :, longest - c : longest + len(t)].clone()) for k, v in grown]
        for r, (_, c, t) in enumerate(items)
    ]  # fmt: skip
    return out, rows


def tail_tokens(scorer: Any, enc: Any) -> int | None:
    """The tokens a scorer with a prefix cache reads when the previous steps were scored just
    before: from the previous step's read position on (``rereads`` tokens earlier for a
    scorer that needs the logits before it)."""
    if getattr(scorer, "prefixes", None) is None or len(enc.positions) < 2:
        return None
    return len(enc.ids) - (enc.positions[-2] + 1) + getattr(scorer, "rereads", 0)


def shared_groups(rows: Sequence[Sequence[int]], least: int) -> list[tuple[list[int], int]]:
    """Rows that share a token prefix of at least ``least`` tokens (one problem's candidates
    share its prompt): groups of two or more as (row indices, n), chosen so that reading each
    group's first n tokens once saves the most tokens; every row keeps a token of its own."""
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    common = [shared_prefix(rows[a], rows[b]) for a, b in itertools.pairwise(order)]
    common = [min(c, len(rows[a]) - 1) for c, a in zip(common, order, strict=False)]
    # best[j]: the most tokens saved among the first j sorted rows, and where its last group starts
    best = [(0, 0)] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        best[j] = (best[j - 1][0], j - 1)
        n = None
        for i in range(j - 2, max(-1, j - 1 - GROUP_SCAN), -1):  # group order[i:j]
            n = common[i] if n is None else min(n, common[i])
            if n < least:
                break
            if best[i][0] + (j - i - 1) * n > best[j][0]:
                best[j] = (best[i][0] + (j - i - 1) * n, i)
    groups, j = [], len(order)
    while j > 0:
        i = best[j][1]
        if j - i > 1:
            groups.append(([order[k] for k in range(i, j)], min(common[i : j - 1])))
        j = i
    return groups[::-1]
