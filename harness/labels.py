"""Step-labelled data in the three formats PRM training code reads, written and read back.

- ``math-shepherd`` (JSONL): ``input`` is the question followed by the steps, each numbered
  ``Step k:`` (added when missing) and tagged `` ки``, one per line; ``label`` is the same text
  with each tag replaced by ``+`` (good) or ``-`` (bad).
- ``unprm`` (a JSON list): ``prompt``, ``answer``, ``completions`` (the steps), ``label``
  (one boolean per step).
- ``stepwise`` (JSONL, TRL's stepwise supervision): ``prompt``, ``completions``, ``labels``.

Hard labels (0 or 1) are written as booleans, soft labels (Math-Shepherd's success rates) as
numbers, so ``mse`` and soft targets train on what was labelled. Math-Shepherd's text marks a
soft label as ``+`` from 0.5 and keeps the numbers in an extra ``soft_label`` list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import parse_json

FORMATS = ("math-shepherd", "unprm", "stepwise")
TAG = "ки"
_NUMBERED = re.compile(r"^Step \d+:")
_FIRST_STEP = re.compile(r"Step 1:")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+(:\w+)?")


@dataclass(frozen=True)
class LabelledSolution:
    question: str
    steps: tuple[str, ...]
    labels: tuple[float, ...]
    answer: str = ""


def _numbered(steps: Sequence[str]) -> list[str]:
    return [s if _NUMBERED.match(s) else f"Step {k}: {s}" for k, s in enumerate(steps, start=1)]


def _written(labels: Sequence[float]) -> list[bool] | list[float]:
    """Booleans when every label is hard, the numbers themselves otherwise."""
    if all(label in (0.0, 1.0) for label in labels):
        return [label == 1.0 for label in labels]
    return [float(label) for label in labels]


def to_record(item: LabelledSolution, fmt: str) -> dict[str, Any]:
    if fmt == "math-shepherd":
        steps = _numbered(item.steps)
        text = "\n".join(f"{s} {TAG}" for s in steps)
        marks = "\n".join(
            f"{s} {'+' if y >= 0.5 else '-'}" for s, y in zip(steps, item.labels, strict=True)
        )
        row: dict[str, Any] = {
            "input": f"{item.question} {text}",
            "label": f"{item.question} {marks}",
            "task": "prmh",
        }
        written = _written(item.labels)
        if written and not isinstance(written[0], bool):
            row["soft_label"] = written
        return row
    if fmt == "unprm":
        return {
            "prompt": item.question,
            "answer": item.answer,
            "completions": list(item.steps),
            "label": _written(item.labels),
        }
    if fmt == "stepwise":
        return {
            "prompt": item.question,
            "completions": list(item.steps),
            "labels": _written(item.labels),
        }
    raise PrmhError(f"unknown label format {fmt!r}; formats are: {', '.join(FORMATS)}.")


def from_record(row: Any, fmt: str, where: str) -> LabelledSolution:
    if not isinstance(row, dict):
        raise PrmhError(f"{where}: expected an object, got {row!r:.60}.")
    needed = {
        "math-shepherd": ("input", "label"),
        "unprm": ("prompt", "completions", "label"),
        "stepwise": ("prompt", "completions", "labels"),
    }[fmt]
    for key in needed:
        if key not in row:
            raise PrmhError(f"{where}: missing field {key!r} ({fmt} format).")
    if fmt == "math-shepherd":
        item = _shepherd(row["input"], row["label"], where)
        if "soft_label" not in row:
            return item
        soft = _read_labels(row["soft_label"], len(item.steps), where)
        return LabelledSolution(item.question, item.steps, soft)
    steps, prompt = row["completions"], row["prompt"]
    if not isinstance(steps, list) or not all(isinstance(x, str) for x in steps):
        raise PrmhError(
            f"{where}: 'completions' must be a list of steps (text), not {steps!r:.60}."
        )
    if not isinstance(prompt, str):
        raise PrmhError(f"{where}: 'prompt' must be the question's text, not {prompt!r:.60}.")
    labels = _read_labels(row["label"] if fmt == "unprm" else row["labels"], len(steps), where)
    return LabelledSolution(prompt, tuple(steps), labels, str(row.get("answer", "")))


def _read_labels(labels: Any, count: int, where: str) -> tuple[float, ...]:
    """Booleans as 1.0/0.0, numbers in [0, 1] as they are."""
    if not isinstance(labels, list) or len(labels) != count:
        size = len(labels) if isinstance(labels, list) else "no list of"
        raise PrmhError(f"{where}: {count} steps but {size} labels.")
    out = []
    for x in labels:
        if isinstance(x, bool) or (isinstance(x, int | float) and 0.0 <= x <= 1.0):
            out.append(float(x))
        else:
            raise PrmhError(
                f"{where}: a label must be true/false or a number in [0, 1], not {x!r}."
            )
    return tuple(out)


def _shepherd(text: str, label: str, where: str) -> LabelledSolution:
    """Walk the input and the label text together: each step is followed by its tag in one and
    by ``+``/``-`` in the other (the tag and the mark differ in length)."""
    start = _FIRST_STEP.search(text)
    if start is None or label[: start.start()] != text[: start.start()]:
        raise PrmhError(
            f"{where}: not Math-Shepherd text (no 'Step 1:' in the input, or input "
            "and label start differently)."
        )
    question = text[: start.start()].rstrip()
    steps, labels = [], []
    at_text = at_label = start.start()
    while (tag := text.find(f" {TAG}", at_text)) >= 0:
        step = text[at_text:tag]
        mark = label[at_label + len(step) + 1 : at_label + len(step) + 2]
        if label[at_label : at_label + len(step)] != step or mark not in ("+", "-"):
            raise PrmhError(f"{where}: the label text does not match step {len(steps) + 1}.")
        steps.append(step.strip())
        labels.append(1.0 if mark == "+" else 0.0)
        at_text, at_label = tag + len(TAG) + 1, at_label + len(step) + 2
    if not steps:
        raise PrmhError(f"{where}: no step tags ' {TAG}' in the input.")
    return LabelledSolution(question, tuple(steps), tuple(labels))


def write_labels(path: Path, items: Iterable[LabelledSolution], fmt: str) -> int:
    rows = [to_record(item, fmt) for item in items]
    if fmt == "unprm":
        text = json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    from prmh.files import write_text_atomic

    write_text_atomic(Path(path), text)  # killed mid-write: the old file or the new one
    return len(rows)


def detect_format(row: dict[str, Any]) -> str:
    if "input" in row and "label" in row:
        return "math-shepherd"
    if "labels" in row:
        return "stepwise"
    if "label" in row and "completions" in row:
        return "unprm"
    raise PrmhError(f"cannot tell the label format of {sorted(row)}; formats: {FORMATS}.")


def read_labels(source: str | Path, fmt: str | None = None) -> list[LabelledSolution]:
    """Read any of the three formats (detected from the fields when ``fmt`` is None) from a
    JSON or JSONL file, a Parquet file, a dataset directory (Parquet/JSON files, as
    ``huggingface-cli download`` leaves them) or a Hub dataset id (``owner/name``, its train
    split, or ``owner/name:SPLIT``; from the local cache when offline)."""
    path = Path(source).expanduser()
    hub = not path.exists() and path.suffix.lower() not in (".json", ".jsonl", ".parquet")
    if path.is_dir() or (hub and _HUB_ID.fullmatch(str(source))):
        rows = _dataset_rows(str(source), path)
    elif path.suffix.lower() == ".parquet":
        from prmh.task_files import read_rows

        rows = list(read_rows(path))
    else:
        rows = _text_rows(path)
    if not rows:
        raise PrmhError(f"{source} holds no labelled solutions.")
    where, first = rows[0]
    if not isinstance(first, dict):  # [1, 2] or null: no format to tell
        raise PrmhError(f"{source} {where}: expected an object, got {first!r:.60}.")
    kind = fmt or detect_format(first)
    return [from_record(row, kind, f"{source} {where}") for where, row in rows]


def _text_rows(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PrmhError(
            f"cannot read labels {str(path)!r}: {e.strerror}. --data takes a JSON, JSONL or "
            "Parquet file, a dataset directory or a Hub dataset id (owner/name[:split])."
        ) from e
    except UnicodeDecodeError as e:
        raise PrmhError(
            f"{str(path)!r} is not UTF-8 text (byte {e.start}); label files are JSON, JSONL "
            "or Parquet (named .parquet)."
        ) from None
    if text.lstrip().startswith("["):
        try:
            return [(f"item {i + 1}", r) for i, r in enumerate(parse_json(text))]
        except json.JSONDecodeError as e:
            raise PrmhError(f"{path}: not valid JSON at line {e.lineno}: {e.msg}.") from e
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append((f"line {number}", parse_json(line)))
            except json.JSONDecodeError as e:
                raise PrmhError(f"{path} line {number}: not valid JSON: {e.msg}.") from e
    return rows


def _dataset_rows(source: str, path: Path) -> list[tuple[str, Any]]:
    """Rows of a dataset directory or Hub id, through ``datasets``."""
    try:
        import datasets
    except ImportError as e:
        raise PrmhError(
            f"reading {source} needs the datasets package: pip install datasets."
        ) from e
    name, _, split = (str(path), "", "train") if path.is_dir() else source.partition(":")
    datasets.disable_progress_bars()
    try:
        rows = datasets.load_dataset(name, split=split or "train")
    except Exception as e:
        from prmh.task_files import offline_hint

        raise PrmhError(
            f"could not load the dataset {source} ({type(e).__name__}: {str(e)[:200]}). A Hub "
            "id is read from the local cache when offline: download it once online, or pass "
            f"a JSON, JSONL or Parquet file.{offline_hint()}"
        ) from e
    return [(f"row {i + 1}", row) for i, row in enumerate(rows)]
