"""Step 1 of the tiny world: a tokenizer fitted on arith text and an untrained Qwen2 model.

Usage: python recipes/tiny/make_base.py OUT
The tokenizer is trained on the first 2,000 train problems (prompt + gold solution) with Qwen's
own pre-tokenizer split, so it reloads identically; the model has 4 layers of width 128.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prmh.plugins.arith import ArithTask
from prmh.testing import tiny_qwen2, tiny_tokenizer


def main(out: Path) -> None:
    task = ArithTask("train")
    corpus = [task.prompt(p) + "\n\n".join(p.steps) for p in task.problems(2000)]
    tokenizer = tiny_tokenizer(corpus=corpus, vocab_size=600)
    out.mkdir(parents=True, exist_ok=True)
    tiny_qwen2(tokenizer, hidden=128, layers=4).save_pretrained(out)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
