"""KV caches kept across calls, so that work a step-level search repeats every round is done once.

- ``PrefixCache`` (PRMs): recently scored solutions with their KV caches; a solution extending
  one (the next round) is read from where the shorter one's steps end. Entries are found by the
  token ids up to one of their step read positions (the new solution's second-to-last step, then
  the one before), so a recipe that appends a suffix after the last step, or whose last token
  merges with the next step's separator, still shares everything up to the read position.
- ``KeptPrefixes`` (the hf generator): samples that stopped at a step's end with their KV
  caches, found by the text the next round continues; it reads only the tokens after what they
  share.

Both keep entries least-recently-used first out, up to ``max_tokens`` tokens in all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOOK_BACK = 2  # step read positions tried per solution, from its second-to-last step down


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

    def _size(self, value: Any) -> int:
        raise NotImplementedError

    def _forget(self, key: Any, value: Any) -> None:
        pass


class PrefixCache(_ByTokens):
    """A PRM scorer's recently scored solutions: token ids, read positions and its state."""

    def __init__(self, max_tokens: int):
        super().__init__(max_tokens)
        self.index: dict[tuple[int, ...], tuple[int, ...]] = {}  # ids up to a read -> entry key

    def find(self, ids: Sequence[int], positions: Sequence[int]) -> tuple[Entry, int] | None:
        """The entry sharing the longest prefix up to one of this solution's earlier step
        reads, and how many tokens they share (at least up to that read)."""
        for p in sorted(set(positions[:-1]), reverse=True)[:LOOK_BACK]:
            key = self.index.get(tuple(ids[: p + 1]))
            entry = self.entries.get(key) if key is not None else None
            if entry is not None:
                self.entries.move_to_end(key)
                return entry, p + 1
        return None

    def add(self, ids: Sequence[int], positions: Sequence[int], state: Any) -> None:
        key = tuple(ids)
        if key not in self.entries and len(key) <= self.max_tokens:
            for p in positions:
                self.index[key[: p + 1]] = key
        self._keep(key, Entry(key, tuple(positions), state), len(key))

    def _size(self, value: Entry) -> int:
        return len(value.ids)

    def _forget(self, key: tuple[int, ...], value: Entry) -> None:
        for p in value.positions:
            if self.index.get(key[: p + 1]) == key:
                del self.index[key[: p + 1]]


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


def as_cache(layers: list[tuple[Any, Any]], length: int) -> Any:
    """A fresh cache holding the first ``length`` positions (the stored tensors are never
    changed: the cache grows by concatenating into new ones)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (k, v) in enumerate(layers):
        cache.update(k[:, :, :length], v[:, :, :length], i)
    return cache


def left_padded(torch: Any, rows: list[tuple[list | None, int]]) -> Any:
    """One cache holding each row's first n positions of its KV (``rows``: (KV or None, n)),
    left-padded with zeros to the longest; a row without KV is all padding."""
    longest = max(n for _, n in rows)
    like = next(kv for kv, _ in rows if kv is not None)
    layers = []
    for layer, (k0, v0) in enumerate(like):
        keys, values = [], []
        for kv, n in rows:
            k, v = kv[layer] if kv is not None else (k0, v0)
            keys.append(torch.nn.functional.pad(k[:, :, :n], (0, 0, longest - n, 0)))
            values.append(torch.nn.functional.pad(v[:, :, :n], (0, 0, longest - n, 0)))
        layers.append((torch.cat(keys), torch.cat(values)))
    return as_cache(layers, longest)


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
        **{cache_keyword(model): left_padded(torch, [(kv, c) for kv, c, _ in items])},
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
