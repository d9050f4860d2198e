"""``prmh view``: one self-contained HTML page to browse a run sample by sample.

The page holds the run's tables and per-sample results as JSON (``<`` escaped, so no text can
close the script) and ``viewer.html``'s script renders them with ``textContent`` only: nothing
from a model or a task file is ever parsed as HTML. Click a cell of the table to list its
problems (filters: wrong only, the choice disagrees with the candidates' majority, timed out);
click a problem to see the question, the gold answer and each candidate with its steps coloured
by the PRM's score, the chosen one marked, and every other PRM's score of the same steps where
the run has one, with the steps on which two PRMs disagree marked.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from prmh.files import write_text_atomic
from prmh.results import RunResults

TEMPLATE = "viewer.html"
CELL_FIELDS = ("task", "generator", "prm", "splitter", "agg", "search", "budget", "seed",
               "problem", "candidates", "chosen")  # fmt: skip


def page_data(run: RunResults) -> dict[str, Any]:
    """What the page needs, compact: tables, problems, solutions, scores, grades and cells."""
    lines = run.lines
    tables = [
        {k: t[k] for k in ("task", "generator", "columns", "rows", "problems", "seeds")}
        for t in (run.record.get("metrics") or {}).get("tables", [])
    ]
    return {
        "run_id": run.record["run_id"],
        "tables": tables,
        "problems": {
            f"{p['task']}|{p['id']}": [p["question"], p["gold"]]
            for p in lines
            if p["t"] == "problem"
        },
        "solutions": {
            s["id"]: [s["problem"], s["steps"], s["answer"]] for s in lines if s["t"] == "solution"
        },
        "scores": [[s["prm"], s["solution"], s["probs"]] for s in lines if s["t"] == "scores"],
        "grades": {
            f"{g['task']}|{g['answer']}|{g['gold']}": g["outcome"]
            for g in lines
            if g["t"] == "grade"
        },
        "cells": [[c[k] for k in CELL_FIELDS] for c in lines if c["t"] == "cell"],
    }


def render(run: RunResults) -> str:
    """The page as one string."""
    template = files("prmh").joinpath(TEMPLATE).read_text()
    data = json.dumps(page_data(run), separators=(",", ":"), sort_keys=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = html.escape(f"prmh run {run.record['run_id']}")
    return template.replace("__TITLE__", title).replace("__DATA__", data)


def write_page(run: RunResults, out: Path) -> Path:
    write_text_atomic(out, render(run))
    return out


def serve(path: Path, port: int = 8000, ready: Any = None) -> None:
    """Serve ``path``'s folder on localhost until interrupted; ``ready(url)`` is called first."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        if ready is not None:
            ready(url)
        server.serve_forever()
