"""Per-sample results of an evaluation, beside its run record: ``runs/RUN.samples.jsonl.gz``.

Written by the engine as it runs every search cell (a resumed run replays its searches from the
store, so it writes them in full too). One JSON object per line, each with a type ``t``:

- ``problem``: ``task``, ``id``, ``question``, ``gold``;
- ``solution``: ``id`` (a number), ``task``, ``generator``, ``problem``, ``text``, ``steps``,
  ``answer`` (solutions are written once, however many cells hold them);
- ``scores``: ``prm`` (its label), ``solution``, ``probs``, ``quantiles`` (or null);
- ``cell``: ``task``, ``generator``, ``prm``, ``splitter``, ``agg``, ``search``, ``budget``,
  ``seed``, ``problem``, ``candidates`` ([solution id, score] in the search's order), ``chosen``
  (per selector label, the chosen candidate index per subset, null for none) and ``compute``.
  The file holds one ``cells`` line per search cell with the same fields, each problem's in
  lists (``problem``, ``candidates``, each selector's ``chosen`` and each ``compute`` field, in
  problem order), which ``read_samples`` gives back as ``cell`` lines (a matrix of 75 cells
  of 200 problems writes 75 lines, not 15,000: half the time). A ``cells`` line with
  ``extends`` (a budget) holds each problem's candidates after those of the same search
  cell's line at that budget (best-of-N at budget 16 lists its budget-8 candidates, then 8
  more): only the new ones are written, and not the problems, which are that line's;
- ``grade``: ``task``, ``answer``, ``gold``, ``correct``, ``outcome`` (right, wrong, timed out,
  error).

``prmh.results`` reads it back at any level (cell, problem, candidate, step).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import operator
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import parse_json, write_bytes_atomic
from prmh.samples_check import what_is_wrong
from prmh.types import Problem, SearchResult, StepScores

SUFFIX = ".samples.jsonl.gz"
COMPUTE = ("generated_tokens", "prm_tokens", "prm_calls", "wall_seconds")
PER_PROBLEM = ("problem", "candidates", "chosen", "compute")  # a cells line's lists


def samples_path(record_path: Path) -> Path:
    """Where the per-sample results of the run whose record is at ``record_path`` live."""
    return record_path.with_name(record_path.stem + SUFFIX)


class SampleLog:
    """Collects one run's per-sample results, then writes them (``write``)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.solutions: dict[tuple, int] = {}
        self._seen: dict[int, tuple[Any, int]] = {}  # id(solution) -> (solution, its number)
        self._numbers: dict[str, dict[int, int]] = {}  # per PRM: id(solution) -> its number
        self.scored: set[tuple[str, int]] = set()
        self.problems: set[tuple[str, str]] = set()
        self._cell: tuple = ()  # the search cell whose budgets are being added
        self._last: tuple | None = None  # the cell's previous budget, its problems, candidates

    def add_problems(self, task: str, problems: list[Problem]) -> None:
        for p in problems:
            if (task, p.id) not in self.problems:
                self.problems.add((task, p.id))
                self.lines.append(
                    {"t": "problem", "task": task, "id": p.id, "question": p.question,
                     "gold": p.answer}
                )  # fmt: skip

    def _solution(self, where: dict[str, str], problem: str, solution: Any) -> int:
        seen = self._seen.get(id(solution))
        if seen is not None and seen[0] is solution:  # the same object: a pool read again
            return seen[1]
        number = self._number(where, problem, solution)
        self._seen[id(solution)] = (solution, number)
        return number

    def _number(self, where: dict[str, str], problem: str, solution: Any) -> int:
        key = (where["task"], where["generator"], problem, solution.text, solution.steps)
        if key not in self.solutions:
            self.solutions[key] = len(self.solutions)
            self.lines.append(
                {"t": "solution", "id": self.solutions[key], **where, "problem": problem,
                 "text": solution.text, "steps": list(solution.steps), "answer": solution.answer}
            )  # fmt: skip
        return self.solutions[key]

    def _scores(self, prm: str, solution: int, scores: StepScores) -> None:
        if (prm, solution) not in self.scored:
            self.scored.add((prm, solution))
            quantiles = None if scores.quantiles is None else [list(q) for q in scores.quantiles]
            self.lines.append(
                {"t": "scores", "prm": prm, "solution": solution, "probs": list(scores.probs),
                 "quantiles": quantiles}
            )  # fmt: skip

    def add_cell(
        self,
        where: dict[str, Any],
        results: list[SearchResult],
        chosen: dict[str, list[tuple[int | None, ...]]],
    ) -> None:
        """One search cell (``where``: task, generator, prm, splitter, agg, search, budget,
        seed): each problem's candidates, each selector's choice and the compute. When every
        problem's candidates begin with the previous budget's (best-of-N reads a longer prefix
        of one ranked pool), only the new ones are written, with ``extends``: that budget."""
        source = {"task": where["task"], "generator": where["generator"]}
        cell = tuple(v for k, v in where.items() if k != "budget")
        if cell != self._cell:  # the budgets of one search: each may extend the last
            self._cell, self._last = cell, None
        problems = [r.problem_id for r in results]
        kept = [r.candidates for r in results]
        extends = self._last is not None and _extended(self._last, problems, kept)
        candidates = []
        numbers = self._numbers.setdefault(where["prm"], {})  # a pool's solutions recur
        befores = self._last[2] if extends else [()] * len(results)
        for result, before in zip(results, befores, strict=True):
            added = result.candidates[len(before) :]
            for c in [c for c in added if id(c.solution) not in numbers]:
                number = numbers[id(c.solution)] = self._solution(  # kept alive in _seen
                    source, result.problem_id, c.solution
                )
                self._scores(where["prm"], number, c.scores)
            candidates.append([[numbers[id(c.solution)], c.score] for c in added])
        line = {"t": "cells", **where, "problem": problems, "candidates": candidates}
        if extends:  # the same problems as the line it extends
            del line["problem"]
            line["extends"] = self._last[0]
        self._last = (where["budget"], problems, kept)
        self.lines.append(
            {**line, "chosen": {s: [list(p) for p in picks] for s, picks in chosen.items()},
             "compute": {k: [getattr(r.compute, k) for r in results] for k in COMPUTE}}
        )  # fmt: skip

    def add_grades(
        self, task: str, verdicts: dict[tuple[str, str], bool], outcomes: dict[tuple, str]
    ) -> None:
        for (answer, gold), correct in sorted(verdicts.items()):
            outcome = outcomes.get((answer, gold), "right" if correct else "wrong")
            self.lines.append(
                {"t": "grade", "task": task, "answer": answer, "gold": gold, "correct": correct,
                 "outcome": outcome}
            )  # fmt: skip

    def write(self, path: Path) -> str:
        """Gzipped JSON lines, byte for byte the same for the same results (no timestamp);
        level 1: 19% larger than level 6 and 4.5 times faster (19 against 86 ms for a 75-cell
        sim matrix's 3.6 MB; level 4 took 37 ms for an 11% smaller file). Returns the file's
        SHA-256 (a run read back checks its copy against it: ``prmh.reuse``)."""
        encode = json.JSONEncoder(  # compact; lines prmh built hold no cycles to look for
            sort_keys=True, separators=(",", ":"), check_circular=False
        ).encode
        text = "".join(encode(line) + "\n" for line in self.lines)
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0) as f:
            f.write(text.encode())
        data = buffer.getvalue()
        write_bytes_atomic(path, data)
        return hashlib.sha256(data).hexdigest()


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The lines of a samples file, each search cell's as one ``cell`` line per problem; a file
    that is damaged or not prmh's is refused (``PrmhError``) with what is wrong in it."""
    lines: list[dict[str, Any]] = []
    last: dict[str, tuple] = {}  # a search cell -> its latest budget, problems, candidates
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for text in _bounded(f):
                if text.strip():
                    line = parse_json(text)
                    cells = isinstance(line, dict) and line.get("t") == "cells"
                    lines += _per_problem(line, last) if cells else [line]
    except PrmhError as e:  # what _per_problem or _bounded found
        wrong: str | None = str(e)
    except (OSError, EOFError, ValueError, LookupError, TypeError, AttributeError, zlib.error) as e:
        wrong = f"{type(e).__name__}: {str(e)[:200]!r}"
    else:
        wrong = what_is_wrong(lines, COMPUTE)
    if wrong:
        raise PrmhError(
            f"the per-sample file {str(path)!r} is damaged or not prmh's ({wrong}). Run the "
            "evaluation's command again with --recompute: it reads everything from the store "
            "and writes the file anew."
        )
    return lines


