"""Leaderboard pages: Markdown and a self-contained HTML page (inline CSS, JS and SVG plots).

Pure functions of the board data, so a rebuild from the same records is byte-identical.
"""

from __future__ import annotations

import html
import math
from typing import Any

from prmh import board_sections as sections

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
MAX_PLOTTED = 10


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    return f"{_pct(cell['mean'])} [{_pct(cell['low'])}, {_pct(cell['high'])}]"


def _label(row: dict[str, Any]) -> str:
    return f"{row['prm']} · {row['agg']} · {row['selector']}"


def _describe(data: dict[str, Any]) -> str:
    b = data["board"]
    return (
        f"Task `{b['task']}` (version {b['task_version']}), graded by `{b['grader']}` (version "
        f"{b['grader_version']}). Rows are ranked by `{b['rank_by'][0]}` at N={b['rank_by'][1]}; "
        "cells are accuracy in percent with a 95% bootstrap interval. A row's rank is one plus "
        "the number of rows above it: rows whose interval lies entirely above its own, or, where "
        "intervals overlap on the same problems, rows a paired bootstrap of the per-problem "
        "difference puts above it (95%). Rows that neither separates share a rank."
    )


_md = sections.md


def _sample(row: dict[str, Any]) -> str:
    return f"{row['problems']} · {','.join(str(s) for s in row['seeds'])}"


def _notes(row: dict[str, Any]) -> list[str]:
    """What a reader should know about a row: its code's provenance, and that its run warned
    about it (listed under Warnings)."""
    return [n for n in (row["flag"], "warned: see Warnings" if row["warnings"] else "") if n]


def render_markdown(data: dict[str, Any], columns: list[tuple[str, int]]) -> str:
    b = data["board"]
    key = f"{b['rank_by'][0]}@{b['rank_by'][1]}"
    head = (
        ["rank", "PRM · agg · selector", "generator", "problems · seeds"]
        + [f"{s} N={n}" for s, n in columns]
        + ["generated tokens / problem", "PRM calls / problem", "record"]
    )
    lines = [
        f"# {_md(b['title'])}",
        "",
        _describe(data),
        "",
        *sections.md_links(data),
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in data["rows"]:
        ranked = row["cells"].get(key)
        compute = ranked["compute"] if ranked else None
        notes = "; ".join(_md(n) for n in _notes(row))
        flag = f" ({notes})" if notes else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    str(row["rank"]) if row["rank"] is not None else "–",
                    _md(_label(row)),
                    _md(row["generator"]),
                    _sample(row),
                    *[_cell_text(row["cells"].get(f"{s}@{n}")) for s, n in columns],
                    f"{compute['generated_tokens']:.0f}" if compute else "–",
                    f"{compute['prm_calls']:.1f}" if compute else "–",
                    f"[{_md(row['run_id'])}](records/{row['run_id']}.json){flag}",
                ]
            )
            + " |"
        )
    lines += sections.md_sections(data) + sections.md_warnings(data)
    lines += [
        "",
        f"Built by `prmh leaderboard build {b['name']}` from the records in "
        "`records/`; see `board.json` for the data.",
    ]
    return "\n".join(lines) + "\n"


def _svg_plot(title: str, x_label: str, series: list[dict[str, Any]], log_x: bool) -> str:
    """Lines with interval bars: series = [{label, color, dash, points: [(x, mean, low,
    high)]}]; the legend, below the axes, gives every label in full."""
    width, left, right, top, bottom = 560, 56, 20, 30, 40
    height = 264 + 16 * len(series)
    plot_h = 250 - top - bottom
    xs = [p[0] for s in series for p in s["points"] if p[0] > 0]
    if not xs:
        return ""
    fx = math.log2 if log_x else (lambda v: v)
    x0, x1 = fx(min(xs)), fx(max(xs))
    x1 = x1 if x1 > x0 else x0 + 1
    plot_w = width - left - right

    def sx(v: float) -> float:
        return left + (fx(v) - x0) / (x1 - x0) * plot_w

    def sy(v: float) -> float:
        return top + (1 - v) * plot_h

    parts = [
        f'<svg class="plot" viewBox="0 0 {width} {height}" style="height:{height}px" role="img" '
        f'aria-label="{html.escape(title)}"><text x="{left}" y="18" class="t">'
        f"{html.escape(title)}</text>"
        f'<text transform="translate(14,{top + plot_h / 2:.0f}) rotate(-90)" class="xl">'
        "accuracy (%)</text>"
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = sy(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'class="grid"/><text x="{left - 6}" y="{y + 4:.1f}" class="yl">'
            f"{int(tick * 100)}</text>"
        )
    for v in sorted(set(xs)):
        x = sx(v)
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" class="xl">{v:g}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 32}" class="xl">'
        f"{html.escape(x_label)}</text>"
    )
    parts += _svg_series(series, left, sx, sy)
    parts.append("</svg>")
    return "".join(parts)


