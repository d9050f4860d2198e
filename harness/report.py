"""Rich tables from run metrics; the only place results become text for people.

Accuracy cells read ``72.5 [68.0-77.0]``: percent correct with the 95% bootstrap interval.
The best mean of each column is bold green; the cells that the paired bootstrap of the
per-problem difference does not put below it (``below_best``, ``prmh.engine.tables``) are
bold: the best and those the data cannot tell from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from prmh.masking import visible


class _LiteralConsole(Console):
    """Text written out (``visible``) before rich lays it out: a string when it becomes text
    (so widths are right), and whatever reaches the output, but rich's own control codes."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(visible(text), **options)

    def render(self, renderable: Any, options: Any = None) -> Iterator[Segment]:
        for segment in super().render(renderable, options):
            text = segment.text if segment.control else visible(segment.text)
            yield segment if text == segment.text else Segment(text, segment.style)


def literal_console(**options: Any) -> Console:
    """A console that prints text as it is: names, paths, titles and plugins' messages are
    never read as rich markup (``[/x]`` would raise), emoji codes (``:smile:``) or highlighted,
    and control codes in them are written out (``\\x1b``: a stranger's record cannot clear or
    retitle the terminal); styles come from ``Text``."""
    return _LiteralConsole(markup=False, emoji=False, highlight=False, **options)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _cell(cell: dict[str, Any], best: float | None, style: str = "") -> Text:
    text = Text(f"{_pct(cell['mean'])} [{_pct(cell['low'])}-{_pct(cell['high'])}]", style=style)
    if best is not None and cell["mean"] == best:
        text.stylize("bold green")
    elif cell.get("below_best") is False:  # older records have no test: plain
        text.stylize("bold")
    return text


def _row_label(row: dict[str, Any], show_splitter: bool) -> str:
    parts = (
        [row["prm"]] + ([row["splitter"]] if show_splitter else []) + [row["agg"], row["selector"]]
    )
    return " · ".join(parts)


def accuracy_table(table: dict[str, Any]) -> Table:
    columns = table["columns"]
    prm_rows = [r for r in table["rows"] if r["kind"] == "prm"]
    show_splitter = len({r["splitter"] for r in prm_rows}) > 1
    title = (
        f"{table['task']} × {table['generator']}: accuracy % [95% CI], "
        f"{table['problems']} problems, seeds {', '.join(map(str, table['seeds']))}"
    )
    caption = None
    if any(c["search"] != "best-of-n" for c in columns):
        caption = "pass@N and majority@N come from the pool of N samples in every column"
    out = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        caption=caption,
        caption_justify="left",
        caption_style="dim",
    )
    out.add_column(
        "PRM · agg · selector" if not show_splitter else "PRM · splitter · agg · selector",
        no_wrap=True,
    )
    for column in columns:
        out.add_column(f"{column['search']}\nN={column['budget']}", justify="right")
    best = [
        max((r["cells"][j]["mean"] for r in prm_rows), default=None) for j in range(len(columns))
    ]
    for row in table["rows"]:
        if row["kind"] != "reference":
            continue
        by_budget = {c["budget"]: c for c in row["cells"]}
        out.add_row(
            Text(row["label"], style="dim"),
            *[_cell(by_budget[c["budget"]], None, style="dim") for c in columns],
        )
    out.add_section()
    for row in prm_rows:
        out.add_row(
            _row_label(row, show_splitter),
            *[_cell(c, b) for c, b in zip(row["cells"], best, strict=True)],
        )
    return out


def compute_table(table: dict[str, Any], reused: bool = False) -> Table:
    """Mean compute per problem for each (PRM, search, budget); selectors cost nothing extra.
    ``reused``: some results came from the store, so their seconds are those of the run that
    computed them, which the caption says."""
    out = Table(
        title="compute per problem: generated tokens / PRM tokens / PRM calls / seconds",
        title_justify="left",
        header_style="bold",
        caption="seconds: as spent by the run that computed each result (some came from the store)"
        if reused
        else None,
        caption_justify="left",
        caption_style="dim",
    )
    out.add_column("PRM · search", no_wrap=True)
    budgets = sorted({c["budget"] for c in table["columns"]})
    for b in budgets:
        out.add_column(f"N={b}", justify="right")
    seen: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for row in table["rows"]:
        if row["kind"] != "prm":
            continue
        for cell in row["cells"]:
            seen.setdefault((row["prm"], cell["search"]), {}).setdefault(
                cell["budget"], cell["compute"]
            )
    for (prm, search), by_budget in seen.items():
        out.add_row(
            f"{prm} · {search}",
            *[_compute(by_budget[b]) if b in by_budget else "-" for b in budgets],
        )
    return out


