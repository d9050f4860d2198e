"""Pre-sampled corpora: solutions already generated, read as the ``file`` generator and, when the
file holds gold answers, as the ``samples`` task (``prmh eval --samples FILE`` uses both).

A corpus is a JSON list, a JSON object holding the list, JSONL or Parquet: one record per
problem with its question, its solutions (strings, or objects holding the text) and optionally
an id, a gold answer and token counts. A layout names those fields; presets cover the published
corpora, and ``auto`` picks one from the first record's fields:

- ``prmh``: ``question``, ``solutions``, ``answer``, ``id`` (solutions may be ``{text,
  num_tokens}``);
- ``pqm``: PQM's 128-sample sets (``question``, ``responses`` of ``{text}``; gold answers come
  from the task, e.g. ``--task math500``);
- ``asprm``: ASPRM's best-of-N sets (``idx``, ``question``, ``pred``, ``gt_answer``);
- ``calibration``: the calibration release's first-pass and one-pass outputs (``question``,
  ``generations``, ``gold_answer``);
- ``tt-scale``: tt_scale's best-of-N JSON (``results`` of ``index``, ``question``,
  ``gold_answer``, ``solutions`` of ``{text, num_tokens}``).

Each field can be renamed with an option (``-G solutions=math_confidence_list``). A task's
problem finds its record by id when the corpus has ids the task uses, else by its question
(white space collapsed). Seed 0 serves the solutions in file order; another seed a fixed
permutation of them, so several seeds draw different pools from a larger corpus.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prmh import Generation, Problem, SampleRequest, hookimpl
from prmh.answers import extractor
from prmh.errors import PrmhError


@dataclass(frozen=True)
class Layout:
    question: str
    solutions: str
    answer: str | None = None
    id: str | None = None
    text: str = "text"
    tokens: str | None = "num_tokens"
    records: str | None = None


PRESETS = {
    "prmh": Layout("question", "solutions", "answer", "id"),
    "pqm": Layout("question", "responses"),
    "asprm": Layout("question", "pred", "gt_answer", "idx"),
    "calibration": Layout("question", "generations", "gold_answer"),
    "tt-scale": Layout("question", "solutions", "gold_answer", "index", records="results"),
}
# the first record's field that tells each preset apart (prmh's is the fallback)
MARKS = {"responses": "pqm", "pred": "asprm", "generations": "calibration"}


@dataclass(frozen=True)
class Record:
    id: str | None
    question: str
    answer: str | None
    solutions: tuple[tuple[str, int], ...]


def _key(question: str) -> str:
    return " ".join(question.split())


class Corpus:
    """A corpus file read once, with its records by id and by question."""

    def __init__(self, path: str, preset: str = "auto", **fields: str | None):
        self.path = Path(path).expanduser()
        if preset != "auto" and preset not in PRESETS:
            raise PrmhError(
                f"unknown corpus preset {preset!r}; presets: auto, {', '.join(PRESETS)}."
            )
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise PrmhError(f"cannot read the corpus {str(path)!r}: {e.strerror}.") from e
        self.fingerprint = hashlib.sha256(data).hexdigest()
        rows, preset = self._rows(data, preset)
        self.preset = preset
        self.layout = replace(PRESETS[preset], **{k: v for k, v in fields.items() if v})
        self.records = [self._record(where, row) for where, row in rows]
        if not self.records:
            raise PrmhError(f"the corpus {path} holds no records.")
        self.by_id = {r.id: r for r in self.records if r.id is not None}
        self.by_question = {_key(r.question): r for r in self.records}

    def _rows(self, data: bytes, preset: str) -> tuple[list[tuple[str, Any]], str]:
        if self.path.suffix.lower() in (".parquet", ".jsonl"):
            from prmh.task_files import read_rows

            rows = list(read_rows(self.path))
        else:
            try:
                loaded = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                raise PrmhError(
                    f"the corpus {self.path} is not JSON ({type(e).__name__}); corpora are "
                    "JSON, JSONL (named .jsonl) or Parquet (named .parquet)."
                ) from None
            if isinstance(loaded, dict):
                if preset == "auto" and "results" in loaded:
                    preset = "tt-scale"
                loaded = loaded.get(PRESETS.get(preset, PRESETS["prmh"]).records or "data")
            if not isinstance(loaded, list):
                raise PrmhError(f"the corpus {self.path} holds no list of records.")
            rows = [(f"record {i + 1}", row) for i, row in enumerate(loaded)]
        if preset == "auto":
            first = rows[0][1] if rows and isinstance(rows[0][1], dict) else {}
            preset = next((MARKS[k] for k in MARKS if k in first), "prmh")
        return rows, preset

    def _record(self, where: str, row: Any) -> Record:
        at, layout = f"{self.path} {where}", self.layout
        if not isinstance(row, dict):
            raise PrmhError(f"{at}: expected an object, got {row!r:.60}.")
        for name in (layout.question, layout.solutions):
            if name not in row:
                raise PrmhError(
                    f"{at}: no field {name!r} (preset {self.preset}; rename it with "
                    f"-G question=FIELD / -G solutions=FIELD, or choose -G preset=...)."
                )
        solutions = row[layout.solutions]
        if not isinstance(solutions, list):
            raise PrmhError(f"{at}: {layout.solutions!r} must be a list of solutions.")
        answer = row.get(layout.answer) if layout.answer else None
        identity = row.get(layout.id) if layout.id else None
        return Record(
            None if identity is None else str(identity),
            str(row[layout.question]),
            None if answer is None else str(answer),
            tuple(self._solution(f"{at} solution {k + 1}", s) for k, s in enumerate(solutions)),
        )

    def _solution(self, at: str, solution: Any) -> tuple[str, int]:
        if isinstance(solution, str):
            return solution, 0
        text = solution.get(self.layout.text) if isinstance(solution, dict) else None
        if not isinstance(text, str):
            raise PrmhError(f"{at}: a solution is a string or an object with {self.layout.text!r}.")
        tokens = solution.get(self.layout.tokens or "", 0)
        return text, tokens if isinstance(tokens, int) and tokens >= 0 else 0

    def find(self, problem: Problem) -> Record:
        record = self.by_id.get(problem.id) or self.by_question.get(_key(problem.question))
        if record is None:
            raise PrmhError(
                f"problem {problem.id} ({problem.question[:60]!r}) has no record in the corpus "
                f"{self.path}; evaluate the task whose problems it holds, or --limit to them."
            )
        return record


@functools.lru_cache(maxsize=4)
def _corpus(path: str, preset: str, fields: tuple[tuple[str, str | None], ...]) -> Corpus:
    return Corpus(path, preset, **dict(fields))


class FileGenerator:
    """Serves each problem's solutions from a corpus; finished solutions only."""

    def __init__(
        self,
        path: str,
        preset: str = "auto",
        question: str | None = None,
        solutions: str | None = None,
        text: str | None = None,
        tokens: str | None = None,
        id: str | None = None,
    ):
        fields = {"question": question, "solutions": solutions, "text": text, "tokens": tokens}
        self.corpus = _corpus(path, preset, tuple({**fields, "id": id}.items()))

    @property
    def identity_extra(self) -> dict[str, Any]:
        return {"corpus": self.corpus.fingerprint}

    def sample(self, requests: list[SampleRequest]) -> list[list[Generation]]:
        return [self._serve(r) for r in requests]

    def _serve(self, request: SampleRequest) -> list[Generation]:
        if request.prefix or request.stop:
            raise PrmhError(
                "the file generator holds finished solutions and cannot continue a step; "
                "step-level searches (beam, dvts, beam-ias) need a generator that writes "
                "(use best-of-n or bon-ias with a corpus)."
            )
        record = self.corpus.find(request.problem)
        order = list(range(len(record.solutions)))
        if request.seed:
            random.Random(f"{request.seed}:{request.problem.id}").shuffle(order)
        end = request.first_index + request.n
        if end > len(order):
            raise PrmhError(
                f"problem {request.problem.id} has {len(order)} solutions in the corpus "
                f"{self.corpus.path}; {end} were asked for. Lower the budget (-n) or --pool."
            )
        chosen = (record.solutions[i] for i in order[request.first_index : end])
        return [Generation(text, True, tokens) for text, tokens in chosen]


