"""A leaderboard's definition file, ``ROOT/NAME/board.toml``: what counts (task and its
version, grader and its version, the searches and budgets shown, the column that ranks rows,
what rows compare) and, once a run is accepted, what every run must share (``[pinned]``).
Written by ``prmh leaderboard new``, checked whenever it is read (it may be edited by hand)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prmh.board_rules import PINNED, to_toml
from prmh.errors import PrmhError
from prmh.files import parse_toml, read_bounded, write_text_atomic

BOARD_FILE = "board.toml"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TEXT = ("task", "task_version", "grader", "grader_version")  # names and versions, as text


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    task: str
    task_version: str
    grader: str
    grader_version: str
    searches: tuple[str, ...]
    budgets: tuple[int, ...]
    rank_by: tuple[str, int]
    path: Path
    about: str = "prm"
    pinned: dict[str, Any] = field(default_factory=dict)

    @property
    def records_dir(self) -> Path:
        return self.path / "records"


def board_path(root: Path, name: str) -> Path:
    if not NAME.fullmatch(name):
        raise PrmhError(f"board name {name!r} must be lower-case letters, digits, '.', '_' or '-'.")
    return root / name


def create_board(
    root: Path,
    name: str,
    *,
    task: str,
    task_version: str,
    grader: str,
    grader_version: str,
    searches: list[str],
    budgets: list[int],
    title: str | None = None,
    about: str = "prm",
) -> Board:
    """Write a new board definition; an existing board is never overwritten."""
    if about not in ("prm", "generator"):
        raise PrmhError(f"a board is about 'prm' or 'generator', not {about!r}.")
    path = board_path(root, name)
    if (path / BOARD_FILE).exists():
        raise PrmhError(f"board {name!r} already exists in {str(path)!r}.")
    if not searches or not budgets or any(b < 1 for b in budgets):
        raise PrmhError("a board needs at least one search and budgets of at least 1.")
    budgets = sorted(set(budgets))
    lines = [
        f"# The {name} leaderboard: what counts. Rebuild with `prmh leaderboard build {name}`.",
        f"title = {json.dumps(title or name)}",
        f"task = {json.dumps(task)}",
        f"task_version = {json.dumps(task_version)}",
        f"grader = {json.dumps(grader)}",
        f"grader_version = {json.dumps(grader_version)}",
        f"searches = {json.dumps(searches)}",
        f"budgets = {json.dumps(budgets)}",
        "# the column that ranks rows: [search, budget]",
        f"rank_by = [{json.dumps(searches[0])}, {budgets[-1]}]",
        "# what rows compare: 'prm' (the generator is pinned too) or 'generator'",
        f"about = {json.dumps(about)}",
        "# [pinned] (problems, seeds, task_args, generator) is set by the first accepted run",
    ]
    (path / "records").mkdir(parents=True, exist_ok=True)
    write_text_atomic(path / BOARD_FILE, "\n".join(lines) + "\n")
    return load_board(root, name)


def load_board(root: Path, name: str) -> Board:
    """The board ``name`` under ``root``, its file checked (``_wrong``)."""
    path = board_path(root, name)
    try:
        data = parse_toml(read_bounded(path / BOARD_FILE, 1 << 20).decode())  # ~1 KB written
    except FileNotFoundError:
        raise PrmhError(
            f"no board {name!r} in {str(root)!r}; create it with `prmh leaderboard new {name}`."
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise PrmhError(f"{path / BOARD_FILE} is not valid TOML: {e}.") from e
    except (OSError, ValueError) as e:  # not a regular file, over 1 MB, not UTF-8
        raise PrmhError(f"cannot read {path / BOARD_FILE} as a board file: {e}.") from e
    wrong = _wrong(data)
    if wrong:
        raise PrmhError(
            f"{path / BOARD_FILE}: {wrong}. Fix the file (`prmh leaderboard new` writes the "
            "format, with comments)."
        )
    return Board(
        name=name,
        title=str(data.get("title", name)),
        **{k: str(data[k]) for k in TEXT},
        searches=tuple(data["searches"]),
        budgets=tuple(data["budgets"]),
        rank_by=tuple(data["rank_by"]),  # type: ignore[arg-type]
        path=path,
        about=data.get("about", "prm"),
        pinned={k: v for k, v in data.get("pinned", {}).items() if k in PINNED},
    )


def _wrong(data: dict[str, Any]) -> str | None:
    """What is wrong in a board file's values (it may have been edited by hand), if anything."""
    missing = [k for k in (*TEXT, "searches", "budgets", "rank_by") if k not in data]
    if missing:
        return f"it lacks {', '.join(missing)}"
    named = {"title": data.get("title", ""), **{k: data[k] for k in TEXT}}
    for key, value in named.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return f"{key} is {value!r:.40}, not text"
    searches, budgets, rank_by = data["searches"], data["budgets"], data["rank_by"]
    if not _listing(searches, lambda s: isinstance(s, str)):
        return f"searches is {searches!r:.60}, not a list of search names"
    if not _listing(budgets, lambda b: isinstance(b, int) and not isinstance(b, bool) and b >= 1):
        return f"budgets is {budgets!r:.60}, not a list of whole numbers of at least 1"
    ranked = isinstance(rank_by, list) and len(rank_by) == 2
    if not ranked or rank_by[0] not in searches or rank_by[1] not in budgets:
        return f"rank_by is {rank_by!r:.60}, not [one of searches, one of budgets]"
    if data.get("about", "prm") not in ("prm", "generator"):
        return f"about is {data['about']!r:.40}, not 'prm' or 'generator'"
    if not isinstance(data.get("pinned", {}), dict):
        return "[pinned] is not a table"
    return None


def _listing(value: Any, each: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(each(x) for x in value)


def write_pins(board: Board, pinned: dict[str, Any]) -> None:
    """Rewrite board.toml's ``[pinned]`` table (the last table of the file)."""
    text = (board.path / BOARD_FILE).read_text()
    head = text.split("\n[pinned]\n", 1)[0].rstrip("\n")
    lines = [f"{k} = {to_toml(pinned[k])}" for k in PINNED if k in pinned]
    write_text_atomic(board.path / BOARD_FILE, head + "\n\n[pinned]\n" + "\n".join(lines) + "\n")