MAX_LINE_CHARS = 64 << 20  # prmh's longest: a cells line, ~25 characters a candidate


def _bounded(f: io.TextIOBase) -> Iterator[str]:
    """The lines of a per-sample file that may come from a stranger, read within bounds: a
    line of at most ``MAX_LINE_CHARS``, and in all at most an eighth of this machine's memory
    (parsed, JSON takes several times its text): a small gzip bomb that expands to one
    endless line, or to more than the rows could fit in, is refused (``PrmhError``) before
    it fills the memory."""
    left = most = _memory_bytes() // 8
    while text := f.readline(MAX_LINE_CHARS + 1):
        if len(text) > MAX_LINE_CHARS:
            raise PrmhError(f"a line longer than {MAX_LINE_CHARS:,} characters")
        left -= len(text)
        if left < 0:
            raise PrmhError(
                f"it expands to more than {most:,} characters, an eighth of this machine's "
                "memory, more than its rows would fit in"
            )
        yield text


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not on this system: 16 GiB
        return 16 << 30


def _per_problem(cells: dict[str, Any], last: dict[str, tuple]) -> list[dict]:
    where = {k: v for k, v in cells.items() if k not in (*PER_PROBLEM, "extends")}
    cell = json.dumps({k: v for k, v in where.items() if k != "budget"}, sort_keys=True)
    candidates, problems = cells["candidates"], cells.get("problem")
    if "extends" in cells:  # the problems of the line it extends
        budget, problems, before = last.get(cell, (None, [], []))
        if budget != cells["extends"] or len(before) != len(candidates):
            raise PrmhError(  # read_samples says what to do
                f"a line of search cell {cell} extends budget {cells['extends']!r}, which no "
                "earlier line of that cell holds"
            )
        candidates = [b + new for b, new in zip(before, candidates, strict=True)]
    last[cell] = (cells["budget"], problems, candidates)
    where["t"] = "cell"
    return [
        {**where, "problem": problem, "candidates": candidates[i],
         "chosen": {s: picks[i] for s, picks in cells["chosen"].items()},
         "compute": {k: v[i] for k, v in cells["compute"].items()}}
        for i, problem in enumerate(problems)
    ]  # fmt: skip


def _extended(last: tuple, problems: list[str], kept: list[tuple]) -> bool:
    """Whether each problem's candidates begin with the same objects as the last budget's."""
    _, last_problems, last_kept = last
    return last_problems == problems and all(
        len(before) <= len(now) and all(map(operator.is_, before, now))  # stops at before's end
        for before, now in zip(last_kept, kept, strict=True)
    )