def _compute(c: dict[str, float]) -> str:
    return (
        f"{c['generated_tokens']:.0f} / {c['prm_tokens']:.0f} / {c['prm_calls']:.1f} / "
        f"{c['wall_seconds']:.3f}"
    )


def render_metrics(metrics: dict[str, Any]) -> Group:
    parts: list[Any] = []
    for table in metrics["tables"]:
        reused = any((metrics.get("cache") or {}).get("from_store", {}).values())
        parts += [accuracy_table(table), compute_table(table, reused)]
        for prm, count in table.get("truncated_solutions", {}).items():
            if count:
                parts.append(
                    Text(
                        f"{prm}: {count} solutions were longer than max_length and truncated "
                        "from the left",
                        style="yellow",
                    )
                )
        parts += [Text(f"warning: {w}", style="yellow") for w in table.get("warnings", [])]
        grading = table.get("grading", {})
        if grading.get("timed_out") or grading.get("errors"):
            parts.append(
                Text(
                    f"grading: {grading['timed_out']} of {grading['answers']} distinct answers "
                    f"timed out and {grading['errors']} broke the grader; none counts as right. "
                    "Timed-out answers are graded again by a run with a larger "
                    "--grading-timeout",
                    style="yellow",
                )
            )
        for splitter, threshold in table.get("fitted_splitters", {}).items():
            parts.append(Text(f"{splitter}: fitted threshold {threshold:.4g}", style="dim"))
        parts.append(Text(""))
    damaged = metrics.get("damaged_entries") or {}
    if damaged:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(damaged.items()))
        parts.append(
            Text(
                f"store: damaged entries ({found}) were deleted and computed again", style="yellow"
            )
        )
    cache = metrics.get("cache", {})
    stored, computed = cache.get("from_store", {}), cache.get("computed", {})
    kinds = sorted(set(stored) | set(computed))
    if kinds:
        summary = ", ".join(
            f"{k}s {stored.get(k, 0)} stored + {computed.get(k, 0)} new" for k in kinds
        )
        parts.append(Text(f"{summary}; {metrics.get('wall_seconds', 0):.1f} s", style="dim"))
    if metrics.get("reused_run"):
        parts.append(
            Text(
                f"the results of run {metrics['reused_run']} (the same plan, problems and prmh "
                "code); --recompute runs the searches again",
                style="dim",
            )
        )
    return Group(*parts)


def print_record(record: dict[str, Any], console: Console, summary: bool = True) -> None:
    """The run's status, its tables and, with ``summary``, a command's metrics in a line."""
    status = record["status"]
    style = {"success": "green", "error": "red"}.get(status, "yellow")
    console.print(
        Text.assemble(
            ("run ", "bold"),
            (record["run_id"], "bold"),
            " ",
            (status, style),
            f"  prmh {record.get('prmh_version', '?')}",
        )
    )
    if record.get("error"):
        console.print(Text(f"error: {record['error']}", style="red"))
    if status == "started":  # a dead run's record reads "interrupted" (prmh.liveness)
        owner = record.get("owner") or {}
        where = f" (pid {owner.get('pid')} on {owner.get('host')})" if owner else ""
        console.print(Text(f"still running{where}: its results come when it ends", style="yellow"))
    metrics = record.get("metrics")
    if metrics and "tables" in metrics:
        console.print(render_metrics(metrics))
    elif metrics and summary:  # a command's summary (rollout, label...)
        command = (record.get("config") or {}).get("command", "command")
        console.print(Text(f"{command}: {_summary(metrics)}"))


def _summary(metrics: dict[str, Any]) -> str:
    """A command's metrics in a line: ``selected (chosen 12, from 40, how uncertainty)``; a
    long list by its length and ends (a training run's losses, one per step)."""

    def shown(v: Any) -> str:
        if isinstance(v, dict):
            return f"({_summary(v)})"
        if isinstance(v, list) and len(v) > 4:
            return f"({len(v)} values: {_short(v[0])} ... {_short(v[-1])})"
        return str(v)

    return ", ".join(f"{k} {shown(v)}" for k, v in metrics.items())


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
