"""The PRM scorers' prefix cache: solutions found by the tokens up to one of their step reads,
as when every such prefix was itself the index key (prmh's scheme before these prefixes were
hashed step by step; kept below as ``by_whole_prefixes``, the reference), in a step search's
rounds of extensions and siblings; a hash that matches different tokens is no hit; evicted
solutions leave the index."""

from __future__ import annotations

import random

from prmh.plugins.kv_cache import LOOK_BACK, PrefixCache, prefix_keys


def by_whole_prefixes(added, ids, positions):
    """The former lookup: each read position's whole token prefix was a key (the last solution
    added under it wins), tried from the second-to-last read down."""
    index = {}
    for old_ids, old_positions in added:
        index.update((tuple(old_ids[: p + 1]), tuple(old_ids)) for p in old_positions)
    for p in sorted(set(positions[:-1]), reverse=True)[:LOOK_BACK]:
        key = index.get(tuple(ids[: p + 1]))
        if key is not None:
            return key, p + 1
    return None


def rounds(rng, problems=6, width=3, depth=5):
    """A beam search's solutions: each round extends some of the last round's by one step
    (siblings share everything but their last step)."""
    beams = [([rng.randrange(8) for _ in range(rng.randint(3, 9))], []) for _ in range(problems)]
    for _ in range(depth):
        grown = []
        for ids, positions in beams:
            for _ in range(width):
                step = [rng.randrange(8) for _ in range(rng.randint(1, 6))]
                grown.append((ids + step, [*positions, len(ids) + len(step) - 1]))
        yield grown
        beams = rng.sample(grown, problems)


def test_step_search_rounds_find_what_whole_prefix_keys_found():
    rng, cache, added, found = random.Random(0), PrefixCache(10**6), [], 0
    for solutions in rounds(rng):
        for ids, positions in solutions:
            hit = cache.find(ids, positions)
            expected = by_whole_prefixes(added, ids, positions)
            assert (None if hit is None else (hit[0].ids, hit[1])) == expected
            found += hit is not None
        for ids, positions in solutions:
            cache.add(ids, positions, None)
            added.append((ids, positions))
    assert found > 50
    assert all(len(key) == 2 for key in cache.index)  # small keys, not token prefixes


def test_a_hash_that_matches_other_tokens_is_no_hit():
    cache = PrefixCache(1000)
    cache.add([1, 2, 3, 4, 5, 6], [2, 5], "state")
    other = [7, 8, 9, 4, 5, 6, 10]
    (key,) = cache.entries
    for prefix in prefix_keys(tuple(other), [2, 5, 6]).values():
        cache.index[prefix] = key  # as if the hashes collided
    assert cache.find(other, [2, 5, 6]) is None
    assert cache.find([1, 2, 3, 4, 5, 6, 10], [2, 5, 6])[1] == 6


def test_evicted_solutions_leave_the_index():
    cache = PrefixCache(12)
    for start in range(5):
        cache.add(list(range(start, start + 6)), [1, 3, 5], start)
    assert [e.state for e in cache.entries.values()] == [3, 4]
    assert len(cache.index) == 6 and set(cache.index.values()) == set(cache.entries)


def test_a_prefix_key_covers_every_token_before_it():
    """Two solutions whose last steps are the same tokens at the same place, after different
    earlier steps: each is found under its own prefix."""
    cache, first, second = PrefixCache(1000), [1, 2, 3, 5, 5], [9, 9, 9, 5, 5]
    cache.add(first, [2, 4], "first")
    cache.add(second, [2, 4], "second")
    for ids in (first, second):
        entry, shared = cache.find([*ids, 7], [2, 4, 5])
        assert entry.ids == tuple(ids) and shared == 5
