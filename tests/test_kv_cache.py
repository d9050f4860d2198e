"""prmh's growing KV cache against transformers' own ``DynamicCache`` (the reference: the
cache ``generate()`` uses; huggingface/transformers, src/transformers/cache_utils.py,
``DynamicLayer.update`` and ``reorder_cache``, as released in 5.24.0, the version the suite
installs): the same operations leave the same keys and values."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import DynamicCache  # noqa: E402

from prmh.plugins.kv_cache import growing_cache  # noqa: E402


def _pair(rows: int, length: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(rows, 2, length, 8, generator=g) for _ in range(2))


@pytest.mark.parametrize("room", [0, 3, 40])
def test_reorder_then_grow_matches_dynamic_cache(room: int) -> None:
    """Held positions of buffers with free room, rows dropped and repeated (as a batch's
    first pass shares a context and later drops ended rows), then tokens appended: equal to
    transformers' cache fed the same, position for position."""
    keys, values = _pair(3, 10 + room, 0)
    held = 10
    ours = growing_cache(room, [(keys.clone(), values.clone())], held)
    reference = DynamicCache()
    reference.update(keys[:, :, :held], values[:, :, :held], 0)
    for step, rows in enumerate(([2, 0, 0, 1], [3, 1], [1, 1, 0])):
        index = torch.tensor(rows)
        ours.reorder_cache(index)
        reference.reorder_cache(index)
        new = _pair(len(rows), 1 + step, 10 + step)
        got = ours.update(*new, 0)
        want = reference.update(*new, 0)
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape
            assert torch.equal(a, b)