class CorpusTask:
    """The corpus's own problems, graded against its gold answers."""

    name = "samples"

    def __init__(
        self,
        path: str,
        preset: str = "auto",
        grader: str = "math-verify",
        answer: list[str] | None = None,
        question: str | None = None,
        solutions: str | None = None,
        gold: str | None = None,
        id: str | None = None,
    ):
        fields = {"question": question, "solutions": solutions, "answer": gold, "id": id}
        self.corpus = _corpus(path, preset, tuple(fields.items()))
        missing = [r for r in self.corpus.records if r.answer is None]
        if missing:
            raise PrmhError(
                f"the corpus {path} (preset {self.corpus.preset}) has no gold answer for "
                f"{missing[0].question[:60]!r}: name its field (-T gold=FIELD), or evaluate the "
                "task its problems come from (--task math500 --samples FILE)."
            )
        self.grader = grader
        self.extract_answer = extractor(answer or ["boxed", "the-answer-is", "last-number"])
        self._gold = extractor(["boxed", "gsm8k"])

    @property
    def identity_extra(self) -> dict[str, Any]:
        return {"corpus": self.corpus.fingerprint}

    def problems(self, limit: int | None = None) -> list[Problem]:
        records = self.corpus.records[:limit] if limit else self.corpus.records
        return [self._problem(i, r) for i, r in enumerate(records)]

    def _problem(self, index: int, record: Record) -> Problem:
        answer = record.answer or ""
        return Problem(
            record.id or f"samples-{index}", record.question, self._gold(answer) or answer
        )

    def prompt(self, problem: Problem) -> str:
        return problem.question


@hookimpl
def prmh_register_generator(register):
    register(
        "file",
        FileGenerator,
        description="Pre-sampled solutions from a corpus file (prmh, pqm, asprm, calibration, "
        "tt-scale presets)",
        version="1",
        speed_args=("path",),
    )


@hookimpl
def prmh_register_task(register):
    register(
        "samples",
        CorpusTask,
        description="The problems and gold answers of a corpus file (-T path=FILE)",
        version="1",
        speed_args=("path",),
    )
