"""Generations packed in the store (``prmh.packing``) and the migration of version 1 stores.

Version 1 (prmh before this change) stored ``Generation.to_json()`` as JSON text; a version 1
store is made here by writing exactly that, so the migration is checked against the format
older releases wrote, end to end through ``prmh eval``.
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from prmh.packing import (
    as_stored,
    pack_floats,
    pack_generation,
    unpack_floats,
    unpack_generation,
)
from prmh.store import SCHEMA_VERSION, Store
from prmh.types import Generation


def _generation(**fields) -> Generation:
    base = dict(text="Ben has 3.\n\nThe answer is 3.", finished=True, num_tokens=9)
    return Generation(**{**base, **fields})


def test_float32_values_pack_as_float32_and_others_losslessly():
    import struct

    float32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in (-0.1, -2.5, -13.7, 0.0)]
    assert set(pack_floats(float32)) == {"f4"}
    assert unpack_floats(pack_floats(float32)) == tuple(float32)
    doubles = [-0.1, -1e-12, -math.inf, -123.456789012345]
    assert set(pack_floats(doubles)) == {"f8"}
    assert unpack_floats(pack_floats(doubles)) == tuple(doubles)
    assert unpack_floats(pack_floats([])) == ()


@pytest.mark.parametrize(
    "generation",
    [
        _generation(),
        _generation(
            tokens=("Ben", " has", " 3", ".", "\n\n", "The", " answer", " is", " 3."),
            token_logprobs=(-0.5, -0.25, -1.0, -0.125, -2.0, -0.5, -0.75, -0.0625, -3.0),
        ),
        _generation(tokens=("not", "the text"), token_logprobs=(-0.1, -0.2)),  # misaligned
        _generation(finished=False, stop="\n\n", token_logprobs=(-0.3,), seconds=0.25),
    ],
)
def test_a_packed_generation_reads_back_equal(generation):
    packed = json.loads(json.dumps(pack_generation(generation)))
    back = unpack_generation(packed)
    assert back == generation and back.seconds == generation.seconds
    assert unpack_generation(json.loads(json.dumps(generation.to_json()))) == generation  # v1


def test_packing_makes_a_sampled_generation_much_smaller():
    import random

    rng = random.Random(0)
    tokens = tuple(
        rng.choice(["Ben", " has", " 3", ".", "\n\n", " gives", " 12"]) for _ in range(80)
    )
    logprobs = tuple(float(f"{-rng.random() * 3:.7f}") for _ in tokens)  # as a server gives them
    generation = _generation(text="".join(tokens), tokens=tokens, token_logprobs=logprobs)
    plain_logprobs = generation
    generation = as_stored(generation)  # as the workspace stores a new generation
    assert generation.token_logprobs == pytest.approx(plain_logprobs.token_logprobs, rel=1e-7)
    plain = len(json.dumps(generation.to_json(), separators=(",", ":")))
    packed = len(json.dumps(pack_generation(generation), separators=(",", ":")))
    assert packed * 1.8 < plain


@pytest.mark.parametrize(
    "damage",
    [
        {"token_logprobs": {"f4": "not base64!"}},
        {"token_logprobs": {"f4": "AAA="}},  # 2 bytes: half a float
        {"token_logprobs": {"f2": ""}},
        {"token_lengths": [3, 400]},
    ],
)
def test_a_damaged_packed_entry_is_refused(damage):
    with pytest.raises((ValueError, KeyError)):
        unpack_generation({**pack_generation(_generation(token_logprobs=(-1.0,))), **damage})


def _to_version_1(results_dir) -> int:
    """Rewrite a store as prmh wrote it before packing: plain ``to_json`` generations."""
    db = sqlite3.connect(results_dir / "store.sqlite")
    rows = db.execute("SELECT key, value FROM entries WHERE kind = 'generation'").fetchall()
    for key, value in rows:
        plain = unpack_generation(json.loads(value)).to_json()
        db.execute(
            "UPDATE entries SET value = ? WHERE kind = 'generation' AND key = ?",
            (json.dumps(plain, separators=(",", ":")), key),
        )
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    return len(rows)


def test_a_version_1_store_is_migrated_and_nothing_is_computed_again(cli):
    args = ["eval", "--world", "sim", "--limit", "8", "-n", "4", "--json"]
    first = json.loads(cli(*args).output)
    stored = _to_version_1(cli.results_dir)
    again = json.loads(cli(*args).output)
    assert again["metrics"]["cache"]["computed"].get("generation", 0) == 0
    assert again["metrics"]["cache"]["from_store"]["generation"] >= stored > 0
    for one, two in zip(first["metrics"]["tables"], again["metrics"]["tables"], strict=True):
        for row_one, row_two in zip(one["rows"], two["rows"], strict=True):
            for a, b in zip(row_one["cells"], row_two["cells"], strict=True):
                assert {k: v for k, v in a.items() if k != "compute"} == {
                    k: v for k, v in b.items() if k != "compute"
                }
    store = Store(cli.results_dir)
    assert store._version() == SCHEMA_VERSION
    (value,) = store.db.execute("SELECT value FROM entries WHERE kind = 'generation'").fetchmany(1)[
        0
    ]
    assert isinstance(json.loads(value)["token_logprobs"], dict)  # packed now


def test_token_texts_are_one_string_per_piece_computed_or_read_back():
    """A piece that recurs (in one generation or across many) is one string object, whether
    the workspace keeps a new generation (``as_stored``) or reads one back from the store; the
    values are unchanged, and tokens that are not plain strings are left as they are."""

    def copy(piece: str) -> str:
        return "".join(list(piece))  # the same text, another object

    rows = [["Ben", " has", " 12"], [" has", " 12", " more"]]
    made = [as_stored(_generation(text="".join(r), tokens=tuple(map(copy, r)))) for r in rows]
    assert [g.tokens for g in made] == [tuple(r) for r in rows]
    assert made[0].tokens[1] is made[1].tokens[0] and made[0].tokens[2] is made[1].tokens[1]
    read = [unpack_generation(pack_generation(g)) for g in made]
    assert read == made and read[0].tokens[1] is made[1].tokens[0]

    class Piece(str):
        pass

    odd = as_stored(_generation(text="ab", tokens=(Piece("a"), "b")))
    assert type(odd.tokens[0]) is Piece and odd.tokens == ("a", "b")
