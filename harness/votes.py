"""Which answers count as the same answer when votes are counted.

Majority, weighted and UnPRM votes group answers by a key: the task grader's ``answer_key``,
for the math graders the answer's value as sympy writes it (``\\frac{\\sqrt2}{2}`` and
``\\frac{\\sqrt{2}}{2}`` vote together). Computing it parses model text, so it runs in the
grading workers under the grading timeout, never in this process, and is kept in the store
(kind ``vote key``) so a resumed run computes nothing again. An answer whose key timed out or
failed votes alone, under its own text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prmh.grading import Grader, GraderPool
from prmh.store import Store, content_key


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a vote key")
    return value


class AnswerKeys:
    """Vote keys of answers, filled by ``ensure`` before anything votes."""

    def __init__(
        self,
        grader: Grader,
        store: Store,
        run_id: str,
        pool: GraderPool,
        timeout: float,
        stats: Any,
    ):
        self.grader, self.store, self.run_id = grader, store, run_id
        self.pool, self.timeout, self.stats = pool, timeout, stats
        self.known: dict[str, str] = {}

    def ensure(self, answers: Iterable[str | None]) -> None:
        missing = sorted({a for a in answers if a is not None and a not in self.known})
        if not missing:
            return
        keys = {
            a: content_key(
                {"grader": self.grader.name, "version": self.grader.version, "answer": a}
            )
            for a in missing
        }
        stored = self.store.get_many("vote key", keys.values(), parse=_text)
        self.known.update({a: stored[k] for a, k in keys.items() if k in stored})
        todo = [a for a in missing if a not in self.known]
        self.stats.add("vote key", len(missing) - len(todo), len(todo))
        if not todo:
            return
        computed = self.pool.keys(self.grader.ref, todo, timeout=self.timeout)
        found = {a: k for a, k in zip(todo, computed, strict=True) if k is not None}
        self.store.put_many("vote key", {keys[a]: k for a, k in found.items()}, self.run_id)
        self.known.update(found)

    def __call__(self, answer: str) -> str:
        return self.known.get(answer, "\0" + answer.strip())  # unknown: votes alone
