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

import html
import http.server
from importlib.resources import files
from pathlib import Path
from typing import Any

from prmh.errors import PrmhError
from prmh.files import strict_json, write_text_atomic
from prmh.results import RunResults

TEMPLATE = "viewer.html"
CELL_FIELDS = ("task", "generator", "prm", "splitter", "agg", "search", "budget", "seed",
               "problem", "candidates", "chosen")  # fmt: skip


# A browser reads the page's data as one string: V8 (Chrome, Node) holds at most 2**29 - 24
# characters in one, and parsing that much JSON takes gigabytes. A bigger page is refused.
MAX_DATA_CHARS = 400_000_000


def page_data(run: RunResults, limit: int | None = None) -> dict[str, Any]:
    """What the page needs, compact: tables, problems, solutions, scores, grades and cells;
    with ``limit``, those of each task's first ``limit`` problems only (the tables stay
    whole)."""
    lines = run.lines
    kept = _first_problems(lines, limit)
    solutions = {
        s["id"]: [s["problem"], s["steps"], s["answer"]]
        for s in lines
        if s["t"] == "solution" and (s["task"], s["problem"]) in kept
    }
    tables = [
        {
            **{k: t[k] for k in ("task", "generator", "columns", "rows", "problems", "seeds")},
            "warnings": t.get("warnings", []),
        }
        for t in (run.record.get("metrics") or {}).get("tables", [])
    ]
    return {
        "run_id": run.record["run_id"],
        "limit": limit,
        "tables": tables,
        "problems": {f"{task}|{pid}": kept[task, pid] for task, pid in kept},
        "solutions": solutions,
        "scores": [
            [s["prm"], s["solution"], s["probs"]]
            for s in lines
            if s["t"] == "scores" and s["solution"] in solutions
        ],
        "grades": {
            f"{g['task']}|{g['answer']}|{g['gold']}": g["outcome"]
            for g in lines
            if g["t"] == "grade"
        },
        "cells": [
            [c[k] for k in CELL_FIELDS]
            for c in lines
            if c["t"] == "cell" and (c["task"], c["problem"]) in kept
        ],
    }


def _first_problems(lines: list[dict[str, Any]], limit: int | None) -> dict[tuple, list[str]]:
    """(task, problem id) -> [question, gold] of each task's first ``limit`` problems (all
    without a limit)."""
    kept: dict[tuple, list[str]] = {}
    per_task: dict[str, int] = {}
    for p in (line for line in lines if line["t"] == "problem"):
        if limit is None or per_task.get(p["task"], 0) < limit:
            per_task[p["task"]] = per_task.get(p["task"], 0) + 1
            kept[p["task"], p["id"]] = [p["question"], p["gold"]]
    return kept


def render(run: RunResults, limit: int | None = None) -> str:
    """The page as one string; a run whose data no browser could read in one page is refused,
    with the way out (``limit``)."""
    data = page_data(run, limit)
    text = strict_json(data, separators=(",", ":"), sort_keys=True)  # JSON.parse, with
    # no <, > or & that could end the script element
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if len(text) > MAX_DATA_CHARS:
        each = len(text) / max(1, len(data["problems"])) / 1e6
        raise PrmhError(
            f"the page would hold {len(text) / 1e6:.0f} MB of data ({each:.1f} MB a problem), "
            f"more than a browser reads in one page ({MAX_DATA_CHARS // 1_000_000} MB): view "
            f"each task's first problems with --limit N (about {int(MAX_DATA_CHARS / 1e6 / each)}"
            " problems in all fit)."
        )
    template = files("prmh").joinpath(TEMPLATE).read_text()
    title = html.escape(f"prmh run {run.record['run_id']}")
    return template.replace("__TITLE__", title).replace("__DATA__", text)


def write_page(run: RunResults, out: Path, limit: int | None = None) -> Path:
    write_text_atomic(out, render(run, limit))
    return out


class _OnePage(http.server.BaseHTTPRequestHandler):
    """The page at / and /NAME and nothing else (not the records beside it), to requests
    naming this server as their host (a page elsewhere cannot rebind its own domain to it)."""

    page, name, hosts = b"", "", frozenset[str]()

    def do_GET(self) -> None:
        if self.headers.get("Host") not in self.hosts:
            self.send_error(403, "unknown host")
        elif self.path.split("?", 1)[0] not in ("/", f"/{self.name}"):
            self.send_error(404)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(self.page)))
            self.end_headers()
            self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


def serve(path: Path, port: int = 8000, ready: Any = None) -> None:
    """Serve the page at ``path`` on localhost until interrupted; ``ready(url)`` is called
    first."""
    handler = type("Page", (_OnePage,), {"page": path.read_bytes(), "name": path.name})
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        port = server.server_address[1]
        handler.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        url = f"http://127.0.0.1:{port}/{path.name}"
        if ready is not None:
            ready(url)
        server.serve_forever()