def _svg_series(series: list[dict[str, Any]], left: int, sx: Any, sy: Any) -> list[str]:
    """Each series' line, interval bars and points, and its legend entry below the axes."""
    parts = []
    for i, s in enumerate(series):
        pts = [p for p in s["points"] if p[0] > 0]
        path = " ".join(f"{sx(x):.1f},{sy(m):.1f}" for x, m, _, _ in pts)
        dash = f' stroke-dasharray="{s["dash"]}"' if s.get("dash") else ""
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{s["color"]}" stroke-width="2"{dash}/>'
        )
        for x, m, lo, hi in pts:
            parts.append(
                f'<line x1="{sx(x):.1f}" y1="{sy(lo):.1f}" x2="{sx(x):.1f}" '
                f'y2="{sy(hi):.1f}" stroke="{s["color"]}"/><circle cx="{sx(x):.1f}" '
                f'cy="{sy(m):.1f}" r="3" fill="{s["color"]}"/>'
            )
        y = 264 + 16 * i
        parts.append(
            f'<line x1="{left}" y1="{y - 4}" x2="{left + 18}" y2="{y - 4}" stroke="{s["color"]}" '
            f'stroke-width="2"{dash}/><text x="{left + 24}" y="{y}" class="lg">'
            f"{html.escape(s['label'])}</text>"
        )
    return parts


STYLE = """
body{font-family:system-ui,sans-serif;margin:1em 1.5em;color:#222}
.wrap{overflow-x:auto}.ci{font-size:10px;color:#555}td.rec{font-size:11px;word-break:break-all;
min-width:5em}td.lab{white-space:normal;min-width:9em}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 3px;border-bottom:1px solid #ddd;
text-align:right}td{white-space:nowrap}td:last-child{white-space:normal}th{white-space:normal}th{cursor:pointer;background:#f4f4f4;user-select:none}td.l,th.l{text-align:left}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plot{width:560px;border:1px solid #eee}
.plot .t{font-size:13px;font-weight:600}.plot .yl{font-size:10px;text-anchor:end}
.plot .xl{font-size:10px;text-anchor:middle}.plot .lg{font-size:10px}
.plot .grid{stroke:#eee}.dirty{color:#b00}
"""

SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('th[data-column]');
  heads.forEach(function (th) {
    var column = parseInt(th.getAttribute('data-column'), 10);
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = !th.classList.contains('sorted-asc');
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute('data-sort');
        var y = b.cells[column].getAttribute('data-sort');
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      heads.forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(ascending ? 'sorted-asc' : 'sorted-desc');
    });
  });
});
"""


def render_html(data: dict[str, Any], columns: list[tuple[str, int]]) -> str:
    """The board's page: a sortable table, SVG plots, the calibration results and the
    reproductions; every text from a record is escaped."""
    b = data["board"]
    head = _html_head(columns)
    key = f"{b['rank_by'][0]}@{b['rank_by'][1]}"
    body = [_html_row(row, columns, key) for row in data["rows"]]
    describe = html.escape(_describe(data).replace("`", ""))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(b['title'])}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(b['title'])}</h1><p>{describe}</p>"
        f"{sections.html_links(data)}"
        f'<div class="wrap"><table class="sortable" id="board"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f'<h2>Plots</h2><div class="plots">{"".join(_html_plots(data))}</div>'
        f"{_unplotted(data['rows'])}{sections.html_sections(data)}{sections.html_warnings(data)}"
        f'<p>Data: <a href="board.json">board.json</a>.</p>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def _html_head(columns: list[tuple[str, int]]) -> str:
    """Two header rows: each search over its budgets; every sortable header names its column
    (``data-column``) and its full title."""
    searches = list(dict.fromkeys(s for s, _ in columns))

    def th(column: int, text: str, title: str, left: bool = False, span: str = "") -> str:
        cls = ' class="l"' if left else ""
        return (
            f'<th{cls}{span} data-column="{column}" title="{html.escape(title)}">'
            f"{html.escape(text)}</th>"
        )

    first = [
        th(0, "rank", "rank", True, ' rowspan="2"'),
        th(1, "PRM · agg · selector", "PRM · agg · selector", True, ' rowspan="2"'),
        th(2, "generator · problems · seeds", "generator · problems · seeds", True,
           ' rowspan="2"'),
    ]  # fmt: skip
    first += [
        f'<th colspan="{sum(x == s for x, _ in columns)}">{html.escape(s)}</th>' for s in searches
    ]
    end = 3 + len(columns)
    first += [
        th(end, "tokens / problem", "generated tokens per problem", span=' rowspan="2"'),
        th(end + 1, "PRM calls / problem", "PRM calls per problem", span=' rowspan="2"'),
        th(end + 2, "record", "record", True, ' rowspan="2"'),
    ]
    second = [th(3 + i, f"N={n}", f"{s} N={n}") for i, (s, n) in enumerate(columns)]
    return f"<tr>{''.join(first)}</tr><tr>{''.join(second)}</tr>"


def _html_row(row: dict[str, Any], columns: list[tuple[str, int]], key: str) -> str:
    ranked = row["cells"].get(key)
    compute = ranked["compute"] if ranked else None
    cells = [
        f'<td class="l" data-sort="{row["rank"] if row["rank"] is not None else 1e9}">'
        f"{row['rank'] if row['rank'] is not None else '–'}</td>",
        f'<td class="l lab" data-sort="{html.escape(_label(row))}">{html.escape(_label(row))}</td>',
        f'<td class="l" data-sort="{html.escape(row["generator"])}">'
        f"{html.escape(row['generator'])} · {html.escape(_sample(row))}</td>",
    ]
    for s, n in columns:
        cell = row["cells"].get(f"{s}@{n}")
        text = (
            f'{_pct(cell["mean"])}<br><span class="ci">[{_pct(cell["low"])}, '
            f"{_pct(cell['high'])}]</span>"
            if cell
            else "–"
        )
        cells.append(f'<td data-sort="{cell["mean"] if cell else -1}">{text}</td>')
    for field, digits in (("generated_tokens", 0), ("prm_calls", 1)):
        cells.append(
            f'<td data-sort="{compute[field]}">{compute[field]:.{digits}f}</td>'
            if compute
            else '<td data-sort="-1">–</td>'
        )
    notes = "; ".join(html.escape(n) for n in _notes(row))
    dirty = f' <span class="dirty">{notes}</span>' if notes else ""
    run_id = html.escape(row["run_id"])
    cells.append(
        f'<td class="l rec" data-sort="{run_id}"><a href="records/{run_id}.json">{run_id}</a>'
        f"{dirty}</td>"
    )
    return "<tr>" + "".join(cells) + "</tr>"


DASHES = ("", "6 3", "2 3", "8 3 2 3")


def _html_plots(data: dict[str, Any]) -> list[str]:
    """Accuracy against the budget per search, and against generated tokens with every search
    on the same axes (a dash per search)."""
    b, plotted = data["board"], data["rows"][:MAX_PLOTTED]

    def points(row: dict[str, Any], search: str, x: Any) -> list[tuple]:
        cells = [c for n in b["budgets"] if (c := row["cells"].get(f"{search}@{n}"))]
        return sorted((x(c), c["mean"], c["low"], c["high"]) for c in cells)

    plots = []
    for search in b["searches"]:
        series = [
            {"label": _label(row), "color": PALETTE[i % len(PALETTE)],
             "points": points(row, search, lambda c: c["budget"])}
            for i, row in enumerate(plotted)
        ]  # fmt: skip
        series = [s for s in series if s["points"]]
        plots.append(_svg_plot(f"accuracy vs budget: {search}", "N (log scale)", series, True))
    tokens = [
        {"label": f"{_label(row)} · {search}", "color": PALETTE[i % len(PALETTE)],
         "dash": DASHES[j % len(DASHES)],
         "points": points(row, search, lambda c: round(c["compute"]["generated_tokens"]))}
        for i, row in enumerate(plotted)
        for j, search in enumerate(b["searches"])
    ]  # fmt: skip
    tokens = [s for s in tokens if s["points"]]
    title = "accuracy vs compute, every search"
    plots.append(_svg_plot(title, "generated tokens per problem (log scale)", tokens, True))
    return plots


def _unplotted(rows: list[dict[str, Any]]) -> str:
    if len(rows) <= MAX_PLOTTED:
        return ""
    left = ", ".join(html.escape(_label(r)) for r in rows[MAX_PLOTTED:])
    return (
        f'<p class="note">The plots show the first {MAX_PLOTTED} rows by rank, to stay legible; '
        f"not plotted: {left}.</p>"
    )
