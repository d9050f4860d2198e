"""Tasks defined by flat data files: the bundled ``tasks/*.toml`` (registered by
``prmh.plugins.task_files``) or a file of one's own (``--task path/to/task.toml``).

A task file names its dataset (Hugging Face Hub id, configuration(s) read one after another,
split, ``every``: keep rows 0, k, 2k, ... of them, size), how fields map to a problem
(``[fields]``: id, question, answer; ``[metadata]``: anything else to keep), the prompt
(``{question}``, and any metadata field by name), the answer rules (``prmh.answers``), and the
grader; a code task names its test format (``tests``, ``prmh.code_tests``) and may set
``time_per_test`` and ``wall`` seconds. Problems come from the Hub through ``datasets`` (its
local cache when offline) or, with ``--data FILE`` (``-T data=FILE``), from a local JSON, JSONL
or Parquet file that uses the same field names.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prmh.answers import extractor
from prmh.code_tests import converter
from prmh.errors import PrmhError
from prmh.files import parse_json, parse_toml
from prmh.types import Problem

PLACEHOLDER = re.compile(r"\{([^{}]+)\}")  # a field name: any text without braces
REQUIRED = ("name", "description", "version", "dataset", "split", "grader", "answer", "prompt")


def load_definition(text: str, origin: str) -> dict[str, Any]:
    """Parse and check a task file."""
    try:
        definition = parse_toml(text)
    except tomllib.TOMLDecodeError as e:
        raise PrmhError(f"task file {origin} is not valid TOML: {e}.") from e
    missing = [k for k in REQUIRED if k not in definition]
    if missing:
        raise PrmhError(f"task file {origin} lacks {', '.join(missing)}.")
    every = definition.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise PrmhError(f"task file {origin}: every must be a whole number >= 1, not {every!r}.")
    if "tests" in definition:
        converter(definition["tests"], origin)
    fields = definition.setdefault("fields", {})
    if "question" not in fields:
        raise PrmhError(f"task file {origin}: [fields] must name the question field.")
    return definition


def read_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """(where, row) pairs from a JSON list, a JSONL file or a Parquet file."""
    if not path.is_file():
        raise PrmhError(f"data file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise PrmhError("reading Parquet needs pyarrow: pip install 'prmh[math]'.") from e
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow's errors for a damaged or foreign file
            raise PrmhError(f"{path}: not a Parquet file pyarrow can read ({e}).") from None
        for i, row in enumerate(table.to_pylist()):
            yield f"row {i + 1}", row
        return
    text = path.read_text()
    if suffix == ".json":
        try:
            data = parse_json(text)
        except json.JSONDecodeError as e:
            raise PrmhError(f"{path}: not valid JSON at line {e.lineno}: {e.msg}.") from e
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise PrmhError(f"{path}: expected a JSON list of objects (or {{'data': [...]}}).")
        for i, row in enumerate(data):
            yield f"item {i + 1}", row
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", parse_json(line)
        except json.JSONDecodeError as e:
            raise PrmhError(f"{path} line {number}: not valid JSON: {e.msg}.") from e


def hub_rows(definition: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    try:
        import datasets
    except ImportError as e:
        raise PrmhError(
            f"task {definition['name']} reads {definition['dataset']} with the datasets "
            "package: pip install 'prmh[math]', or pass a local file: -T data=FILE."
        ) from e
    configs = definition.get("config") or [None]
    if isinstance(configs, str):
        configs = [configs]
    datasets.disable_progress_bars()
    for config in configs:
        try:
            rows = datasets.load_dataset(definition["dataset"], config, split=definition["split"])
        except Exception as e:
            raise PrmhError(
                f"task {definition['name']} could not load {definition['dataset']} "
                f"({definition['split']}) from the Hugging Face Hub or its local cache "
                f"({type(e).__name__}). Download it once online, or pass a local JSON, JSONL or "
                f"Parquet file: -T data=FILE (`prmh eval --data FILE`; fields: "
                f"{_field_names(definition)}).{offline_hint()}"
            ) from e
        for i, row in enumerate(rows):
            yield f"{config or 'row'} {i + 1}", row


def offline_hint() -> str:
    """Without a network, the Hub's client retries each request for about 20 s before the
    local cache is read: ``HF_HUB_OFFLINE=1`` (huggingface_hub's offline mode) reads it at once."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return ""
    return " Without a network (a cluster node), HF_HUB_OFFLINE=1 reads the cache at once."


def _field_names(definition: dict[str, Any]) -> str:
    names = list(definition["fields"].values()) + list(definition.get("metadata", {}).values())
    return ", ".join(names)


class FileTask:
    """A task described by a task file."""

    def __init__(
        self,
        definition: dict[str, Any],
        data: str | None = None,
        grader: str | None = None,
        prompt: str | None = None,
        answer: list[str] | None = None,
    ):
        self.definition = definition
        self.name = definition["name"]
        self.data = Path(data).expanduser() if data else None
        self.grader = grader or definition["grader"]
        self.template = prompt or definition["prompt"]
        if "{question}" not in self.template:
            raise PrmhError(f"the prompt of task {self.name} must contain {{question}}.")
        self.extract_answer = extractor(answer or definition["answer"])
        gold_rules = definition.get("gold_answer")
        self.extract_gold = extractor(gold_rules) if gold_rules else None
        self._problems: list[Problem] | None = None

    def problems(self, limit: int | None = None) -> list[Problem]:
        if self._problems is None:
            rows = read_rows(self.data) if self.data else hub_rows(self.definition)
            every = itertools.islice(rows, 0, None, self.definition.get("every", 1))
            self._problems = [self._problem(i, where, row) for i, (where, row) in enumerate(every)]
        return self._problems[:limit] if limit else list(self._problems)

    def _problem(self, index: int, where: str, row: Any) -> Problem:
        source = str(self.data) if self.data else self.definition["dataset"]
        if not isinstance(row, dict):
            raise PrmhError(f"{source} {where}: expected an object with fields, got {row!r:.60}.")
        fields, metadata = self.definition["fields"], self.definition.get("metadata", {})
        values = {}
        for key, field in [*fields.items(), *metadata.items()]:
            if field not in row:
                raise PrmhError(
                    f"{source} {where}: missing field {field!r} (task {self.name} reads its "
                    f"{key} from it; fields it needs: {_field_names(self.definition)})."
                )
            values[key] = row[field]
        wrong = _wrong_kind(values)
        if wrong:
            raise PrmhError(f"{source} {where}: {wrong} (task {self.name}).")
        answer = str(values.get("answer", ""))
        if self.extract_gold and answer:
            answer = self.extract_gold(answer) or answer
        kept = {k: values[k] for k in metadata}
        if "tests" in self.definition:  # a code task: the gold answer is the tests
            answer, kept["language"] = self._tests(row, f"{source} {where}"), "python"
        return Problem(
            id=str(values.get("id", f"{self.name}-{index}")),
            question=str(values["question"]),
            answer=answer,
            metadata=kept,
        )

    def _tests(self, row: dict[str, Any], where: str) -> str:
        convert = converter(self.definition["tests"], self.name)
        limits = {k: float(self.definition[k]) for k in ("time_per_test", "wall")
                  if k in self.definition}  # fmt: skip
        try:
            return convert(row, **limits)
        except (KeyError, ValueError, TypeError) as e:
            raise PrmhError(
                f"{where}: its test cases cannot be read as {self.definition['tests']} tests "
                f"({type(e).__name__}: {e})."
            ) from None

    def prompt(self, problem: Problem) -> str:
        """The template with ``{question}`` and any ``{metadata field}`` filled in, in one pass:
        a question holding ``{level}`` (LaTeX braces) keeps it, where filling one field after
        another put the level into the question."""
        values = {**{k: str(v) for k, v in problem.metadata.items()}, "question": problem.question}
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self.template)


def _wrong_kind(values: dict[str, Any]) -> str | None:
    """A question that is not text, or an answer or id that is neither text nor a number
    (null became the question "None", a list the answer "[1]")."""
    if not isinstance(values["question"], str):
        return f"the question is {values['question']!r:.40}, not text"
    for key in ("answer", "id"):
        value = values.get(key, "")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return f"the {key} is {value!r:.40}, not text or a number"
    return None


def factory(definition: dict[str, Any]) -> Any:
    def task(
        data: str | None = None,
        grader: str | None = None,
        prompt: str | None = None,
        answer: list[str] | None = None,
    ) -> FileTask:
        return FileTask(definition, data=data, grader=grader, prompt=prompt, answer=answer)

    return task


def read_task_file(path: str) -> dict[str, Any]:
    """A task file of one's own (``--task path/to/task.toml``), parsed and checked."""
    try:
        text = Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PrmhError(f"cannot read task file {path!r}: {e}.") from e
    return load_definition(text, repr(path))
