"""Incremental detokenisation (``prmh.plugins.generators.detokenize``) against whole decodes.

The reference is the tokenizer's own decode of the whole sequence (the pieces must join to it)
and the per-token boundaries of decoding every prefix (``exact_pieces``, quadratic). The
incremental rule (decode from the previous boundary, hold back a token that ends inside a
character) is text-generation-inference's ``Model.decode_token``
(huggingface/text-generation-inference, server/text_generation_server/models/model.py, commit
6994fa12f8425837a1a58847103e21a25377fc16).
"""

from __future__ import annotations

import importlib.resources
import random
import shutil

import pytest

pytest.importorskip("transformers")

from prmh.plugins.generators.common import first_stop
from prmh.plugins.generators.detokenize import Decoding, Detokenizer, exact_pieces, token_pieces
from prmh.testing import tiny_tokenizer

TEXT = "Ben has 12 €.\n\nNaïve 🎉 sum: 12 + 30 = 42.\n\n  The answer is 42."


@pytest.fixture(scope="module")
def mistral(tmp_path_factory):
    """Mistral 7B's SentencePiece tokenizer (byte fallback, leading-space pieces), as shipped in
    mistral-common."""
    from transformers import LlamaTokenizer

    source = importlib.resources.files("mistral_common") / "data" / "tokenizer.model.v1"
    folder = tmp_path_factory.mktemp("mistral")
    with importlib.resources.as_file(source) as path:
        shutil.copy(path, folder / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(folder, legacy=False)


@pytest.fixture(scope="module")
def byte_level():
    return tiny_tokenizer()


def _sequences(tokenizer, count: int = 30):
    """The test text, its prefixes cut inside characters, then random id sequences."""
    rng = random.Random(0)
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    text = tokenizer.encode(TEXT, add_special_tokens=False)
    yield text
    for _ in range(count):
        yield text[: rng.randint(1, len(text))]
        yield [rng.choice(vocab) for _ in range(rng.randint(1, 60))]


@pytest.mark.parametrize("name", ["mistral", "byte_level"])
def test_pieces_join_to_the_whole_decode_and_split_where_prefix_decodes_do(request, name):
    """Every piece as decoding every prefix gives it (the test text first: valid UTF-8 whose
    characters span several byte tokens)."""
    tokenizer, compared = request.getfixturevalue(name), 0
    for ids in _sequences(tokenizer):
        pieces = token_pieces(tokenizer, ids)
        assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
        incremental = Detokenizer(tokenizer)
        for token in ids:
            incremental.push(token)
        assert incremental.finish() == pieces  # no fallback to decoding every prefix
        assert len(pieces) == len(ids)
        if "\ufffd" in "".join(pieces):
            continue  # invalid bytes: the text around them may sit on the next token instead
        exact = exact_pieces(
            lambda k, ids=ids: tokenizer.decode(ids[:k], skip_special_tokens=True), len(ids)
        )
        assert pieces == exact
        compared += 1
    assert compared >= 10


@pytest.mark.parametrize("name", ["mistral", "byte_level"])
def test_a_stop_string_is_found_at_the_token_that_completes_it(request, name):
    """The token at which decoding every prefix first shows the stop string."""
    tokenizer = request.getfixturevalue(name)
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    for stop in ("\n\n", "42.", "= 4", "🎉"):
        expected = next(
            k for k in range(1, len(ids) + 1)
            if first_stop(tokenizer.decode(ids[:k], skip_special_tokens=True), (stop,))
        )  # fmt: skip
        text = Detokenizer(tokenizer)
        found = next(
            k for k, token in enumerate(ids, 1) if text.tail_stop((stop,), text.push(token))
        )
        assert found == expected, stop


def test_a_decode_that_cleans_up_across_tokens_falls_back_to_prefix_decodes():
    """A tokenizer whose whole decode cleans up spaces by looking further back than the
    incremental window (two tokens): the pieces still join to the whole decode."""
    words = ["Ben", " has", " 3", " .", " Done"]

    class CleaningUp:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(words[i] for i in ids).replace("has 3 .", "has 3.")

    tokenizer, ids = CleaningUp(), [0, 1, 2, 3, 4]
    incremental = Detokenizer(tokenizer)
    for token in ids:
        incremental.push(token)
    assert "".join(incremental.finish()) == "Ben has 3 . Done"  # the window cannot see it
    pieces = token_pieces(tokenizer, ids)
    assert "".join(pieces) == "Ben has 3. Done"
    assert pieces == exact_pieces(lambda k: tokenizer.decode(ids[:k]), len(ids))


def test_decoding_grows_linearly_with_the_length(byte_level):
    """Tokens decoded in all: a few per token, where decoding every prefix is n(n+1)/2."""
    decoded = 0

    class Counting:
        def decode(self, ids, skip_special_tokens=True):
            nonlocal decoded
            decoded += len(ids)
            return byte_level.decode(ids, skip_special_tokens=skip_special_tokens)

    ids = [random.Random(1).randrange(300) for _ in range(2048)]
    text = Detokenizer(Counting())
    for token in ids:
        text.tail_stop(("\n\n",), text.push(token))
    assert decoded < 10 * len(ids)  # decoding every prefix: 2,098,176 tokens


def test_rows_sharing_a_decoding_table_get_the_same_pieces(byte_level):
    """Rows that share a ``Decoding`` (a batch's rows) get each its own pieces, equal to a
    lone detokenizer's, with the tokenizer called once per distinct window; a full table is
    emptied, never grown past its size."""
    calls = 0

    class Counting:
        def decode(self, ids, skip_special_tokens=True):
            nonlocal calls
            calls += 1
            return byte_level.decode(ids, skip_special_tokens=skip_special_tokens)

    rng = random.Random(2)
    rows = [[rng.randrange(300) for _ in range(200)] for _ in range(2)] * 4  # repeated rows
    shared = Decoding(Counting(), size=64)
    texts = [Detokenizer(shared.tokenizer, shared) for _ in rows]
    for step in range(200):
        for text, ids in zip(texts, rows, strict=True):
            text.push(ids[step])
            assert len(shared.seen) <= 64
    for text, ids in zip(texts, rows, strict=True):
        alone = Detokenizer(byte_level)
        for token in ids:
            alone.push(token)
        assert text.finish() == alone.finish()
    assert calls <= 2 * 2 * 200  # two decodes a push for the two distinct rows; 3,200 unshared
